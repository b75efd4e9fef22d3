#include "bench/fleetsim/report.h"

#include <boost/json.hpp>
#include <cstdio>

namespace vrouter::bench::fleetsim {
namespace {

namespace json = boost::json;

double SecondsOf(Ms d) { return std::chrono::duration<double>(d).count(); }

json::value Optional(const std::optional<double>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object QuantilesJson(const Quantiles& q) {
  return {{"count", q.count}, {"p50", q.p50}, {"p90", q.p90}, {"p99", q.p99}, {"max", q.max}};
}

json::object ScenarioJson(const Scenario& s) {
  json::array surges, faults;
  for (const Surge& u : s.surges) {
    surges.push_back({{"at_s", SecondsOf(u.at)},
                      {"users", u.users},
                      {"over_s", SecondsOf(u.over)},
                      {"region", u.region ? json::value(*u.region) : json::value(nullptr)}});
  }
  for (const Fault& f : s.faults) {
    faults.push_back(
        {{"at_s", SecondsOf(f.at)}, {"kind", FaultKindName(f.kind)}, {"servers", f.servers}});
  }
  return {{"name", s.name},
          {"seed", s.seed},
          {"replicas", s.replicas},
          {"servers", s.servers},
          {"capacity", s.capacity},
          {"regions", s.regions},
          {"newcomers", s.newcomers},
          {"newcomers_at_s", SecondsOf(s.newcomers_at)},
          {"surges", surges},
          {"faults", faults},
          {"duration_s", SecondsOf(s.duration)},
          {"session_mean_s", SecondsOf(s.session_mean)},
          {"pubsub_ms", {s.pubsub_min_ms, s.pubsub_max_ms}},
          {"admit_rtt_ms", {s.admit_rtt_min_ms, s.admit_rtt_max_ms}},
          {"choices_per_join", s.choices_per_join},
          {"media_after_s", SecondsOf(s.media_after)},
          {"load_refresh_s", SecondsOf(s.load_refresh)}};
}

json::object OutcomeJson(const Outcome& o, std::chrono::milliseconds interval) {
  json::array waits, bad, verdicts;
  for (const Quantiles& q : o.join_wait_s) waits.push_back(QuantilesJson(q));
  for (const BadServer& b : o.bad) {
    bad.push_back({{"server", b.server},
                   {"kind", FaultKindName(b.kind)},
                   {"broken_at_s", b.broken_at_s},
                   {"first_evidence_s", Optional(b.first_evidence_s)},
                   {"users_at_evidence", b.users_at_evidence},
                   {"ejected_on_replicas", b.ejected_on},
                   {"eject_after_evidence_s",
                    {{"min", Optional(b.eject_min_s)},
                     {"median", Optional(b.eject_median_s)},
                     {"max", Optional(b.eject_max_s)}}},
                   {"placed_after_evidence", b.placed_after_evidence},
                   {"placed_after_evidence_known", b.placed_after_evidence_known},
                   {"probation_placed", b.probation_placed},
                   {"migrated_off", b.migrated_off},
                   {"peak_migrations_out_per_s", b.peak_migrations_out_per_s},
                   {"emptied_after_evidence_s", Optional(b.emptied_after_s)},
                   {"users_at_end", b.users_at_end}});
  }
  bool ok = true;
  for (const Verdict& v : Judge(o, interval)) {
    ok = ok && v.met;
    verdicts.push_back({{"target", v.target}, {"met", v.met}, {"detail", v.detail}});
  }
  return {{"admission", AdmissionName(o.admission)},
          {"admissions_per_interval",
           {{"max_ratio_to_cap", o.max_admission_ratio},
            {"worst_admitted", o.worst_admissions},
            {"worst_cap", o.worst_cap},
            {"worst_server", o.worst_server},
            {"worst_at_s", o.worst_at_s},
            {"intervals_over_bound", o.intervals_over_bound},
            {"servers_over_bound", o.servers_over_bound},
            {"newcomer_max_ratio_to_cap", Optional(o.newcomer_max_admission_ratio)},
            {"newcomer_worst_admitted", o.newcomer_worst_admissions},
            {"newcomer_worst_cap", o.newcomer_worst_cap},
            {"newcomer_peak_users", o.newcomer_peak_users}}},
          {"capacity",
           {{"peak_utilization", o.peak_utilization},
            {"fullest_server", o.fullest_server},
            {"servers_over_capacity", o.servers_over_capacity}}},
          {"joins",
           {{"placed", o.joins_placed},
            {"refused_attempts", o.join_refusals},
            {"budget_refusals", o.budget_refusals},
            {"never_placed", o.never_placed},
            {"wait_s_per_surge", waits},
            {"wait_s", QuantilesJson(o.all_join_wait_s)}}},
          {"migrations",
           {{"count", o.migrations},
            {"peak_into_one_target_per_s", o.peak_migrations_into_target_per_s},
            {"peak_target", o.peak_migration_target}}},
          {"bad_servers", bad},
          {"healthy_servers_ejected", o.healthy_ejected},
          {"replicas_panicked", o.replicas_panicked},
          {"first_panic_s", Optional(o.first_panic_s)},
          {"targets", verdicts},
          {"targets_met", ok},
          {"events", o.events},
          {"wall_s", o.wall_s}};
}

std::string Line(const char* format, auto... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

}  // namespace

std::string ReportJson(const std::vector<ScenarioRun>& runs,
                       std::chrono::milliseconds report_interval, const std::string& command,
                       const std::string& commit) {
  json::array out;
  for (const ScenarioRun& run : runs) {
    json::array modes;
    for (const Outcome& o : run.outcomes) modes.push_back(OutcomeJson(o, report_interval));
    out.push_back({{"scenario", ScenarioJson(run.scenario)}, {"modes", modes}});
  }
  json::object doc{{"command", command},
                   {"git_commit", commit},
                   {"report_interval_ms", report_interval.count()},
                   {"runs", out}};
  return json::serialize(doc) + "\n";
}

std::string ReportMarkdown(const std::vector<ScenarioRun>& runs,
                           std::chrono::milliseconds report_interval) {
  std::string md;
  for (const ScenarioRun& run : runs) {
    const Scenario& s = run.scenario;
    md += Line("## %s: %u replicas, %u servers (capacity %u, %u regions), seed %llu\n\n",
               s.name.c_str(), s.replicas, s.servers, s.capacity, s.regions,
               static_cast<unsigned long long>(s.seed));
    md +=
        "| mode | max admissions/cap | newcomer max/cap | peak load/cap | over cap | join p50 / "
        "p99 / max s | refused attempts | budget refusals | migrations (peak/s into one) | "
        "panicked replicas |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Outcome& o : run.outcomes) {
      md += Line(
          "| %s | %.2f (%u/%u) | %s | %.3f | %u | %.2f / %.2f / %.2f | %llu | %llu | "
          "%llu (%u) | %u |\n",
          std::string(AdmissionName(o.admission)).c_str(), o.max_admission_ratio,
          o.worst_admissions, o.worst_cap,
          o.newcomer_max_admission_ratio ? Line("%.2f (%u/%u)", *o.newcomer_max_admission_ratio,
                                                o.newcomer_worst_admissions, o.newcomer_worst_cap)
                                               .c_str()
                                         : "-",
          o.peak_utilization, o.servers_over_capacity, o.all_join_wait_s.p50, o.all_join_wait_s.p99,
          o.all_join_wait_s.max, static_cast<unsigned long long>(o.join_refusals),
          static_cast<unsigned long long>(o.budget_refusals),
          static_cast<unsigned long long>(o.migrations), o.peak_migrations_into_target_per_s,
          o.replicas_panicked);
    }
    md += "\n";
    for (const Outcome& o : run.outcomes) {
      md += Line("%s:\n", std::string(AdmissionName(o.admission)).c_str());
      for (const Verdict& v : Judge(o, report_interval)) {
        md += Line("- [%s] %s: %s\n", v.met ? "met" : "MISSED", v.target.c_str(), v.detail.c_str());
      }
      std::uint64_t stranded = 0, placed_after = 0, migrated = 0;
      std::optional<double> slowest_empty, eject_max;
      std::uint32_t evidenced = 0, ejected = 0;
      for (const BadServer& b : o.bad) {
        stranded += static_cast<std::uint64_t>(b.users_at_end);
        placed_after += b.placed_after_evidence;
        migrated += b.migrated_off;
        evidenced += b.first_evidence_s ? 1 : 0;
        ejected += b.ejected_on > 0 ? 1 : 0;
        if (b.emptied_after_s)
          slowest_empty = std::max(slowest_empty.value_or(0), *b.emptied_after_s);
        if (b.eject_max_s) eject_max = std::max(eject_max.value_or(0), *b.eject_max_s);
      }
      if (!o.bad.empty()) {
        md += Line(
            "- broken servers: %zu (%u with evidence, %u ejected by some replica, latest "
            "ejection %.2f s after evidence); %llu users placed on them after the "
            "evidence, %llu migrated off, all emptied %s (slowest %.1f s), %llu still on "
            "them at the end; %u healthy servers ejected; %u replicas panicked (first at "
            "%.1f s)\n",
            o.bad.size(), evidenced, ejected, eject_max.value_or(-1),
            static_cast<unsigned long long>(placed_after),
            static_cast<unsigned long long>(migrated), stranded == 0 ? "yes" : "no",
            slowest_empty.value_or(-1), static_cast<unsigned long long>(stranded),
            o.healthy_ejected, o.replicas_panicked, o.first_panic_s.value_or(-1));
      }
      md += Line("- %llu events in %.1f s of wall time\n\n",
                 static_cast<unsigned long long>(o.events), o.wall_s);
    }
  }
  return md;
}

std::string TimelineDat(const Outcome& o) {
  std::string out =
      "# t_s joined refused migrated online on_bad waiting max_admission_ratio "
      "replicas_in_panic\n";
  for (const TimelineRow& r : o.timeline) {
    out +=
        Line("%g %llu %llu %llu %llu %llu %llu %g %u\n", r.t_s,
             static_cast<unsigned long long>(r.joined), static_cast<unsigned long long>(r.refused),
             static_cast<unsigned long long>(r.migrated), static_cast<unsigned long long>(r.online),
             static_cast<unsigned long long>(r.on_bad), static_cast<unsigned long long>(r.waiting),
             r.max_admission_ratio, r.replicas_in_panic);
  }
  return out;
}

}  // namespace vrouter::bench::fleetsim
