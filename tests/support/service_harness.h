// A Service over real in-memory parts (hub, fleet, metrics, sessions) with injectable clocks, for
// unit tests of the protocol logic and the admin routes: no sockets, no threads.
#pragma once

#include <chrono>

#include "router/net/fleet_controller.h"
#include "router/net/service.h"
#include "router/store/memory_store.h"

namespace vrouter::testing {

// Everything a Service needs around a store the test provides (which must outlive it).
struct ServiceParts {
  static constexpr std::int64_t kUnixNow = 1'800'000'000;

  explicit ServiceParts(store::AssignmentStore& store) : service_store(store) {}

  store::AssignmentStore& service_store;
  core::Metrics metrics{"test", "test"};
  core::Fleet fleet;
  core::WatchHub hub;
  net::SessionRegistry sessions;
  core::SteadyTime now = core::SteadyTime{} + std::chrono::seconds(100);
  net::FleetController fleet_control{
      core::FleetParams{}, service_store, fleet, metrics, sessions, [this] { return now; },
      /*seed=*/1};
  net::Service service{.replica_id = "r1",
                       .client_keys = core::SharedKeyRing(core::TokenKeyRing::Hs256("k")),
                       .video_server_secret = "vk",
                       .token_leeway_seconds = 0,
                       .limits = {},
                       .admin = {},
                       .started_at = now,
                       .store = service_store,
                       .hub = hub,
                       .fleet = fleet,
                       .fleet_control = fleet_control,
                       .metrics = metrics,
                       .sessions = sessions,
                       .unix_seconds = [] { return kUnixNow; },
                       .steady_now = [this] { return now; }};
};

// The store comes first (a base, so it is built before the parts that refer to it).
struct MemoryStoreHolder {
  store::MemoryStore store{std::chrono::seconds(30)};
};

// The usual harness: the parts over a MemoryStore that tests also use directly.
struct ServiceHarness : MemoryStoreHolder, ServiceParts {
  ServiceHarness() : ServiceParts(MemoryStoreHolder::store) {}
  using MemoryStoreHolder::store;
};

}  // namespace vrouter::testing
