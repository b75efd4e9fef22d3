#include "router/net/admin_routes.h"

#include <prometheus/text_serializer.h>

#include <boost/json.hpp>
#include <chrono>

namespace vrouter::net {
namespace json = boost::json;

namespace {

AdminResponse Json(int status, const json::value& v) {
  return {status, "application/json", json::serialize(v) + "\n"};
}

AdminResponse NotFound(std::string_view what) {
  return Json(404, json::object{{"error", "not_found"}, {"message", what}});
}

// Gauges that mirror state owned elsewhere are refreshed when scraped, not on every change.
void RefreshGauges(Service& s) {
  s.metrics.assignments->Set(static_cast<double>(s.store.size()));
  s.metrics.video_servers->Set(static_cast<double>(s.fleet.Snapshot()->servers().size()));
  s.metrics.ready->Set(s.draining.load() ? 0 : 1);
}

AdminResponse Readiness(Service& s) {
  const bool draining = s.draining.load();
  const auto fleet = s.fleet.Snapshot();
  json::object body{{"ready", !draining},
                    {"replica", s.replica_id},
                    {"draining", draining},
                    {"video_servers", fleet->servers().size()},
                    {"auth_configured", !s.auth_secret.empty()},
                    {"connections", s.open_connections.load()}};
  json::array warnings;
  if (fleet->empty()) warnings.emplace_back("no video servers: joins fail with no_video_server");
  if (s.auth_secret.empty())
    warnings.emplace_back("no auth secret: hello fails with auth_not_configured");
  body["warnings"] = std::move(warnings);
  return Json(draining ? 503 : 200, body);
}

AdminResponse Servers(Service& s) {
  const auto fleet = s.fleet.Snapshot();
  const auto load = s.store.LoadByServer();
  json::array out;
  for (const auto& v : fleet->servers()) {
    auto it = load.find(v.id);
    out.push_back(json::object{{"id", v.id},
                               {"url", v.url},
                               {"region", v.region},
                               {"capacity", v.capacity},
                               {"assigned", it == load.end() ? 0 : it->second}});
  }
  return Json(200, json::object{{"servers", std::move(out)}});
}

AdminResponse AssignmentOf(Service& s, std::string_view user) {
  auto a = s.store.Get(user);
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

}  // namespace

AdminResponse HandleAdmin(std::string_view method, std::string_view target, Service& service) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    return Json(405, json::object{{"error", "method_not_allowed"}, {"message", "use GET"}});
  }
  if (path == "/healthz") return {200, "text/plain", "ok\n"};
  if (path == "/readyz") return Readiness(service);
  if (path == "/metrics") {
    RefreshGauges(service);
    prometheus::TextSerializer serializer;
    return {200, "text/plain; version=0.0.4",
            serializer.Serialize(service.metrics.registry().Collect())};
  }
  if (path == "/v1/servers") return Servers(service);
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

}  // namespace vrouter::net
