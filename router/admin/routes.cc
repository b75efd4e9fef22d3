#include "router/admin/routes.h"

#include <prometheus/text_serializer.h>

#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <optional>
#include <type_traits>

#include "proto/json_writer.h"
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

// The answers the dashboard polls every second (/readyz, /v1/whoami, /v1/replica, /v1/servers)
// are written straight into the body (proto::JsonWriter), without a DOM: building and freeing one
// cost ~4 µs per video server (bench/admin_bench.cc). The rare answers keep Json() above.
template <class T>
void Put(proto::JsonWriter& w, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.Bool(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    w.Double(v);
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    w.Int(v);
  } else if constexpr (std::is_integral_v<T>) {
    w.Uint(v);
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    w.String(v);
  } else {  // std::optional
    if (v) {
      Put(w, *v);
    } else {
      w.Null();
    }
  }
}

template <class T>
void Field(proto::JsonWriter& w, std::string_view key, const T& v) {
  w.Key(key);
  Put(w, v);
}

std::optional<std::int64_t> Ms(std::optional<std::chrono::milliseconds> d) {
  return d ? std::optional<std::int64_t>(d->count()) : std::nullopt;
}

// The body of an answer written with `write`, then a newline (as Json() ends it).
template <class Write>
AdminResponse Written(int status, Write write) {
  AdminResponse r{status, "application/json", {}, {}};
  {
    proto::JsonWriter w(r.body);
    write(w);
  }
  r.body += '\n';
  return r;
}

AdminResponse Readiness(service::Service& s) {
  const bool draining = s.draining.load();
  // A replica that cannot write to the shared store refuses joins: it is not ready, and says why
  // (it still answers lookups of what it holds, so clients already on it are better off staying).
  const std::string store_problem = s.store.Problem();
  const bool ready = !draining && store_problem.empty();
  const auto fleet = s.fleet.Snapshot();
  const bool auth_configured = !s.client_keys.Get()->empty();
  const fleet::FleetView view = s.fleet_control.View();
  std::array<std::int64_t, fleet::kServerStateCount> states{};
  for (const auto& v : view.servers) ++states[static_cast<std::size_t>(v.state)];
  return Written(ready ? 200 : 503, [&](proto::JsonWriter& w) {
    w.BeginObject();
    Field(w, "ready", ready);
    Field(w, "replica", s.replica_id);
    Field(w, "draining", draining);
    Field(w, "store", store_problem.empty() ? std::string_view("ok") : store_problem);
    Field(w, "video_servers", fleet->servers().size());
    Field(w, "auth_configured", auth_configured);
    Field(w, "connections", s.open_connections.load());
    w.Key("fleet");
    w.BeginObject();
    w.Key("states");
    w.BeginObject();
    for (int i = 0; i < fleet::kServerStateCount; ++i) {
      Field(w, fleet::ServerStateName(static_cast<fleet::ServerState>(i)),
            states[static_cast<std::size_t>(i)]);
    }
    w.EndObject();
    Field(w, "panic", view.panic);
    w.EndObject();
    w.Key("warnings");
    w.BeginArray();
    if (fleet->empty()) w.String("no video servers: joins fail with no_video_server");
    // Panic is about the fleet (or this router's view of it), not this replica: it stays ready,
    // since refusing clients would not help them, but says so loudly.
    if (view.panic) w.String("fleet panic: " + view.panic_detail);
    if (!auth_configured) {
      w.String(
          "no client token key (--auth-secret, --auth-keys-dir): hello fails with "
          "auth_not_configured");
    }
    if (!store_problem.empty()) w.String("store: " + store_problem);
    w.EndArray();
    w.EndObject();
  });
}

