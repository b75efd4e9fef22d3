// Command line of vrouter_load (see the comment at the top of vrouter_load.cc). Parsing and
// validation only: no file is read, nothing connects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/load/crowd.h"
#include "bench/sim/sim_support.h"
#include "router/base/options.h"

namespace vrouter::bench::load {

enum class Mode {
  kPeople,  // walk, join, watch/unwatch neighbours, look them up, report a broken server
  kLookup,  // join, then lookups only: paced at --rate, or closed loop (--inflight per conn)
  kEcho,    // no hello: the lookup frame is sent and expected back (an echo server baseline)
  kIdle,    // hello and join, then nothing (memory per connection)
};
const char* ModeName(Mode mode);

struct LoadOptions {
  std::vector<sim::Url> urls;  // ws:// or wss://, all with the same scheme
  std::string ca_file;
  std::string secret_file;  // not needed in echo mode
  std::uint32_t process = 0;
  std::uint32_t processes = 1;
  CrowdShape crowd;
  Mode mode = Mode::kPeople;
  double ramp = 500;      // new connections per second in this process; 0: all at once
  double duration = 60;   // seconds
  double rate = 0;        // requests per second in this process (see Mode); 0: none / closed loop
  double rate_after = 0;  // seconds after the start before paced requests begin (after a ramp)
  std::uint32_t inflight = 1;  // closed loop: outstanding requests per connection
  std::uint32_t step_ms = 1000;
  std::uint32_t tick_us = 1000;
  std::optional<double> surge_on;  // --surge ON,OFF: seconds connected, then disconnected
  double surge_off = 0;
  std::string broken_server;  // --broken ID@S
  double broken_at = 0;
  bool expect_drops = false;  // replicas are killed or restarted on purpose
  std::optional<std::int64_t> t0_unix_ms;
  std::string timeline_file;
  std::string report_file;

  bool tls() const { return !urls.empty() && urls.front().scheme == "wss"; }
};

using LoadParse = base::options::Invocation<LoadOptions>;
LoadParse ParseLoadOptions(int argc, const char* const* argv);

}  // namespace vrouter::bench::load
