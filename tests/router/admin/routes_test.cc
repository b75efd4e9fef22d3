#include "router/admin/routes.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "tests/support/service_harness.h"

namespace vrouter::admin {
namespace {

edge::AdminCaller Caller(std::string_view host, bool loopback,
                         std::string_view authorization = {}) {
  return {.authorization = authorization, .host = host, .loopback = loopback};
}

struct AdminRoutesTest : ::testing::Test, vrouter::testing::ServiceHarness {
  AdminRoutesTest() { service.client_keys.Set({}); }

  AdminResponse Call(std::string_view method, std::string_view target, edge::AdminCaller caller,
                     std::string_view origin = {}) {
    return HandleAdmin({method, target, caller, origin}, service);
  }
  // What an operator's curl on the pod sends (no admin token configured: loopback may write).
  AdminResponse Local(std::string_view method, std::string_view target) {
    return Call(method, target, Caller("127.0.0.1:9090", true));
  }
  AdminResponse Remote(std::string_view method, std::string_view target,
                       std::string_view authorization = {}) {
    return Call(method, target, Caller("10.0.0.7:9090", false, authorization));
  }
  std::string Header(const AdminResponse& r, std::string_view name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return {};
  }
};

TEST_F(AdminRoutesTest, HealthAndReadiness) {
  EXPECT_EQ(Local("GET", "/healthz").status, 200);
  auto ready = Local("GET", "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_NE(ready.body.find("no video servers"), std::string::npos);
  EXPECT_NE(ready.body.find("no client token key"), std::string::npos);
  service.draining = true;
  EXPECT_EQ(Local("GET", "/readyz").status, 503);
}

TEST_F(AdminRoutesTest, ServersAndAssignments) {
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}});
  store.Put(assign::Assignment{"bob smith", "s", "a", 0, "r1", 1, base::SteadyTime{}}, 0, 0);
  auto servers = Local("GET", "/v1/servers");
  EXPECT_NE(servers.body.find(R"("assigned":1)"), std::string::npos) << servers.body;
  auto found = Local("GET", "/v1/assignments/bob%20smith");
  EXPECT_EQ(found.status, 200);
  EXPECT_NE(found.body.find(R"("server":"a")"), std::string::npos);
  EXPECT_EQ(Local("GET", "/v1/assignments/nobody").status, 404);
  EXPECT_EQ(Local("GET", "/v1/assignments/%zz").status, 400);
}

TEST_F(AdminRoutesTest, MetricsExposition) {
  auto m = Local("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find(R"(vrouter_build_info{commit="test",version="test"} 1)"),
            std::string::npos);
  EXPECT_NE(m.body.find("vrouter_lookup_duration_seconds_bucket"), std::string::npos);
}

TEST_F(AdminRoutesTest, UnknownAndWrongMethod) {
  EXPECT_EQ(Local("GET", "/nope").status, 404);
  EXPECT_EQ(Local("DELETE", "/healthz").status, 405);
}

