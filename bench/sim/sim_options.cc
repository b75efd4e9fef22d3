#include "bench/sim/sim_options.h"

#include <set>
#include <utility>

#include "proto/codec.h"
#include "proto/video_server_messages.h"
#include "router/base/options.h"
#include "router/base/result.h"

namespace vrouter::bench::sim {

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

namespace {

namespace options = base::options;
using options::Range;

// One process, one thread, one socket each: beyond this, run several processes.
constexpr std::uint32_t kMaxServers = 20'000;

base::Status<> ParseRouter(std::string_view text, SimOptions& o) {
  auto router = ParseUrl(text, {"ws", "wss"});
  if (auto* err = router.error_message()) return base::Fail(*err);
  o.router_text = std::string(text);
  o.router = std::get<Url>(std::move(router));
  return {};
}

base::Status<> ParseAdmin(std::string_view text, SimOptions& o) {
  o.admin_text = std::string(text);
  o.admin.reset();
  if (text.empty()) return {};
  auto admin = ParseUrl(text, {"http"});
  if (auto* err = admin.error_message()) return base::Fail(*err);
  o.admin = std::get<Url>(std::move(admin));
  return {};
}

base::Status<> ParseRegions(std::string_view text, std::vector<std::string>& out) {
  out = SplitList(text);
  if (out.empty()) return base::Fail("at least one region");
  for (const auto& r : out) {
    if (r.size() > proto::kMaxRegionBytes || !proto::IsValidId(r)) {
      return base::Fail("invalid region '" + r + "'");
    }
  }
  return {};
}

std::string ShowRegions(const std::vector<std::string>& regions) {
  std::string out;
  for (const auto& r : regions) out += (out.empty() ? "" : ",") + r;
  return out;
}

// One --behavior ID=MODE[@SECONDS]; the ids are checked once --servers and --id-prefix are known.
base::Status<> ParseBehavior(std::string_view text, std::map<std::string, BehaviorSpec>& out) {
  auto parsed = ParseBehaviorFlag(text);
  if (auto* err = parsed.error_message()) return base::Fail(*err);
  auto& flag = std::get<BehaviorFlag>(parsed);
  if (!out.emplace(flag.id, flag.spec).second)
    return base::Fail("server '" + flag.id + "' given twice");
  return {};
}

std::string ShowBehaviors(const std::map<std::string, BehaviorSpec>& behaviors) {
  std::string out;
  for (const auto& [id, spec] : behaviors) {
    out += (out.empty() ? "" : " ") + id + "=" + std::string(BehaviorName(spec.behavior)) + "@" +
           options::FormatNumber(spec.at);
  }
  return out;
}

std::string LastId(const SimOptions& o) { return o.id_prefix + std::to_string(o.servers - 1); }

options::Table<SimOptions> MakeTable() {
  options::Table<SimOptions> t(
      "usage: sim_video_server --router URL --secret-file FILE [options]\n", /*env_prefix=*/"");
  auto whole = [](auto& o) -> auto& { return o; };
  // clang-format off
  t.Section("sim_video_server: simulated video servers (SFUs) reporting to a vrouter on "
            "/v1/video-server");
  t.Custom("router", whole, "URL",
           "ws://HOST:PORT or wss://HOST:PORT of the router (path defaults to /v1/video-server)",
           ParseRouter, [](const SimOptions& o) { return o.router_text; }).Required();
  t.Custom("admin", whole, "URL",
           "http://HOST:PORT of the router's admin API, polled for each server's assigned users "
           "(without it every server sees 0 users)",
           ParseAdmin, [](const SimOptions& o) { return o.admin_text; });
  t.Text("secret-file", VROUTER_FIELD(secret_file),
         "file holding the video-server token key (HS256), surrounding whitespace ignored")
      .Value("FILE").Required();
  t.Text("ca", VROUTER_FIELD(ca_file),
         "wss: PEM file to verify the router's certificate with (default: no verification)")
      .Value("FILE");
  t.Integer("servers", VROUTER_FIELD(servers), Range::In(1, kMaxServers), "simulated servers");
  t.Text("id-prefix", VROUTER_FIELD(id_prefix), "server ids are PREFIX0..PREFIX(N-1)")
      .Value("PREFIX");
  t.Custom("regions", VROUTER_FIELD(regions), "A,B", "comma-separated, round-robin",
           ParseRegions, ShowRegions);
  t.Integer("capacity", VROUTER_FIELD(capacity), Range::In(1, proto::kMaxCapacity),
            "users per server");
  t.Text("url-template", VROUTER_FIELD(url_template),
         "public media URL of each server; {id} is replaced by the id").Value("URL");
  t.Custom("behavior", VROUTER_FIELD(behaviors), "ID=MODE[@SECONDS]",
           "MODE: healthy, blackhole, frozen, restart, dead, flapping, garbage; it starts SECONDS "
           "after the start (default 0), healthy before", ParseBehavior, ShowBehaviors)
      .Repeatable();
  t.Real("flap-period", VROUTER_FIELD(flap_period), Range::Above(0),
         "flapping: seconds down, then up, alternating");
  t.Switch("restart-in-place", VROUTER_FIELD(restart_in_place),
           "restart: reset seq and counters on the same connection instead of reconnecting");
  t.Real("duration", VROUTER_FIELD(duration), Range::AtLeast(0),
         "seconds to run; 0: until SIGINT/SIGTERM");
  t.Real("pps", VROUTER_FIELD(pps), Range::AtLeast(0), "media packets per second per user");
  t.Integer("token-ttl", VROUTER_FIELD(token_ttl_s), Range::AtLeast(1),
            "lifetime of the register token, seconds (a fresh one per connection)");
  t.Text("summary", VROUTER_FIELD(summary_file), "also write the JSON summary to this file")
      .Value("FILE");
  // clang-format on
  using Error = options::Error;
  using Code = options::ErrorCode;
  t.Check([](const SimOptions& o) -> std::optional<Error> {
    if (o.ca_file.empty() || o.router.scheme == "wss") return std::nullopt;
    return Error{Code::kConflict, "ca", "--ca needs a wss:// --router"};
  });
  t.Check([](const SimOptions& o) -> std::optional<Error> {
    if (proto::IsValidId(o.id_prefix + "0") && proto::IsValidId(LastId(o))) return std::nullopt;
    return Error{Code::kInvalid, "id-prefix",
                 "--id-prefix: '" + LastId(o) + "' is not a valid server id (1..128 bytes)"};
  });
  t.Check([](const SimOptions& o) -> std::optional<Error> {
    std::set<std::string> ids;
    for (std::uint32_t i = 0; i < o.servers; ++i) ids.insert(o.id_prefix + std::to_string(i));
    for (const auto& [id, spec] : o.behaviors) {
      const bool known = ids.count(id) != 0;
      if (!known) {
        return Error{Code::kConflict, "behavior",
                     "--behavior: no simulated server '" + id + "' (ids are " + o.id_prefix +
                         "0.." + LastId(o) + ")"};
      }
    }
    return std::nullopt;
  });
  t.Check([](const SimOptions& o) -> std::optional<Error> {
    // Expanded URLs must be acceptable to the router; the last id is the longest.
    const std::string last_url = ExpandTemplate(o.url_template, LastId(o));
    if (!last_url.empty() && last_url.size() <= proto::kMaxUrlBytes) return std::nullopt;
    return Error{Code::kInvalid, "url-template",
                 "--url-template: URL of " + LastId(o) + " is empty or longer than " +
                     std::to_string(proto::kMaxUrlBytes) + " bytes"};
  });
  return t;
}

}  // namespace

ParseOutcome ParseSimOptions(int argc, const char* const* argv) {
  static const options::Table<SimOptions> table = MakeTable();
  return table.ParseMain(argc, argv);
}

}  // namespace vrouter::bench::sim
