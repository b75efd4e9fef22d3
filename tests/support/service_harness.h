// A Service over real in-memory parts (hub, fleet, metrics, sessions) with injectable clocks, for
// unit tests of the protocol logic and the admin routes: no sockets, no threads.
#pragma once

#include <chrono>

#include "router/service/fleet_controller.h"
#include "router/service/service.h"
#include "router/store/memory_store.h"

namespace vrouter::testing {

// Everything a Service needs around a store the test provides (which must outlive it).
struct ServiceParts {
  static constexpr std::int64_t kUnixNow = 1'800'000'000;

  explicit ServiceParts(store::AssignmentStore& store) : service_store(store) {}

  store::AssignmentStore& service_store;
  telemetry::Metrics metrics{"test", "test"};
  fleet::Directory fleet;
  assign::WatchHub hub;
  service::SessionRegistry sessions;
  base::SteadyTime now = base::SteadyTime{} + std::chrono::seconds(100);
  service::FleetController fleet_control{fleet::FleetParams{},
                                         service_store,
                                         fleet,
                                         metrics,
                                         sessions,
                                         [this] { return now; },
                                         /*seed=*/1};
  service::Service service{.replica_id = "r1",
                           .client_keys = edge::SharedKeyRing(edge::TokenKeyRing::Hs256("k")),
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
