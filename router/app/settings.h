// Every setting of `vrouter serve`, declared once in the table of settings.cc: its flag, its
// VROUTER_* variable, its range or choices, its help text and the Config member it fills (whose
// initializer is the default). Parsing, validation, --help and `vrouter --help-settings-json`
// all come from that table (router/base/options.h). Pure: what parsing derives from the machine
// (thread count, hostname, open-files limit, a random number) is passed in as HostFacts, so the
// Config it returns is complete and nothing changes it afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "router/app/config.h"
#include "router/base/options.h"

namespace vrouter::app {

// The machine's facts that defaults derive from, read once by main (host_facts.h).
struct HostFacts {
  unsigned hardware_threads = 1;  // --threads' default, within its range
  std::string hostname;           // --replica-id's default: HOSTNAME-<random hex>
  std::uint32_t random = 0;       // its suffix
  // What --max-connections 0 (the default) becomes: the open-files limit minus a reserve.
  std::size_t connection_budget = 1'000'000;
};

using EnvLookup = base::options::EnvLookup;

struct ParsedArgs {
  std::optional<Config> config;           // set on success
  std::string error;                      // set on failure: names the setting and the problem
  base::options::ErrorCode error_code{};  // with `error`: what kind of problem
  std::string error_setting;              // with `error`: the flag at fault without "--", or ""
  std::string help;                       // set when --help was asked for
};

// The table, built on first use.
const base::options::Table<Config>& ServeSettings();

// The values before any flag or variable: Config's initializers and those derived from `host`.
Config DefaultConfig(const HostFacts& host);

// `args` excludes the program name (and the subcommand, if any).
ParsedArgs ParseServeArgs(const std::vector<std::string>& args, const EnvLookup& env,
                          const HostFacts& host);

// The table as one JSON object (`vrouter --help-settings-json`): each setting's flag, variable,
// type, default, range and help. tests/router/app/settings_docs_test.py checks README.md and
// deploy/ against it.
std::string SettingsJson(const HostFacts& host);

}  // namespace vrouter::app
