// The fleet controller around the pure fleet model: what it publishes to the rest of the replica.
#include "router/service/fleet_controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "router/base/log.h"
#include "router/store/fleet_gossip.h"
#include "tests/support/fake_session.h"
#include "tests/support/service_harness.h"
#include "tests/support/video_servers.h"

namespace vrouter::service {
namespace {

// Issue 22, observation: once in ~60 runs, every client report about a registered, active server
// was answered unknown_server for the whole run. Registrations racing on several threads each
// took a copy of the directory under the lock and installed it after releasing it, so an older
// copy could replace a newer one; with no later change, the server stayed out of the directory
// (the snapshot `report` and every lookup read) for good.
TEST(FleetControllerTest, RegistrationsRacingOnTwoThreadsBothReachTheDirectory) {
  // The logger is set up before any thread, as main does (Debian's spdlog is not built for TSan,
  // which cannot see its registry's thread-safe lazy construction).
  ASSERT_TRUE(log::Init("info"));
  testing::ServiceHarness h;
  int lost = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const std::string a = "a" + std::to_string(trial), b = "b" + std::to_string(trial);
    std::atomic<int> ready{0};
    auto register_one = [&](const std::string& id, std::uint64_t connection) {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      h.fleet_control.Register(testing::Server(id), connection, {});
    };
    std::thread first(register_one, a, 2 * trial + 1);
    std::thread second(register_one, b, 2 * trial + 2);
    first.join();
    second.join();
    const auto snapshot = h.fleet.Snapshot();
    lost += (snapshot->Find(a) == nullptr) + (snapshot->Find(b) == nullptr);
  }
  EXPECT_EQ(lost, 0) << "registered servers missing from the directory";
}

// A server that registered with another replica (shared store) has left its connection here
// stale: that one is closed with 4000 and the reason every 4000 carries (PROTOCOL.md 9.1, 14.6).
TEST(FleetControllerTest, ARegistrationElsewhereClosesTheConnectionHereAsReplaced) {
  testing::ServiceHarness h;
  auto here = std::make_shared<testing::FakeSession>();
  h.fleet_control.Register(testing::Server("sfu-1"), /*connection=*/1, here);
  h.fleet_control.OnShared(
      store::EncodeGossip({"another-replica", store::GossipRegistered{testing::Server("sfu-1")}}));
  EXPECT_EQ(here->closed_async, proto::close_code::kSessionReplaced);
  EXPECT_EQ(here->closed_async_reason, "session_replaced");
}

}  // namespace
}  // namespace vrouter::service
