// What a fleet simulation runs: the fleet (replicas, servers, regions), the users that arrive
// (surges, churn), the faults that strike (black holes, servers gone, restarts), the delays
// between them (pub/sub, the admission round trip), and the named presets behind the issue 20
// targets. Plain data; every setting is defined here once, with its default.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/fleet/fleet_model.h"

namespace vrouter::bench::fleetsim {

using Ms = std::chrono::milliseconds;

// How replicas share a server's new users per interval (issue 20, item 2).
enum class Admission : std::uint8_t {
  kBaseline,    // each replica admits up to the server's whole per-interval cap on its own
  kShared,      // one fleet-wide budget per server and interval (the store's Admit)
  kLocalShare,  // the budget is unreachable: each replica admits ceil(cap / replicas)
  // A proposal: the shared budget's window is the server's report interval (the count is kept
  // per server and report seq, the seq of the report the replica's view is based on), so that
  // the count is exactly the placements the report does not include yet.
  kSharedPerReport,
};
inline constexpr Admission kAdmissions[] = {Admission::kBaseline, Admission::kShared,
                                            Admission::kLocalShare, Admission::kSharedPerReport};
std::string_view AdmissionName(Admission a);
std::optional<Admission> AdmissionByName(std::string_view name);

// `users` join between `at` and `at + over` (evenly; over 0: all at once), in region `region`
// (none: each user in a region drawn uniformly).
struct Surge {
  Ms at{0};
  std::uint32_t users = 0;
  Ms over{0};
  std::optional<std::uint32_t> region;
};

enum class FaultKind : std::uint8_t {
  kBlackHole,  // reports low load, receives media, forwards nothing; its users report failures
  kGone,       // stops reporting (crashed, unreachable); its users report failures
  kRestart,    // restarts: counters from zero, registers again; its users stay
};
std::string_view FaultKindName(FaultKind kind);

// At `at`, `servers` established servers (a seeded draw, never a newcomer) turn `kind`.
struct Fault {
  Ms at{0};
  FaultKind kind = FaultKind::kBlackHole;
  std::uint32_t servers = 1;
};

struct Scenario {
  std::string name;
  std::uint64_t seed = 1;
  std::uint32_t replicas = 50;
  std::uint32_t servers = 1000;
  std::uint32_t capacity = 500;  // users per server
  // Server i is in region "r<i % regions>"; regions 2k and 2k+1 form group "g<k>".
  std::uint32_t regions = 10;
  // The last `newcomers` servers of region 0 register at `newcomers_at` (the others at 0).
  std::uint32_t newcomers = 0;
  Ms newcomers_at{0};
  std::vector<Surge> surges;
  std::vector<Fault> faults;
  Ms duration{60000};
  // Churn: a user stays for an exponentially distributed time of this mean (0: until the end).
  Ms session_mean{0};
  // How often each replica reads the fleet-wide users per server (the store's load refresh).
  Ms load_refresh{1000};
  // Pub/sub delay of a report, registration or failure report from the replica that got it to
  // each other replica: uniform in [min, max] per delivery.
  double pubsub_min_ms = 1;
  double pubsub_max_ms = 5;
  // The shared budget's round trip (the store's Admit), uniform in [min, max] per call.
  double admit_rtt_min_ms = 0.2;
  double admit_rtt_max_ms = 1;
  // Choices a replica makes per join before refusing it (each refused by the shared budget).
  std::uint32_t choices_per_join = fleet::kAdmissionChoices;
  // A client without media reports it after this long, and again this often while it lasts
  // (bench/load/vrouter_load.cc, kNoMediaReportAfter / kNoMediaReportEvery).
  Ms no_media_report_after{3000};
  Ms no_media_report_every{5000};
  // A placed user's media reaches its server this long after the placement (the client gets the
  // answer, connects, ICE and DTLS): until then the server's reports do not count it.
  Ms media_after{1000};
  // Streams each stream in is forwarded to on average (healthy servers, two users or more).
  std::uint32_t fanout = 3;
  std::vector<Admission> admissions = {std::begin(kAdmissions), std::end(kAdmissions)};
};

// The presets: "newcomer", "blackhole", "fail10", "fail400", "surge10k" (issue 20's targets at
// full size), "max" (100 replicas, 10,000 servers, 1,000,000 users) and "ci" (a small newcomer
// surge plus a black hole, for ctest).
std::vector<std::string> PresetNames();
std::optional<Scenario> Preset(std::string_view name);

// Empty when the scenario can run; otherwise what is wrong with it, in one line.
std::string Validate(const Scenario& s);

}  // namespace vrouter::bench::fleetsim
