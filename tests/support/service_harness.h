// A Service over real in-memory parts (store, hub, fleet, metrics) with injectable clocks, for
// unit tests of the protocol logic and the admin routes: no sockets, no threads.
#pragma once

#include <chrono>

#include "router/net/fleet_controller.h"
#include "router/net/service.h"
#include "router/store/memory_store.h"

namespace vrouter::testing {

struct ServiceHarness {
  static constexpr std::int64_t kUnixNow = 1'800'000'000;

  core::Metrics metrics{"test", "test"};
  core::Fleet fleet;
  core::WatchHub hub;
  store::MemoryStore store{std::chrono::seconds(30)};
  net::SessionRegistry sessions;
  core::SteadyTime now = core::SteadyTime{} + std::chrono::seconds(100);
  net::FleetController fleet_control{core::FleetParams{},    store,     fleet, metrics, sessions,
                                     [this] { return now; }, /*seed=*/1};
  net::Service service{.replica_id = "r1",
                       .auth_secret = "k",
                       .video_server_secret = "vk",
                       .token_leeway_seconds = 0,
                       .limits = {},
                       .store = store,
                       .hub = hub,
                       .fleet = fleet,
                       .fleet_control = fleet_control,
                       .metrics = metrics,
                       .sessions = sessions,
                       .unix_seconds = [] { return kUnixNow; },
                       .steady_now = [this] { return now; }};
};

}  // namespace vrouter::testing