TEST_F(AdminRoutesTest, ServerViewDrainAndUndrain) {
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}, {"b", "wss://b/", "eu", 10, true}});
  auto one = Local("GET", "/v1/servers/a");
  ASSERT_EQ(one.status, 200);
  EXPECT_NE(one.body.find(R"("state":"active")"), std::string::npos) << one.body;
  EXPECT_NE(one.body.find(R"("eligible":true)"), std::string::npos) << one.body;
  auto pending = Local("GET", "/v1/servers/b");
  EXPECT_NE(pending.body.find(R"("state":"pending")"), std::string::npos) << pending.body;
  EXPECT_NE(pending.body.find(R"("ineligible_reason":"state")"), std::string::npos);
  EXPECT_EQ(Local("GET", "/v1/servers/zz").status, 404);

  auto drained = Local("POST", "/v1/servers/a/drain");
  ASSERT_EQ(drained.status, 200);
  EXPECT_NE(drained.body.find(R"("state":"draining")"), std::string::npos) << drained.body;
  EXPECT_NE(drained.body.find(R"("reason":"drained")"), std::string::npos);
  auto undrained = Local("POST", "/v1/servers/a/undrain");
  EXPECT_NE(undrained.body.find(R"("state":"active")"), std::string::npos) << undrained.body;
  EXPECT_EQ(Local("POST", "/v1/servers/zz/drain").status, 404);
  EXPECT_EQ(Local("POST", "/v1/servers/a/explode").status, 404);
  EXPECT_EQ(Local("POST", "/v1/servers/%zz/drain").status, 400);
  EXPECT_EQ(Local("POST", "/healthz").status, 405);
  EXPECT_EQ(Local("DELETE", "/v1/servers/a").status, 405);

  auto all = Local("GET", "/v1/servers");
  EXPECT_NE(all.body.find(R"("panic":false)"), std::string::npos) << all.body;
  EXPECT_NE(all.body.find(R"("history":[)"), std::string::npos);
  auto ready = Local("GET", "/readyz");
  EXPECT_NE(ready.body.find(R"("pending":1)"), std::string::npos) << ready.body;
}

// The answers the dashboard polls, read back as JSON: every field it shows, with its type.
TEST_F(AdminRoutesTest, PolledAnswersParseWithEveryField) {
  fleet_control.Declare(
      {{"a", "wss://a/", "eu", 10, true}, {"b \"quoted\"", "wss://b/", "us", 5, true}});
  proto::Stats stats{.seq = 1,
                     .peers = 4,
                     .media_peers = 3,
                     .packets_in = 1000,
                     .packets_out = 2000,
                     .bytes_in = 5000,
                     .bytes_out = 9000,
                     .cpu = 0.25,
                     .streams_in = 3,
                     .streams_out = 6};
  fleet_control.OnStats("a", stats);
  now += std::chrono::seconds(1);
  stats.seq = 2;
  stats.packets_in += 900;
  stats.packets_out += 1800;
  fleet_control.OnStats("a", stats);
  store.Put(assign::Assignment{"u1", "s", "a", 0, "r1", 1, base::SteadyTime{}}, 0, 0);
  ASSERT_EQ(Local("POST", "/v1/servers/a/drain").status, 200);
  const auto servers = boost::json::parse(Local("GET", "/v1/servers").body).as_object();
  EXPECT_FALSE(servers.at("panic").as_bool());
  const auto& list = servers.at("servers").as_array();
  ASSERT_EQ(list.size(), 2u);
  const auto& a = list[0].as_object().at("id") == "a" ? list[0].as_object() : list[1].as_object();
  const auto& b = list[0].as_object().at("id") == "a" ? list[1].as_object() : list[0].as_object();
  EXPECT_EQ(b.at("id").as_string(), "b \"quoted\"");
  EXPECT_EQ(a.at("state").as_string(), "draining");
  EXPECT_EQ(a.at("capacity").to_number<int>(), 10);
  EXPECT_EQ(a.at("assigned").to_number<int>(), 1);
  const auto& signals = a.at("signals").as_object();
  EXPECT_DOUBLE_EQ(signals.at("cpu").to_number<double>(), 0.25);
  EXPECT_EQ(signals.at("streams_in").to_number<int>(), 3);
  EXPECT_EQ(signals.at("seq").to_number<int>(), 2);
  EXPECT_TRUE(signals.at("last_report_age_ms").is_number());
  EXPECT_DOUBLE_EQ(signals.at("rates").at("packets_in").to_number<double>(), 900);
  EXPECT_TRUE(b.at("signals").at("rates").is_null());
  EXPECT_TRUE(b.at("signals").at("streams_in").is_null());
  EXPECT_TRUE(a.at("ejection").at("reason").is_null());
  EXPECT_TRUE(a.at("score").at("effective_load").is_number());
  const auto& history = a.at("history").as_array();
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().at("to").as_string(), "draining");
  EXPECT_TRUE(history.back().at("ago_ms").is_number());

  const auto ready = boost::json::parse(Local("GET", "/readyz").body).as_object();
  EXPECT_TRUE(ready.at("ready").as_bool());
  EXPECT_EQ(ready.at("fleet").at("states").at("draining").to_number<int>(), 1);
  EXPECT_EQ(ready.at("fleet").at("states").as_object().size(),
            static_cast<std::size_t>(fleet::kServerStateCount));
  const auto& warnings = ready.at("warnings").as_array();
  ASSERT_EQ(warnings.size(), 1u);  // no client token key
  EXPECT_NE(std::string_view(warnings[0].as_string()).find("no client token key"),
            std::string_view::npos);

  const auto replica = boost::json::parse(Local("GET", "/v1/replica").body).as_object();
  EXPECT_EQ(replica.at("replica").as_string(), "r1");
  EXPECT_EQ(replica.at("assignments").to_number<int>(), 1);
  EXPECT_TRUE(replica.at("totals").at("received").at("lookup").is_number());
  EXPECT_TRUE(replica.at("totals").at("sent").at("lookup_result").is_number());
  const auto who = boost::json::parse(Local("GET", "/v1/whoami").body).as_object();
  EXPECT_EQ(who.at("access").as_string(), "write");
}

