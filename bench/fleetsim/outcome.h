// What one simulated run measured (one scenario, one admission mode), and the issue 20 targets
// judged on it. Plain data, filled by the simulator (simulator.h) and written out by report.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/fleetsim/scenario.h"

namespace vrouter::bench::fleetsim {

struct Quantiles {
  std::size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};
// Nearest-rank quantiles of `values` (sorted in place).
Quantiles QuantilesOf(std::vector<double>& values);

// A server the scenario broke (a fault), from its first evidence on.
struct BadServer {
  std::string server;
  FaultKind kind = FaultKind::kBlackHole;
  double broken_at_s = 0;
  // The first report in which its counters show it swallowing media (black hole), or the first
  // failure report about it (any kind); unset when none came.
  std::optional<double> first_evidence_s;
  std::int64_t users_at_evidence = 0;
  // Seconds from the first evidence to its ejection on each replica that ejected it.
  std::uint32_t ejected_on = 0;  // replicas
  std::optional<double> eject_min_s, eject_median_s, eject_max_s;
  // New users (joins and migrations) placed on it at or after the first evidence; and of those,
  // the ones whose replica had received the evidence when it chose the server (the others were
  // chosen within the pub/sub delay, or their admission round trip, of the evidence).
  std::uint64_t placed_after_evidence = 0;
  std::uint64_t placed_after_evidence_known = 0;
  // Placed on it by a replica after that replica's first ejection of it ran out: readmitted on
  // probation (at most probation_max_users at a time), not counted above.
  std::uint64_t probation_placed = 0;
  std::uint64_t migrated_off = 0;
  std::uint32_t peak_migrations_out_per_s = 0;
  // From the first evidence until it first had no user left (unset: never emptied).
  std::optional<double> emptied_after_s;
  std::int64_t users_at_end = 0;
};

// One per-second sample of the whole fleet.
struct TimelineRow {
  double t_s = 0;
  std::uint64_t joined = 0;        // joins placed this second
  std::uint64_t refused = 0;       // join attempts refused this second
  std::uint64_t migrated = 0;      // users moved this second
  std::uint64_t online = 0;        // users on a server
  std::uint64_t on_bad = 0;        // users on a broken server
  std::uint64_t waiting = 0;       // users trying to join
  double max_admission_ratio = 0;  // the worst finished interval this second, admissions / cap
  std::uint32_t replicas_in_panic = 0;
};

struct Outcome {
  std::string scenario;
  Admission admission = Admission::kBaseline;
  std::uint64_t seed = 0;
  // The longest a server's report takes to reach every replica (the pub/sub delay): a replica
  // other than the server's own sees the first evidence that much later.
  double evidence_spread_s = 0;

  // Herd bound: new users (joins and migrations) on a server per report interval of that server,
  // against its per-interval cap (ScoringParams::max_new_users_per_interval scaled by its
  // slow-start weight: what one replica alone would admit).
  double max_admission_ratio = 0;
  std::uint32_t worst_admissions = 0, worst_cap = 0;
  std::string worst_server;
  double worst_at_s = 0;
  std::uint64_t intervals_over_bound = 0;  // admissions > 1.1 * cap
  std::uint32_t servers_over_bound = 0;
  // The newcomers' worst interval (when the scenario has newcomers).
  std::optional<double> newcomer_max_admission_ratio;
  std::uint32_t newcomer_worst_admissions = 0, newcomer_worst_cap = 0;
  std::int64_t newcomer_peak_users = 0;

  // Capacity.
  double peak_utilization = 0;  // max over servers and time of users / capacity
  std::string fullest_server;
  std::uint32_t servers_over_capacity = 0;

  // Joins, from the first attempt to the placement; per surge in the scenario's order.
  std::vector<Quantiles> join_wait_s;
  Quantiles all_join_wait_s;
  std::uint64_t joins_placed = 0;
  std::uint64_t join_refusals = 0;    // attempts refused (retryable no_video_server)
  std::uint64_t budget_refusals = 0;  // choices refused by the shared budget
  std::uint64_t never_placed = 0;     // users still trying at the end

  // Migrations.
  std::uint64_t migrations = 0;
  std::uint32_t peak_migrations_into_target_per_s = 0;
  std::string peak_migration_target;

  // Health.
  std::vector<BadServer> bad;
  std::uint32_t healthy_ejected = 0;  // healthy servers some replica ejected
  std::uint32_t replicas_panicked = 0;
  std::optional<double> first_panic_s;

  std::vector<TimelineRow> timeline;
  double wall_s = 0;
  std::uint64_t events = 0;
};

// The issue 20 targets, judged on one outcome.
struct Verdict {
  std::string target;  // e.g. "admissions per interval <= 1.1 x cap"
  bool met = false;
  std::string detail;  // the numbers
};
std::vector<Verdict> Judge(const Outcome& o, std::chrono::milliseconds report_interval);

}  // namespace vrouter::bench::fleetsim
