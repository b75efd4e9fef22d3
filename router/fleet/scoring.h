// Choosing a video server for a user: the black-hole defense. Pure functions over plain structs;
// the fleet model (fleet_model.h) fills the inputs from reports, the router's own table and the
// clock, and tests and the incident replay call these directly.
//
// Per server:
//   effective load = max(reported + pending, counter-implied + pending, own)  + failure penalty
//     reported        = max(peers, cpu * capacity): what the server says
//     counter-implied = packets in per second / packets per user: what its counters say
//     own             = users the router's own table has placed there: ground truth that no
//                       self-report can shrink
//     pending         = users placed since the server's last report, which that report could
//                       not yet include, so a stale "I'm empty" cannot absorb a burst
//     penalty         = share of its users reporting media failures * capacity * factor
//   (docs/DESIGN.md writes max(...) + pending; `own` already contains the pending users, so adding
//    them to it again would count them twice. Adding them to the self-reported terms only is the
//    same protection without the double count.)
//   A server whose counters say it is not forwarding (media in, nothing out; counters frozen while
//   it has peers) gets no credit for low load: its effective load is its capacity.
//   Slow start: a server new to an established fleet (or returning from ejection, staleness or a
//   restart) has a weight ramping from min_weight to 1; its headroom and its share of new users
//   per interval are scaled by the weight, and its utilization is taken to be at least
//   (1 - weight) * the mean utilization of the established servers: its zero load is not
//   believed, so it competes for about its fair share instead of winning every comparison (the
//   stampede), and catches up with the fleet as its weight grows.
//
// Choice: hard filters (state, freshness, headroom, per-interval cap) -> the first non-empty tier
// of region, region group, anywhere -> space affinity (the server already hosting most of the
// user's space, while its utilization is under the affinity limit and it is not in slow start)
// -> otherwise power of two choices on utilization. Never a global argmin: several replicas with
// slightly stale views all herd onto the same argmin.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "router/fleet/directory.h"
#include "router/fleet/server_health.h"

