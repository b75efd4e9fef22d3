#include "bench/sim/sim_options.h"

#include <boost/program_options.hpp>
#include <cmath>
#include <set>
#include <sstream>

#include "proto/codec.h"
#include "proto/video_server_messages.h"

namespace vrouter::bench::sim {
namespace po = boost::program_options;

namespace {
// One process, one thread, one socket each: beyond this, run several processes.
constexpr std::uint32_t kMaxServers = 20'000;
}  // namespace

std::string SimOptions::RouterTarget() const {
  return router.target == "/" ? std::string(proto::kVideoServerPath) : router.target;
}

std::vector<ServerPlan> PlanServers(const SimOptions& options) {
  std::vector<ServerPlan> out;
  out.reserve(options.servers);
  for (std::uint32_t i = 0; i < options.servers; ++i) {
    ServerPlan p;
    p.id = options.id_prefix + std::to_string(i);
    p.region = options.regions[i % options.regions.size()];
    p.url = ExpandTemplate(options.url_template, p.id);
    if (auto it = options.behaviors.find(p.id); it != options.behaviors.end()) p.spec = it->second;
    out.push_back(std::move(p));
  }
  return out;
}

ParseOutcome ParseSimOptions(int argc, const char* const* argv) {
  ParseOutcome out;
  auto fail = [&](std::string message) {
    out.options.reset();
    out.message = std::move(message);
    out.exit_code = 2;
    return out;
  };
  SimOptions o;
  std::string regions = "eu-west";
  std::vector<std::string> behaviors;
  po::options_description desc(
      "sim_video_server: simulated video servers (SFUs) reporting to a vrouter on "
      "/v1/video-server");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help")
    ("router", po::value(&o.router_text)->required(),
     "ws://HOST:PORT or wss://HOST:PORT of the router (path defaults to /v1/video-server)")
    ("admin", po::value(&o.admin_text),
     "http://HOST:PORT of the router's admin API, polled for each server's assigned users "
     "(without it every server sees 0 users)")
    ("secret-file", po::value(&o.secret_file)->required(),
     "file holding the video-server token key (HS256), surrounding whitespace ignored")
    ("ca", po::value(&o.ca_file),
     "wss: PEM file to verify the router's certificate with (default: no verification)")
    ("servers", po::value(&o.servers)->default_value(o.servers), "simulated servers")
    ("id-prefix", po::value(&o.id_prefix)->default_value(o.id_prefix),
     "server ids are PREFIX0..PREFIX(N-1)")
    ("regions", po::value(&regions)->default_value(regions), "comma-separated, round-robin")
    ("capacity", po::value(&o.capacity)->default_value(o.capacity), "users per server")
    ("url-template", po::value(&o.url_template)->default_value(o.url_template),
     "public media URL of each server; {id} is replaced by the id")
    ("behavior", po::value(&behaviors),
     "ID=MODE[@SECONDS], repeatable. MODE: healthy, blackhole, frozen, restart, dead, flapping, "
     "garbage; it starts SECONDS after the start (default 0), healthy before")
    ("flap-period", po::value(&o.flap_period)->default_value(o.flap_period),
     "flapping: seconds down, then up, alternating")
    ("restart-in-place", po::bool_switch(&o.restart_in_place),
     "restart: reset seq and counters on the same connection instead of reconnecting")
    ("duration", po::value(&o.duration)->default_value(o.duration),
     "seconds to run; 0: until SIGINT/SIGTERM")
    ("pps", po::value(&o.pps)->default_value(o.pps), "media packets per second per user")
    ("token-ttl", po::value(&o.token_ttl_s)->default_value(o.token_ttl_s),
     "lifetime of the register token, seconds (a fresh one per connection)")
    ("summary", po::value(&o.summary_file), "also write the JSON summary to this file");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help") != 0) {
      std::ostringstream help;
      help << desc;
      out.message = help.str();
      out.exit_code = 0;
      return out;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }

  auto router = ParseUrl(o.router_text, {"ws", "wss"});
  if (auto* err = std::get_if<std::string>(&router)) return fail("--router " + *err);
  o.router = std::get<Url>(std::move(router));
  if (!o.admin_text.empty()) {
    auto admin = ParseUrl(o.admin_text, {"http"});
    if (auto* err = std::get_if<std::string>(&admin)) return fail("--admin " + *err);
    o.admin = std::get<Url>(std::move(admin));
  }
  if (!o.ca_file.empty() && o.router.scheme != "wss") return fail("--ca needs a wss:// --router");
  if (o.servers == 0 || o.servers > kMaxServers) {
    return fail("--servers must be 1.." + std::to_string(kMaxServers));
  }
  if (o.capacity == 0 || o.capacity > proto::kMaxCapacity) {
    return fail("--capacity must be 1.." + std::to_string(proto::kMaxCapacity));
  }
  o.regions = SplitList(regions);
  if (o.regions.empty()) return fail("--regions: at least one region");
  for (const auto& r : o.regions) {
    if (r.size() > proto::kMaxRegionBytes || !proto::IsValidId(r)) {
      return fail("--regions: invalid region '" + r + "'");
    }
  }
  if (!(o.flap_period > 0) || !std::isfinite(o.flap_period)) {
    return fail("--flap-period must be > 0");
  }
  if (!(o.duration >= 0) || !std::isfinite(o.duration)) return fail("--duration must be >= 0");
  if (!(o.pps >= 0) || !std::isfinite(o.pps)) return fail("--pps must be >= 0");
  if (o.token_ttl_s <= 0) return fail("--token-ttl must be > 0");
  const std::string last_id = o.id_prefix + std::to_string(o.servers - 1);
  if (!proto::IsValidId(o.id_prefix + "0") || !proto::IsValidId(last_id)) {
    return fail("--id-prefix: '" + last_id + "' is not a valid server id (1..128 bytes)");
  }

  std::set<std::string> ids;
  for (std::uint32_t i = 0; i < o.servers; ++i) ids.insert(o.id_prefix + std::to_string(i));
  for (const auto& text : behaviors) {
    auto parsed = ParseBehaviorFlag(text);
    if (auto* err = std::get_if<std::string>(&parsed)) return fail(*err);
    auto& flag = std::get<BehaviorFlag>(parsed);
    if (ids.count(flag.id) == 0) {
      return fail("--behavior '" + text + "': no simulated server '" + flag.id + "' (ids are " +
                  o.id_prefix + "0.." + last_id + ")");
    }
    if (!o.behaviors.emplace(flag.id, flag.spec).second) {
      return fail("--behavior: server '" + flag.id + "' given twice");
    }
  }
  // Expanded URLs must be acceptable to the router; the last id is the longest.
  const std::string last_url = ExpandTemplate(o.url_template, last_id);
  if (last_url.empty() || last_url.size() > proto::kMaxUrlBytes) {
    return fail("--url-template: URL of " + last_id + " is empty or longer than " +
                std::to_string(proto::kMaxUrlBytes) + " bytes");
  }
  out.options = std::move(o);
  return out;
}

}  // namespace vrouter::bench::sim
