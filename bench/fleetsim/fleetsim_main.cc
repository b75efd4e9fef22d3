// fleetsim: the fleet simulator's command line (bench/fleetsim/README.md). Runs each scenario in
// every admission mode (same seed, same events), prints the markdown summary, and with --out
// writes report.json, report.md and one timeline per scenario and mode.
// Exit status: 0, or 1 with --check when the shared mode misses a target; 2 on bad usage.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench/fleetsim/cli.h"
#include "bench/fleetsim/report.h"
#include "bench/fleetsim/simulator.h"

namespace {

using namespace vrouter::bench::fleetsim;

bool Write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto parsed = ParseOptions(args);
  if (auto* error = std::get_if<UsageError>(&parsed)) {
    const bool help = error->message == Usage();
    (help ? std::cout : std::cerr)
        << (help ? "" : "fleetsim: ") << error->message << (help ? "" : "\n");
    return help ? 0 : 2;
  }
  const Options& o = std::get<Options>(parsed);
  const vrouter::fleet::FleetParams params;
  std::string command = "fleetsim";
  for (auto a : args) command += " " + std::string(a);
  std::vector<ScenarioRun> runs;
  bool ok = true;
  for (const Scenario& s : o.scenarios) {
    ScenarioRun run{s, {}};
    for (Admission a : s.admissions) {
      std::cerr << "fleetsim: " << s.name << " / " << AdmissionName(a) << " ..." << std::flush;
      run.outcomes.push_back(Simulate(s, a, params));
      std::cerr << " " << run.outcomes.back().wall_s << " s\n";
      if (a == Admission::kShared) {
        for (const Verdict& v : Judge(run.outcomes.back(), params.report_interval)) {
          ok = ok && v.met;
        }
      }
    }
    runs.push_back(std::move(run));
  }
  const std::string md = ReportMarkdown(runs, params.report_interval);
  std::cout << md;
  if (!o.out.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);
    const std::filesystem::path dir(o.out);
    bool written =
        !ec &&
        Write(dir / "report.json", ReportJson(runs, params.report_interval, command, o.commit)) &&
        Write(dir / "report.md", md);
    for (const ScenarioRun& run : runs) {
      for (const Outcome& out : run.outcomes) {
        written = written && Write(dir / (run.scenario.name + "-" +
                                          std::string(AdmissionName(out.admission)) + ".dat"),
                                   TimelineDat(out));
      }
    }
    if (!written) {
      std::cerr << "fleetsim: cannot write to " << o.out << "\n";
      return 2;
    }
  }
  return o.check && !ok ? 1 : 0;
}
