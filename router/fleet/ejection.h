// Outlier ejection: the rules that take a video server out of service, each with its own reason,
// and how long an ejection lasts. Pure functions; the fleet model applies them every tick.
//
// Rules (after Envoy's outlier detection, adapted to what a router can see):
//   not_forwarding        N consecutive reports with media in and nothing out, or frozen counters
//   failure_reports       the share of its users reporting media failures in a window is above an
//                         absolute bound, with a minimum number of distinct reporters
//   success_rate_outlier  its success rate (1 - failure share) is more than k standard deviations
//                         (never less than a floor) under the fleet mean, among servers with
//                         enough users, when enough servers qualify, and with at least as many
//                         distinct reporters as failure_reports needs
//   restart_loop          its counters reset (the process restarted) several times in a window:
//                         a crash-looping server is a fresh baseline at every restart, so the
//                         counters alone never see it long enough to judge
// Every report-based rule counts distinct reporters, each user once and each client address
// once (one client cannot weigh more by reconnecting or by holding several tokens).
// Ejection time is base * (times ejected), capped; the count decays by one for every base period
// a server stays healthy. At most a share of the fleet is ejected at once; when more looks bad,
// the fleet model fails open (panic) instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace vrouter::fleet {

// In order of the strength of their evidence: when more servers look bad than may be ejected at
// once, the strongest cases are ejected first.
enum class EjectReason { kNotForwarding, kRestartLoop, kFailureReports, kSuccessRateOutlier };
inline constexpr int kEjectReasonCount = 4;
std::string_view EjectReasonName(EjectReason reason);

struct EjectionParams {
  // Three reports (3 s at the default interval): one bad interval can be a measurement glitch
  // (a GC pause, a report racing a burst); three in a row is a server that does not forward.
  // The server gets no new users from the first bad report on; this only decides migration.
  std::uint32_t not_forwarding_reports = 3;
  // A quarter of a server's users saying media fails is far above background failure rates
  // (ICE failures behind strict NATs are a few percent) ...
  double failure_share = 0.25;
  // ... but only with at least 5 distinct users saying so, so three unlucky users on a
  // lightly used server do not eject it.
  std::uint32_t failure_min_reporters = 5;
  // Reports count for this long. 30 s covers a client's detection time (a few seconds without
  // media) plus its reconnection attempts, without remembering yesterday's trouble.
  std::chrono::milliseconds failure_window{30000};
  // Envoy's defaults: 1.9 standard deviations, 5 hosts, 100 requests. A "request" here is a user
  // placed on the server, so the volume is 20 users: enough that one report moves the rate 5%.
  double success_stdev_factor = 1.9;
  std::uint32_t success_min_hosts = 5;
  std::uint32_t success_min_volume = 20;
  // A floor on the deviation the outlier rule divides by. When every other server is at 100%,
  // the fleet's deviation is tiny and one report sits at -sqrt(n-1) deviations (-2.0 with five
  // servers): the rule would fire on a single sample. With the floor, a server must be at least
  // 1.9 * 5 = 9.5 points under the mean.
  double success_min_stdev = 0.05;
  // Three restarts (counter resets) within a minute: no healthy server restarts that often, and
  // a server that crashes every few reports is at most a few restarts from being ejected.
  std::uint32_t restart_loop_resets = 3;
  std::chrono::milliseconds restart_loop_window{60000};
  // Envoy's base ejection time is 30 s and its cap 300 s: long enough for the server's users to
  // be migrated and for the fault to show again if it is still there, short enough that a
  // transient fault does not cost the fleet a server for long.
  std::chrono::milliseconds base_ejection{30000};
  std::chrono::milliseconds max_ejection{300000};
  // At most 30% of the fleet ejected at once: one bad server in a small fleet is always
  // ejectable, and half the fleet turning bad at once points at the router's view (or the network
  // between it and everyone) more than at the servers.
  double max_ejected_share = 0.3;
};

// How long the `times`-th ejection (1 = first) lasts.
std::chrono::milliseconds EjectionDuration(std::uint32_t times, const EjectionParams& params);

// The number of servers that may be ejected at once in a fleet of `fleet_size` (at least one).
std::size_t MaxEjected(std::size_t fleet_size, const EjectionParams& params);

// True when the server passes the absolute bound: fewer than failure_min_reporters reporters, or
// `reporters` of `users` under failure_share. False means eject (failure_reports).
bool FailureSharePasses(std::uint32_t reporters, std::int64_t users, const EjectionParams& params);

struct SuccessSample {
  double success_rate = 1;      // 1 - failure share
  std::int64_t volume = 0;      // users on the server
  std::uint32_t reporters = 0;  // distinct reporters behind the failure share
};
// Indices of `samples` that are success-rate outliers (empty when too few servers qualify). A
// server needs failure_min_reporters distinct reporters to be one.
std::vector<std::size_t> SuccessRateOutliers(std::span<const SuccessSample> samples,
                                             const EjectionParams& params);

}  // namespace vrouter::fleet
