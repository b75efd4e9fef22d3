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

}  // namespace
}  // namespace vrouter::net
