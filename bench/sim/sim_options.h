// Command line of sim_video_server (see the comment at the top of sim_video_server.cc).
// Parsing and validation only: no file is read, nothing connects.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/sim/media_model.h"
#include "bench/sim/sim_support.h"
#include "router/base/options.h"

namespace vrouter::bench::sim {

struct SimOptions {
  std::string router_text;  // as given, for logs and the summary
  Url router;               // ws:// or wss://; target "/" means proto::kVideoServerPath
  std::string admin_text;   // empty: no admin API, every server sees 0 assigned users
  std::optional<Url> admin;
  std::string secret_file;
  std::string ca_file;  // wss only: verify the router's certificate against it
  std::uint32_t servers = 1;
  std::string id_prefix = "sim-";
  std::vector<std::string> regions = {"eu-west"};
  std::uint32_t capacity = 500;
  std::string url_template = "wss://{id}.media.test/rtc";
  std::map<std::string, BehaviorSpec> behaviors;  // by server id; absent: healthy
  double flap_period = 5;
  double duration = 0;  // seconds; 0: until SIGINT/SIGTERM
  double pps = 100;
  std::int64_t token_ttl_s = 3600;
  bool restart_in_place = false;
  std::string summary_file;

  // The path the WebSocket handshake asks for.
  std::string RouterTarget() const;
};

// One simulated server, as the options describe it.
struct ServerPlan {
  std::string id;
  std::string region;
  std::string url;
  BehaviorSpec spec;
};
// ids id_prefix + 0..servers-1, regions round-robin.
std::vector<ServerPlan> PlanServers(const SimOptions& options);

using ParseOutcome = base::options::Invocation<SimOptions>;
ParseOutcome ParseSimOptions(int argc, const char* const* argv);

}  // namespace vrouter::bench::sim