// ---- who may do what (no token configured: loopback only) ----

TEST_F(AdminRoutesTest, WithoutTokensOnlyLoopbackReadsAndWrites) {
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}});
  EXPECT_EQ(Remote("GET", "/v1/servers").status, 401);
  EXPECT_EQ(Header(Remote("GET", "/v1/servers"), "WWW-Authenticate"),
            "Bearer realm=\"vrouter-admin\"");
  EXPECT_EQ(Remote("GET", "/v1/replica").status, 401);
  EXPECT_EQ(Remote("GET", "/v1/assignments/bob").status, 401);
  EXPECT_EQ(Remote("POST", "/v1/servers/a/drain").status, 401);
  EXPECT_EQ(Remote("POST", "/v1/servers/a/drain", "Bearer anything-at-all-123").status, 401);
  // Probes, Prometheus and the dashboard page stay open.
  EXPECT_EQ(Remote("GET", "/healthz").status, 200);
  EXPECT_EQ(Remote("GET", "/readyz").status, 200);
  EXPECT_EQ(Remote("GET", "/metrics").status, 200);
  EXPECT_EQ(Remote("GET", "/").status, 200);
  EXPECT_NE(Remote("GET", "/v1/whoami").body.find("\"access\":\"none\""), std::string::npos);

  EXPECT_EQ(Local("GET", "/v1/servers").status, 200);
  EXPECT_EQ(Local("POST", "/v1/servers/a/drain").status, 200);
  EXPECT_NE(Local("GET", "/v1/whoami").body.find("\"access\":\"write\""), std::string::npos);
}

TEST_F(AdminRoutesTest, LoopbackPeerWithAForeignHostNameGetsNothing) {
  // DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1.
  auto r = Call("GET", "/v1/servers", Caller("evil.example:9090", true));
  EXPECT_EQ(r.status, 401);
  for (std::string_view host :
       {"localhost:9090", "localhost", "127.0.0.1", "127.1.2.3:80", "[::1]:9090", "[::1]"}) {
    SCOPED_TRACE(host);
    EXPECT_EQ(Call("GET", "/v1/servers", Caller(host, true)).status, 200);
  }
  for (std::string_view host : {"127.0.0.1.evil.example", "127.0.0", "[::2]:9090", "[::1]x", ""}) {
    SCOPED_TRACE(host);
    EXPECT_EQ(Call("GET", "/v1/servers", Caller(host, true)).status, 401);
  }
}

