// The fleetsim command line, parsed without side effects: which scenarios to run and how to
// change them. Bad input is one line saying what is wrong (the CLI prints it and exits 2).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "bench/fleetsim/scenario.h"

namespace vrouter::bench::fleetsim {

struct Options {
  std::vector<Scenario> scenarios;  // presets with the overrides applied, validated
  std::string out;                  // directory for report.json, report.md, timelines ("": none)
  bool check = false;               // exit 1 when the shared mode misses a target
  std::string commit;               // recorded in the report
};

struct UsageError {
  std::string message;
};

// `args` without the program name. --help is a UsageError whose message is the usage text.
std::variant<Options, UsageError> ParseOptions(std::span<const std::string_view> args);
std::string Usage();

}  // namespace vrouter::bench::fleetsim
