#include "router/net/admin_routes.h"

#include <gtest/gtest.h>

#include "tests/support/service_harness.h"

namespace vrouter::net {
namespace {

struct AdminRoutesTest : ::testing::Test, vrouter::testing::ServiceHarness {
  AdminRoutesTest() { service.auth_secret.clear(); }
};

TEST_F(AdminRoutesTest, HealthAndReadiness) {
  EXPECT_EQ(HandleAdmin("GET", "/healthz", service).status, 200);
  auto ready = HandleAdmin("GET", "/readyz", service);
  EXPECT_EQ(ready.status, 200);
  EXPECT_NE(ready.body.find("no video servers"), std::string::npos);
  EXPECT_NE(ready.body.find("no auth secret"), std::string::npos);
  service.draining = true;
  EXPECT_EQ(HandleAdmin("GET", "/readyz", service).status, 503);
}

TEST_F(AdminRoutesTest, ServersAndAssignments) {
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}});
  store.Put(core::Assignment{"bob smith", "s", "a", 0, "r1", 1, core::SteadyTime{}}, 0, 0);
  auto servers = HandleAdmin("GET", "/v1/servers", service);
  EXPECT_NE(servers.body.find(R"("assigned":1)"), std::string::npos) << servers.body;
  auto found = HandleAdmin("GET", "/v1/assignments/bob%20smith", service);
  EXPECT_EQ(found.status, 200);
  EXPECT_NE(found.body.find(R"("server":"a")"), std::string::npos);
  EXPECT_EQ(HandleAdmin("GET", "/v1/assignments/nobody", service).status, 404);
  EXPECT_EQ(HandleAdmin("GET", "/v1/assignments/%zz", service).status, 400);
}

TEST_F(AdminRoutesTest, MetricsExposition) {
  auto m = HandleAdmin("GET", "/metrics", service);
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find(R"(vrouter_build_info{commit="test",version="test"} 1)"),
            std::string::npos);
  EXPECT_NE(m.body.find("vrouter_lookup_duration_seconds_bucket"), std::string::npos);
}

TEST_F(AdminRoutesTest, UnknownAndWrongMethod) {
  EXPECT_EQ(HandleAdmin("GET", "/nope", service).status, 404);
  EXPECT_EQ(HandleAdmin("DELETE", "/healthz", service).status, 405);
}

TEST_F(AdminRoutesTest, ServerViewDrainAndUndrain) {
  fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}, {"b", "wss://b/", "eu", 10, true}});
  auto one = HandleAdmin("GET", "/v1/servers/a", service);
  ASSERT_EQ(one.status, 200);
  EXPECT_NE(one.body.find(R"("state":"active")"), std::string::npos) << one.body;
  EXPECT_NE(one.body.find(R"("eligible":true)"), std::string::npos) << one.body;
  auto pending = HandleAdmin("GET", "/v1/servers/b", service);
  EXPECT_NE(pending.body.find(R"("state":"pending")"), std::string::npos) << pending.body;
  EXPECT_NE(pending.body.find(R"("ineligible_reason":"state")"), std::string::npos);
  EXPECT_EQ(HandleAdmin("GET", "/v1/servers/zz", service).status, 404);

  auto drained = HandleAdmin("POST", "/v1/servers/a/drain", service);
  ASSERT_EQ(drained.status, 200);
  EXPECT_NE(drained.body.find(R"("state":"draining")"), std::string::npos) << drained.body;
  EXPECT_NE(drained.body.find(R"("reason":"drained")"), std::string::npos);
  auto undrained = HandleAdmin("POST", "/v1/servers/a/undrain", service);
  EXPECT_NE(undrained.body.find(R"("state":"active")"), std::string::npos) << undrained.body;
  EXPECT_EQ(HandleAdmin("POST", "/v1/servers/zz/drain", service).status, 404);
  EXPECT_EQ(HandleAdmin("POST", "/v1/servers/a/explode", service).status, 404);
  EXPECT_EQ(HandleAdmin("POST", "/v1/servers/%zz/drain", service).status, 400);
  EXPECT_EQ(HandleAdmin("POST", "/healthz", service).status, 405);
  EXPECT_EQ(HandleAdmin("DELETE", "/v1/servers/a", service).status, 405);

  auto all = HandleAdmin("GET", "/v1/servers", service);
  EXPECT_NE(all.body.find(R"("panic":false)"), std::string::npos) << all.body;
  EXPECT_NE(all.body.find(R"("history":[)"), std::string::npos);
  auto ready = HandleAdmin("GET", "/readyz", service);
  EXPECT_NE(ready.body.find(R"("pending":1)"), std::string::npos) << ready.body;
}

}  // namespace
}  // namespace vrouter::net