// One server as the operator sees it: what it is, where it stands, every signal behind the score.
void WriteServer(proto::JsonWriter& w, const fleet::ServerView& v, base::SteadyTime now) {
  w.BeginObject();
  Field(w, "id", v.server.id);
  Field(w, "url", v.server.url);
  Field(w, "region", v.server.region);
  Field(w, "capacity", v.server.capacity);
  Field(w, "declared", v.declared);
  Field(w, "monitored", v.monitored);
  Field(w, "connected", v.connected);
  Field(w, "state", fleet::ServerStateName(v.state));
  Field(w, "reason", fleet::ChangeReasonName(v.reason));
  Field(w, "in_state_ms", v.in_state.count());
  Field(w, "assigned", v.own);
  Field(w, "eligible", v.score.eligible());
  Field(w, "ineligible_reason",
        v.score.eligible()
            ? std::nullopt
            : std::optional<std::string_view>(fleet::IneligibleName(v.score.ineligible)));
  w.Key("score");
  w.BeginObject();
  Field(w, "effective_load", v.score.effective_load);
  Field(w, "utilization", v.score.utilization);
  Field(w, "interval_cap", v.score.interval_cap);
  w.EndObject();
  w.Key("signals");
  w.BeginObject();
  Field(w, "reported_load", v.reported_load);
  Field(w, "counter_load", v.counter_load);
  Field(w, "own_assigned", v.own);
  Field(w, "pending_since_report", v.pending);
  Field(w, "failure_reporters", v.failure_reporters);
  Field(w, "failure_share", v.failure_share);
  Field(w, "forwarding", fleet::ForwardingName(v.forwarding));
  Field(w, "consecutive_bad_reports", v.bad_reports);
  Field(w, "slow_start_weight", v.weight);
  Field(w, "new_users_this_interval", v.new_this_interval);
  Field(w, "last_report_age_ms", Ms(v.last_report_age));
  Field(w, "peers", v.latest.peers);
  Field(w, "media_peers", v.latest.media_peers);
  Field(w, "cpu", v.latest.cpu);
  Field(w, "streams_in", v.latest.streams_in);
  Field(w, "streams_out", v.latest.streams_out);
  Field(w, "seq", v.latest.seq);
  w.Key("rates");
  if (v.rates) {
    w.BeginObject();
    Field(w, "packets_in", v.rates->packets_in);
    Field(w, "packets_out", v.rates->packets_out);
    Field(w, "bytes_in", v.rates->bytes_in);
    Field(w, "bytes_out", v.rates->bytes_out);
    Field(w, "over_seconds", v.rates->seconds);
    w.EndObject();
  } else {
    w.Null();
  }
  w.EndObject();
  w.Key("ejection");
  w.BeginObject();
  Field(w, "reason",
        v.eject_reason ? std::optional<std::string_view>(fleet::EjectReasonName(*v.eject_reason))
                       : std::nullopt);
  Field(w, "remaining_ms", Ms(v.ejected_for));
  Field(w, "times", v.ejections);
  Field(w, "multiplier", v.ejection_multiplier);
  Field(w, "probation", v.probation);
  w.EndObject();
  w.Key("reports");
  w.BeginObject();
  Field(w, "accepted", v.stats_accepted);
  Field(w, "reordered", v.stats_reordered);
  Field(w, "resets", v.stats_resets);
  Field(w, "recent_restarts", v.recent_restarts);
  w.EndObject();
  w.Key("history");
  w.BeginArray();
  for (const auto& h : v.history) {
    w.BeginObject();
    Field(w, "from", fleet::ServerStateName(h.from));
    Field(w, "to", fleet::ServerStateName(h.to));
    Field(w, "reason", fleet::ChangeReasonName(h.reason));
    Field(w, "ago_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - h.at).count());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

AdminResponse Servers(service::Service& s) {
  const fleet::FleetView view = s.fleet_control.View();
  return Written(200, [&](proto::JsonWriter& w) {
    w.BeginObject();
    Field(w, "panic", view.panic);
    Field(w, "panic_detail", view.panic_detail);
    Field(w, "max_ejected", view.max_ejected);
    w.Key("servers");
    w.BeginArray();
    for (const auto& v : view.servers) WriteServer(w, v, view.taken_at);
    w.EndArray();
    w.EndObject();
  });
}

AdminResponse ServerOf(service::Service& s, std::string_view id) {
  const fleet::FleetView view = s.fleet_control.View();
  for (const auto& v : view.servers) {
    if (v.server.id == id) {
      return Written(200, [&](proto::JsonWriter& w) { WriteServer(w, v, view.taken_at); });
    }
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
  return Written(200, [&](proto::JsonWriter& w) {
    w.BeginObject();
    Field(w, "access", edge::AdminAccessName(access));
    Field(w, "tokens_configured", s.admin.configured());
    Field(w, "replica", s.replica_id);
    w.EndObject();
  });
}

// Counts kept as doubles by prometheus-cpp, shown as the whole numbers they are.
std::int64_t CounterValue(const prometheus::Counter* c) { return c ? std::llround(c->Value()) : 0; }
std::int64_t GaugeValue(const prometheus::Gauge* g) { return g ? std::llround(g->Value()) : 0; }

// GET /v1/replica: this replica's connections and cumulative request counters (the dashboard
// turns them into rates between two polls).
AdminResponse Replica(service::Service& s) {
  RefreshGauges(s);
  const telemetry::Metrics& m = s.metrics;
  const std::string store_problem = s.store.Problem();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.steady_now() - s.started_at);
  return Written(200, [&](proto::JsonWriter& w) {
    w.BeginObject();
    Field(w, "replica", s.replica_id);
    Field(w, "uptime_ms", uptime.count());
    Field(w, "draining", s.draining.load());
    Field(w, "store", store_problem.empty() ? std::string_view("ok") : store_problem);
    w.Key("connections");
    w.BeginObject();
    Field(w, "open", s.open_connections.load());
    Field(w, "max", s.limits.max_connections);
    Field(w, "ws", GaugeValue(m.connections[static_cast<int>(telemetry::Transport::kWs)]));
    Field(w, "wss", GaugeValue(m.connections[static_cast<int>(telemetry::Transport::kWss)]));
    Field(w, "video_servers", GaugeValue(m.video_server_connections));
    w.EndObject();
    Field(w, "assignments", s.store.size());
    Field(w, "watches", GaugeValue(m.watches));
    w.Key("totals");
    w.BeginObject();
    w.Key("received");
    w.BeginObject();
    for (std::size_t i = 0; i < std::size(proto::kClientTypeNames); ++i) {
      Field(w, proto::kClientTypeNames[i], CounterValue(m.messages_received[i]));
    }
    w.EndObject();
    w.Key("sent");
    w.BeginObject();
    for (std::size_t i = 0; i < std::size(proto::kServerTypeNames); ++i) {
      Field(w, proto::kServerTypeNames[i], CounterValue(m.messages_sent[i]));
    }
    w.EndObject();
    w.Key("errors");
    w.BeginObject();
    for (int i = 0; i < proto::kErrorCodeCount; ++i) {
      const std::int64_t v = CounterValue(m.errors[static_cast<std::size_t>(i)]);
      if (v > 0) Field(w, proto::ErrorCodeName(static_cast<proto::ErrorCode>(i)), v);
    }
    w.EndObject();
    Field(w, "refused_overload", CounterValue(m.rejected_overload));
    Field(w, "slow_consumer_closes", CounterValue(m.slow_consumer_closes));
    Field(w, "sessions_replaced", CounterValue(m.sessions_replaced));
    w.EndObject();
    w.EndObject();
  });
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
