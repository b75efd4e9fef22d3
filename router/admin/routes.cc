#include "router/admin/routes.h"

#include <prometheus/text_serializer.h>

#include <boost/json.hpp>
#include <chrono>
#include <cmath>

#include "router/admin/dashboard_assets.h"
#include "router/service/fleet_controller.h"

namespace vrouter::admin {
namespace json = boost::json;

namespace {

AdminResponse Json(int status, const json::value& v) {
  return {status, "application/json", json::serialize(v) + "\n", {}};
}

AdminResponse NotFound(std::string_view what) {
  return Json(404, json::object{{"error", "not_found"}, {"message", what}});
}

// Gauges that mirror state owned elsewhere are refreshed when scraped, not on every change.
void RefreshGauges(service::Service& s) {
  s.metrics.assignments->Set(static_cast<double>(s.store.size()));
  s.metrics.video_servers->Set(static_cast<double>(s.fleet.Snapshot()->servers().size()));
  s.metrics.ready->Set(s.draining.load() || !s.store.Problem().empty() ? 0 : 1);
}

AdminResponse Readiness(service::Service& s) {
  const bool draining = s.draining.load();
  // A replica that cannot write to the shared store refuses joins: it is not ready, and says why
  // (it still answers lookups of what it holds, so clients already on it are better off staying).
  const std::string store_problem = s.store.Problem();
  const bool ready = !draining && store_problem.empty();
  const auto fleet = s.fleet.Snapshot();
  json::object body{
      {"ready", ready},
      {"replica", s.replica_id},
      {"draining", draining},
      {"store", store_problem.empty() ? json::value("ok") : json::value(store_problem)},
      {"video_servers", fleet->servers().size()},
      {"auth_configured", !s.client_keys.Get()->empty()},
      {"connections", s.open_connections.load()}};
  const fleet::FleetView view = s.fleet_control.View();
  json::object states;
  for (int i = 0; i < fleet::kServerStateCount; ++i) {
    states[fleet::ServerStateName(static_cast<fleet::ServerState>(i))] = 0;
  }
  for (const auto& v : view.servers) {
    states[fleet::ServerStateName(v.state)] =
        states[fleet::ServerStateName(v.state)].as_int64() + 1;
  }
  body["fleet"] = json::object{{"states", std::move(states)}, {"panic", view.panic}};
  json::array warnings;
  if (fleet->empty()) warnings.emplace_back("no video servers: joins fail with no_video_server");
  // Panic is about the fleet (or this router's view of it), not this replica: it stays ready,
  // since refusing clients would not help them, but says so loudly.
  if (view.panic) warnings.emplace_back("fleet panic: " + view.panic_detail);
  if (s.client_keys.Get()->empty())
    warnings.emplace_back(
        "no client token key (--auth-secret, --auth-keys-dir): hello fails with "
        "auth_not_configured");
  if (!store_problem.empty()) warnings.emplace_back("store: " + store_problem);
  body["warnings"] = std::move(warnings);
  return Json(ready ? 200 : 503, body);
}

json::value Ms(std::optional<std::chrono::milliseconds> d) {
  return d ? json::value(d->count()) : json::value(nullptr);
}

// One server as the operator sees it: what it is, where it stands, every signal behind the score.
json::object ServerJson(const fleet::ServerView& v, base::SteadyTime now) {
  json::array history;
  for (const auto& h : v.history) {
    history.push_back(json::object{
        {"from", fleet::ServerStateName(h.from)},
        {"to", fleet::ServerStateName(h.to)},
        {"reason", fleet::ChangeReasonName(h.reason)},
        {"ago_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - h.at).count()}});
  }
  json::object rates;
  if (v.rates) {
    rates = json::object{{"packets_in", v.rates->packets_in},
                         {"packets_out", v.rates->packets_out},
                         {"bytes_in", v.rates->bytes_in},
                         {"bytes_out", v.rates->bytes_out},
                         {"over_seconds", v.rates->seconds}};
  }
  return json::object{
      {"id", v.server.id},
      {"url", v.server.url},
      {"region", v.server.region},
      {"capacity", v.server.capacity},
      {"declared", v.declared},
      {"monitored", v.monitored},
      {"connected", v.connected},
      {"state", fleet::ServerStateName(v.state)},
      {"reason", fleet::ChangeReasonName(v.reason)},
      {"in_state_ms", v.in_state.count()},
      {"assigned", v.own},
      {"eligible", v.score.eligible()},
      {"ineligible_reason", v.score.eligible()
                                ? json::value(nullptr)
                                : json::value(fleet::IneligibleName(v.score.ineligible))},
      {"score", json::object{{"effective_load", v.score.effective_load},
                             {"utilization", v.score.utilization},
                             {"interval_cap", v.score.interval_cap}}},
      {"signals",
       json::object{{"reported_load", v.reported_load},
                    {"counter_load", v.counter_load},
                    {"own_assigned", v.own},
                    {"pending_since_report", v.pending},
                    {"failure_reporters", v.failure_reporters},
                    {"failure_share", v.failure_share},
                    {"forwarding", fleet::ForwardingName(v.forwarding)},
                    {"consecutive_bad_reports", v.bad_reports},
                    {"slow_start_weight", v.weight},
                    {"new_users_this_interval", v.new_this_interval},
                    {"last_report_age_ms", Ms(v.last_report_age)},
                    {"peers", v.latest.peers},
                    {"media_peers", v.latest.media_peers},
                    {"cpu", v.latest.cpu},
                    {"streams_in", v.latest.streams_in ? json::value(*v.latest.streams_in)
                                                       : json::value(nullptr)},
                    {"streams_out", v.latest.streams_out ? json::value(*v.latest.streams_out)
                                                         : json::value(nullptr)},
                    {"seq", v.latest.seq},
                    {"rates", v.rates ? json::value(std::move(rates)) : json::value(nullptr)}}},
      {"ejection",
       json::object{{"reason", v.eject_reason ? json::value(fleet::EjectReasonName(*v.eject_reason))
                                              : json::value(nullptr)},
                    {"remaining_ms", Ms(v.ejected_for)},
                    {"times", v.ejections},
                    {"multiplier", v.ejection_multiplier},
                    {"probation", v.probation}}},
      {"reports", json::object{{"accepted", v.stats_accepted},
                               {"reordered", v.stats_reordered},
                               {"resets", v.stats_resets},
                               {"recent_restarts", v.recent_restarts}}},
      {"history", std::move(history)}};
}

AdminResponse Servers(service::Service& s) {
  const fleet::FleetView view = s.fleet_control.View();
  json::array out;
  for (const auto& v : view.servers) out.push_back(ServerJson(v, view.taken_at));
  return Json(200, json::object{{"panic", view.panic},
                                {"panic_detail", view.panic_detail},
                                {"max_ejected", view.max_ejected},
                                {"servers", std::move(out)}});
}

AdminResponse ServerOf(service::Service& s, std::string_view id) {
  const fleet::FleetView view = s.fleet_control.View();
  for (const auto& v : view.servers) {
    if (v.server.id == id) return Json(200, ServerJson(v, view.taken_at));
  }
  return NotFound("no such video server");
}

AdminResponse AssignmentOf(service::Service& s, std::string_view user) {
  auto a = s.store.GetLocal(user);
  if (!a) return NotFound("no assignment for this user");
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(s.steady_now() - a->since);
  return Json(200, json::object{{"user", a->user},
                                {"space", a->space},
                                {"server", a->server},
                                {"epoch", a->epoch},
                                {"replica", a->replica},
                                {"attached", a->session != 0},
                                {"since_ms", age.count()}});
}

// Decodes %XX escapes in a path segment; returns false on a malformed escape.
bool PercentDecode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// POST /v1/servers/{id}/drain and /undrain.
AdminResponse ServerAction(service::Service& s, std::string_view rest) {
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos) return NotFound("no such admin endpoint");
  const std::string_view action = rest.substr(slash + 1);
  std::string id;
  if (!PercentDecode(rest.substr(0, slash), id) || id.empty()) {
    return Json(400, json::object{{"error", "bad_request"}, {"message", "malformed server id"}});
  }
  bool found = false;
  if (action == "drain") {
    found = s.fleet_control.Drain(id);
  } else if (action == "undrain") {
    found = s.fleet_control.Undrain(id);
  } else {
    return NotFound("no such action; use drain or undrain");
  }
  if (!found) return NotFound("no such video server");
  return ServerOf(s, id);
}

AdminResponse Unauthorized(const service::Service& s) {
  AdminResponse r = Json(
      401, json::object{{"error", "unauthorized"},
                        {"message", s.admin.configured()
                                        ? "send Authorization: Bearer <admin token>"
                                        : "no admin token is configured: only loopback may use "
                                          "/v1/* (e.g. kubectl port-forward)"}});
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"vrouter-admin\"");
  return r;
}

AdminResponse Forbidden(std::string_view what) {
  return Json(403, json::object{{"error", "forbidden"}, {"message", what}});
}

// GET /v1/whoami: what the caller's credential allows (the dashboard shows controls from it).
AdminResponse WhoAmI(const service::Service& s, edge::AdminAccess access) {
  return Json(200, json::object{{"access", edge::AdminAccessName(access)},
                                {"tokens_configured", s.admin.configured()},
                                {"replica", s.replica_id}});
}

// Counts kept as doubles by prometheus-cpp, shown as the whole numbers they are.
std::int64_t CounterValue(const prometheus::Counter* c) { return c ? std::llround(c->Value()) : 0; }
std::int64_t GaugeValue(const prometheus::Gauge* g) { return g ? std::llround(g->Value()) : 0; }

// GET /v1/replica: this replica's connections and cumulative request counters (the dashboard
// turns them into rates between two polls).
AdminResponse Replica(service::Service& s) {
  RefreshGauges(s);
  const telemetry::Metrics& m = s.metrics;
  json::object received, sent, errors;
  for (std::size_t i = 0; i < std::size(proto::kClientTypeNames); ++i) {
    received[proto::kClientTypeNames[i]] = CounterValue(m.messages_received[i]);
  }
  for (std::size_t i = 0; i < std::size(proto::kServerTypeNames); ++i) {
    sent[proto::kServerTypeNames[i]] = CounterValue(m.messages_sent[i]);
  }
  for (int i = 0; i < proto::kErrorCodeCount; ++i) {
    const std::int64_t v = CounterValue(m.errors[static_cast<std::size_t>(i)]);
    if (v > 0) errors[proto::ErrorCodeName(static_cast<proto::ErrorCode>(i))] = v;
  }
  const std::string store_problem = s.store.Problem();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.steady_now() - s.started_at);
  return Json(
      200,
      json::object{
          {"replica", s.replica_id},
          {"uptime_ms", uptime.count()},
          {"draining", s.draining.load()},
          {"store", store_problem.empty() ? json::value("ok") : json::value(store_problem)},
          {"connections",
           json::object{
               {"open", s.open_connections.load()},
               {"max", s.limits.max_connections},
               {"ws", GaugeValue(m.connections[static_cast<int>(telemetry::Transport::kWs)])},
               {"wss", GaugeValue(m.connections[static_cast<int>(telemetry::Transport::kWss)])},
               {"video_servers", GaugeValue(m.video_server_connections)}}},
          {"assignments", s.store.size()},
          {"watches", GaugeValue(m.watches)},
          {"totals", json::object{{"received", std::move(received)},
                                  {"sent", std::move(sent)},
                                  {"errors", std::move(errors)},
                                  {"refused_overload", CounterValue(m.rejected_overload)},
                                  {"slow_consumer_closes", CounterValue(m.slow_consumer_closes)},
                                  {"sessions_replaced", CounterValue(m.sessions_replaced)}}}});
}

// The dashboard's static files, embedded in the binary (no CDN, no files to ship next to it).
std::optional<AdminResponse> Asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (const auto& a : DashboardAssets()) {
    if (a.path != path) continue;
    AdminResponse r{200, std::string(a.content_type), std::string(a.body), {}};
    // Only our own scripts and styles run, and the page cannot be framed (clickjacking of the
    // drain buttons).
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'self'; "
                           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    return r;
  }
  return std::nullopt;
}

}  // namespace

