#include "bench/fleetsim/outcome.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace vrouter::bench::fleetsim {
namespace {

constexpr double kHerdBound = 1.1;
constexpr double kJoinWaitBoundS = 5;
constexpr double kEjectIntervals = 2;

std::string Format(const char* format, auto... args) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

}  // namespace

Quantiles QuantilesOf(std::vector<double>& values) {
  Quantiles q;
  q.count = values.size();
  if (values.empty()) return q;
  std::sort(values.begin(), values.end());
  auto rank = [&](double p) {
    const auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
    return values[std::clamp<std::size_t>(i, 1, values.size()) - 1];
  };
  q.p50 = rank(0.5);
  q.p90 = rank(0.9);
  q.p99 = rank(0.99);
  q.max = values.back();
  return q;
}

std::vector<Verdict> Judge(const Outcome& o, std::chrono::milliseconds report_interval) {
  std::vector<Verdict> v;
  v.push_back(
      {"admissions per server and interval <= 1.1 x its cap", o.max_admission_ratio <= kHerdBound,
       Format("worst %.2f x (%u admitted, cap %u, %s at %.0f s); %llu intervals on %u "
              "servers over the bound",
              o.max_admission_ratio, o.worst_admissions, o.worst_cap, o.worst_server.c_str(),
              o.worst_at_s, static_cast<unsigned long long>(o.intervals_over_bound),
              o.servers_over_bound)});
  v.push_back({"no server over its capacity", o.servers_over_capacity == 0,
               Format("peak %.3f x capacity (%s); %u servers over", o.peak_utilization,
                      o.fullest_server.c_str(), o.servers_over_capacity)});
  double worst_p99 = 0;
  for (const Quantiles& q : o.join_wait_s) worst_p99 = std::max(worst_p99, q.p99);
  v.push_back(
      {"p99 join wait <= 5 s (every surge)", worst_p99 <= kJoinWaitBoundS && o.never_placed == 0,
       Format("worst surge p99 %.2f s, all joins p50 %.2f p90 %.2f p99 %.2f max %.2f s; "
              "%llu never placed",
              worst_p99, o.all_join_wait_s.p50, o.all_join_wait_s.p90, o.all_join_wait_s.p99,
              o.all_join_wait_s.max, static_cast<unsigned long long>(o.never_placed))});
  const double interval_s = std::chrono::duration<double>(report_interval).count();
  for (const BadServer& b : o.bad) {
    if (b.kind != FaultKind::kBlackHole) continue;
    const bool ejected = b.eject_max_s.has_value();
    // Each replica within 2 intervals of the evidence reaching it (the pub/sub delay after it
    // reached the replica the server reports to).
    v.push_back({"black hole " + b.server +
                     " ejected within 2 intervals of the first evidence (reaching each replica)",
                 ejected && *b.eject_max_s <= kEjectIntervals * interval_s + o.evidence_spread_s,
                 ejected ? Format("on %u replicas, after %.3f / %.3f / %.3f s (min / median / "
                                  "max)",
                                  b.ejected_on, *b.eject_min_s, *b.eject_median_s, *b.eject_max_s)
                         : std::string("never ejected")});
    v.push_back({"black hole " + b.server + ": no user placed after the first evidence",
                 b.placed_after_evidence == 0,
                 Format("%llu placed after it, %llu of them chosen by a replica that had the "
                        "evidence; %llu more readmitted on probation after an ejection ran out",
                        static_cast<unsigned long long>(b.placed_after_evidence),
                        static_cast<unsigned long long>(b.placed_after_evidence_known),
                        static_cast<unsigned long long>(b.probation_placed))});
    v.push_back(
        {"black hole " + b.server + ": its users migrated",
         b.users_at_end == 0 && b.emptied_after_s.has_value(),
         Format("%lld users at the evidence, %llu migrated off, peak %u/s out, first empty "
                "%.1f s after the evidence, %lld left at the end",
                static_cast<long long>(b.users_at_evidence),
                static_cast<unsigned long long>(b.migrated_off), b.peak_migrations_out_per_s,
                b.emptied_after_s.value_or(-1), static_cast<long long>(b.users_at_end))});
  }
  return v;
}

}  // namespace vrouter::bench::fleetsim