namespace vrouter::fleet {

struct ScoringParams {
  // Packets per second one user sends on average: converts a packet rate into users. A 30 fps
  // video stream at conference bitrates plus 50 pps of Opus audio is roughly 100 packets/s.
  double packets_per_user = 100;
  // A server where this share of its users reported media failures gets this many capacities of
  // extra load: 10% of users failing adds 20% of capacity (factor 2), so a server clients
  // complain about loses picks well before it is ejected.
  double failure_penalty_factor = 2.0;
  // Slow start: a newcomer's weight ramps linearly from min_weight to 1 over the window.
  // 30 s is 30 reports: enough to see its counters move with real users before it is trusted.
  std::chrono::milliseconds slow_start_window{30000};
  double slow_start_min_weight = 0.1;
  // Keep a space on one server while that server's utilization stays below this: above it, the
  // space spills over to another server rather than filling one to the brim.
  double space_affinity_max_utilization = 0.8;
  // New users per server per report interval, at full weight: the larger of a fixed number and a
  // share of the server's capacity. An SFU sets up ICE and DTLS for each new peer, at a rate that
  // grows with its size (its cores), as its capacity does. 100, or a tenth of its capacity, per
  // second: a 10k-user surge takes 5 s on 20 servers of 500 (or on 8 of 2,500) instead of one
  // server taking it all in one stale interval; no server goes from empty to full in less than
  // 10 s, and a black hole that looks fresh takes at most two intervals' worth before its counters
  // give it away. (Issue 20: a fixed 100 made 10,000 people wait 12.5 s or more on 8 servers.)
  std::uint32_t max_new_users_per_interval = 100;
  double new_users_per_interval_capacity_share = 0.1;
  // A server back from an ejection holds at most this many users until it shows it is healthy
  // (fleet_model.h, probation): two are enough to judge its forwarding (two users' packets
  // clear min_packets_in_rate) and to hear complaints, and are all a relapse can cost.
  std::uint32_t probation_max_users = 2;
  ForwardingParams forwarding;
  // Region groups: region -> group ("eu-west" -> "eu"). Regions absent here form no group.
  absl::flat_hash_map<std::string, std::string> region_group;
};

// Where a server stands, as far as new users are concerned.
enum class ServerState { kPending, kActive, kDraining, kEjected, kStale, kGone };
inline constexpr int kServerStateCount = 6;
std::string_view ServerStateName(ServerState state);

// Everything scoring needs about one server at one moment.
struct ScoreInput {
  const VideoServer* server = nullptr;
  ServerState state = ServerState::kPending;
  double reported_load = 0;  // max(peers, cpu * capacity); 0 when unmonitored
  double counter_load = 0;   // packets in per second / packets_per_user
  std::int64_t own = 0;      // users the router's table places there
  std::int64_t pending = 0;  // users placed since its last report
  double failure_share = 0;  // share of its users that reported failures recently, 0..1
  Forwarding forwarding = Forwarding::kUnknown;
  // Failure reports over the absolute bound (FailureSharePasses fails): concrete evidence, like
  // the counters, that media through it fails.
  bool failing_reports = false;
  // Back from an ejection and not yet seen healthy: one new user per interval, and at most
  // probation_max_users in all.
  bool probation = false;
  double weight = 1;  // slow-start weight, (0, 1]
  std::uint32_t new_this_interval = 0;
  double fleet_utilization = 0;  // mean utilization of established active servers
  // Shared admission (several replicas): the fleet-wide budget of this interval is spent.
  bool admission_closed = false;
  // The per-interval cap is shared by this many replicas that cannot reach the fleet-wide budget:
  // each admits ceil(cap / cap_share). 1: the whole cap.
  std::uint32_t cap_share = 1;
};

// Why a server cannot take a new user (kEligible when it can).
enum class Ineligible {
  kEligible,
  kState,           // not active (pending, draining, ejected, stale, gone)
  kNotForwarding,   // counters say it swallows media: no credit for low load
  kFailureReports,  // its users report failures over the absolute bound
  kFull,            // no headroom at its (slow-start scaled) capacity
  kIntervalCap,     // took its share of new users this interval (here, or fleet-wide)
  kProbation,       // back from an ejection: holds all the users it may until it proves healthy
};
std::string_view IneligibleName(Ineligible why);

struct Score {
  double effective_load = 0;  // users
  double utilization = 0;     // what power of two choices compares: lower wins
  std::uint32_t interval_cap = 0;
  Ineligible ineligible = Ineligible::kEligible;
  bool eligible() const { return ineligible == Ineligible::kEligible; }
};

// Which health evidence scoring acts on.
//   kAll           normal operation.
//   kConcreteOnly  panic (fleet_model.h: more of the fleet looks bad than may be ejected): the
//                  router's own doubtful view (the failure-share penalty on load) is set aside,
//                  but concrete evidence still keeps a server out of new placements: counters that
//                  say it swallows media, failure reports over the absolute bound.
//   kNone          the last resort when even that leaves no server: scored on load alone (fail
//                  open).
enum class Evidence { kAll, kConcreteOnly, kNone };
Score ScoreServer(const ScoreInput& in, const ScoringParams& params, Evidence evidence);

// The users a server has room for as this replica sees it: its (slow-start scaled) capacity less
// the largest of its reported load, its counters' load and the last count of its users. That
// view misses the placements other replicas made since the count was refreshed, so the shared
// budget weighs it against every placement of the last few seconds (store.h, Admit); each
// replica's own pending placements cannot, since they miss the other replicas' (the fleet
// simulator showed servers pushed past capacity that way: bench/fleetsim). 0 when full.
std::uint32_t AdmissionRoom(const ScoreInput& in);

// What one window of the fleet-wide admission budget may admit to a server (shared admission,
// fleet_model.h Pick::interval_cap): its per-interval cap, never more than its room. At least 1.
std::uint32_t AdmissionCap(const ScoreInput& in, const Score& score);

enum class PickTier { kNone, kRegion, kRegionGroup, kAnywhere };
std::string_view PickTierName(PickTier tier);

struct PickRequest {
  std::string_view region;  // the user's region; empty when unknown
  // Users of the user's space per server (from the router's table); may be null or empty.
  const absl::flat_hash_map<std::string, std::int64_t>* space_servers = nullptr;
};

struct PickResult {
  int index = -1;  // into the inputs; -1 when no server is eligible
  PickTier tier = PickTier::kNone;
  bool affinity = false;   // chosen to keep the space together
  int candidates = 0;      // eligible servers in the chosen tier
  int sampled_other = -1;  // the loser of the two choices, if there was one
};

// Which tier `server` is in for `request`.
PickTier TierOf(const VideoServer& server, const PickRequest& request, const ScoringParams& params);

// `scores[i]` belongs to `inputs[i]`.
PickResult PickServer(std::span<const ScoreInput> inputs, std::span<const Score> scores,
                      const PickRequest& request, const ScoringParams& params,
                      std::mt19937_64& rng);

// Slow-start weight `elapsed` after a server (re)entered service.
double SlowStartWeight(std::chrono::nanoseconds elapsed, const ScoringParams& params);

}  // namespace vrouter::fleet