TEST_F(AdminRoutesTest, WriteTokenWritesReadTokenOnlyReads) {
  service.admin = {.read_token = "read-token-0123456789", .write_token = "write-token-0123456789"};
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}});
  // Tokens configured: loopback alone is no longer enough.
  EXPECT_EQ(Local("GET", "/v1/servers").status, 401);
  EXPECT_EQ(Local("POST", "/v1/servers/a/drain").status, 401);

  EXPECT_EQ(Remote("GET", "/v1/servers", "Bearer read-token-0123456789").status, 200);
  EXPECT_EQ(Remote("GET", "/v1/replica", "bearer read-token-0123456789").status, 200);
  auto refused = Remote("POST", "/v1/servers/a/drain", "Bearer read-token-0123456789");
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.body.find("only read"), std::string::npos);

  EXPECT_EQ(Remote("POST", "/v1/servers/a/drain", "Bearer write-token-0123456789").status, 200);
  EXPECT_EQ(Remote("GET", "/v1/servers", "Bearer write-token-0123456789").status, 200);
  EXPECT_NE(Remote("GET", "/v1/whoami", "Bearer write-token-0123456789").body.find("\"write\""),
            std::string::npos);
  EXPECT_NE(Remote("GET", "/v1/whoami", "Bearer read-token-0123456789").body.find("\"read\""),
            std::string::npos);

  // Near misses grant nothing.
  for (std::string_view bad : {"Bearer write-token-012345678", "Bearer write-token-01234567890",
                               "Basic d3JpdGU=", "write-token-0123456789", "Bearer", "Bearer ",
                               "Bearerwrite-token-0123456789"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(Remote("GET", "/v1/servers", bad).status, 401);
  }
}

TEST_F(AdminRoutesTest, BrowserWritesFromAnotherOriginAreRefused) {
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}});
  const edge::AdminCaller local = Caller("127.0.0.1:9090", true);
  EXPECT_EQ(Call("POST", "/v1/servers/a/drain", local, "https://evil.example").status, 403);
  EXPECT_EQ(Call("POST", "/v1/servers/a/drain", local, "null").status, 403);
  EXPECT_EQ(Call("POST", "/v1/servers/a/drain", local, "http://127.0.0.1:9091").status, 403);
  EXPECT_EQ(Call("POST", "/v1/servers/a/drain", local, "http://127.0.0.1:9090").status, 200);
}

// ---- the dashboard ----

TEST_F(AdminRoutesTest, DashboardFilesAreServedFromTheBinaryWithALockedDownPolicy) {
  auto page = Remote("GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<script type=\"module\" src=\"/dashboard.js\">"), std::string::npos);
  EXPECT_EQ(page.body, Remote("GET", "/index.html").body);
  const std::string csp = Header(page, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(Header(page, "X-Content-Type-Options"), "nosniff");

  auto js = Remote("GET", "/dashboard.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(js.body.find("/v1/servers"), std::string::npos);
  EXPECT_EQ(Remote("GET", "/dashboard.css").content_type, "text/css; charset=utf-8");
  // Nothing from elsewhere: no CDN, no absolute URL in the page.
  EXPECT_EQ(page.body.find("http"), std::string::npos);
  EXPECT_EQ(Remote("GET", "/../etc/passwd").status, 404);
  EXPECT_EQ(Remote("GET", "/dashboard.js.map").status, 404);
}

TEST_F(AdminRoutesTest, ReplicaReportsConnectionsAndRequestTotals) {
  service.open_connections = 3;
  metrics.messages_received[1]->Increment(5);  // join
  metrics.errors[0]->Increment(2);
  now += std::chrono::seconds(42);
  auto r = Local("GET", "/v1/replica");
  ASSERT_EQ(r.status, 200);
  const auto v = boost::json::parse(r.body).as_object();
  EXPECT_EQ(v.at("replica").as_string(), "r1");
  EXPECT_EQ(v.at("connections").at("open").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(v.at("totals").at("received").at("join").as_int64(), 5);
  EXPECT_EQ(v.at("totals").at("errors").as_object().size(), 1u);
  EXPECT_EQ(v.at("uptime_ms").to_number<std::int64_t>(), 42000);
  EXPECT_EQ(v.at("store").as_string(), "ok");
}

}  // namespace
}  // namespace vrouter::admin