AdminResponse HandleAdmin(const AdminRequest& req, service::Service& service) {
  const std::string_view path = req.target.substr(0, req.target.find('?'));
  const std::string_view method = req.method;
  constexpr std::string_view kServers = "/v1/servers/";
  const edge::AdminAccess access = edge::GrantAdminAccess(service.admin, req.caller);
  if (method == "POST") {
    if (!path.starts_with(kServers)) {
      return Json(405, json::object{{"error", "method_not_allowed"},
                                    {"message", "POST only on /v1/servers/{id}/drain|undrain"}});
    }
    if (access == edge::AdminAccess::kNone) return Unauthorized(service);
    if (access != edge::AdminAccess::kWrite) return Forbidden("this credential may only read");
    if (!edge::SameOriginOrNone(req.origin, req.caller.host)) {
      return Forbidden("a page of another origin may not change the fleet");
    }
    return ServerAction(service, path.substr(kServers.size()));
  }
  if (method != "GET" && method != "HEAD") {
    return Json(405, json::object{{"error", "method_not_allowed"}, {"message", "use GET"}});
  }
  // Open to everyone: probes, Prometheus, the dashboard's files, and what a credential allows.
  if (path == "/healthz") return {200, "text/plain", "ok\n", {}};
  if (path == "/readyz") return Readiness(service);
  if (path == "/metrics") {
    RefreshGauges(service);
    prometheus::TextSerializer serializer;
    return {200,
            "text/plain; version=0.0.4",
            serializer.Serialize(service.metrics.registry().Collect()),
            {}};
  }
  if (path == "/v1/whoami") return WhoAmI(service, access);
  if (auto asset = Asset(path)) return std::move(*asset);

  if (!path.starts_with("/v1/")) return NotFound("no such admin endpoint");
  if (access == edge::AdminAccess::kNone) return Unauthorized(service);
  if (path == "/v1/servers") return Servers(service);
  if (path == "/v1/replica") return Replica(service);
  if (path.starts_with(kServers)) {
    std::string id;
    if (!PercentDecode(path.substr(kServers.size()), id) || id.empty()) {
      return Json(400, json::object{{"error", "bad_request"}, {"message", "malformed server id"}});
    }
    return ServerOf(service, id);
  }
  constexpr std::string_view kAssignments = "/v1/assignments/";
  if (path.starts_with(kAssignments)) {
    std::string user;
    if (!PercentDecode(path.substr(kAssignments.size()), user) || user.empty()) {
      return Json(400, json::object{{"error", "bad_request"}, {"message", "malformed user id"}});
    }
    return AssignmentOf(service, user);
  }
  return NotFound("no such admin endpoint");
}

}  // namespace vrouter::admin
