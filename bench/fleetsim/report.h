// The simulator's outcomes written out: report.json (every number), a markdown summary (the
// comparison of admission modes, the targets met or not) and per-second timelines for gnuplot.
#pragma once

#include <string>
#include <vector>

#include "bench/fleetsim/outcome.h"
#include "bench/fleetsim/scenario.h"

namespace vrouter::bench::fleetsim {

struct ScenarioRun {
  Scenario scenario;
  std::vector<Outcome> outcomes;  // one per admission mode, in the scenario's order
};

// `command` and `commit` are recorded as given.
std::string ReportJson(const std::vector<ScenarioRun>& runs,
                       std::chrono::milliseconds report_interval, const std::string& command,
                       const std::string& commit);
std::string ReportMarkdown(const std::vector<ScenarioRun>& runs,
                           std::chrono::milliseconds report_interval);
// Whitespace-separated columns with a "#" header line.
std::string TimelineDat(const Outcome& o);

}  // namespace vrouter::bench::fleetsim
