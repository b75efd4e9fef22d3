// The admin answers the dashboard polls every second (/v1/replica, /v1/servers) and the
// readiness probe, answered by HandleAdmin over the real in-memory parts (no socket, no HTTP
// parsing: only the route's own work). Run: build/release/bench/micro_bench
// --benchmark_filter=Admin
#include <benchmark/benchmark.h>

#include "router/admin/routes.h"
#include "tests/support/service_harness.h"

namespace vrouter::admin {
namespace {

struct Replica : vrouter::testing::ServiceHarness {
  explicit Replica(int servers) {
    std::vector<fleet::VideoServer> fleet;
    for (int i = 0; i < servers; ++i) {
      fleet.push_back({"sfu-" + std::to_string(i), "wss://sfu-" + std::to_string(i) + "/",
                       i % 2 ? "eu" : "us", 1000, false});
    }
    fleet_control.Declare(fleet);
    for (int u = 0; u < 1000; ++u) {
      store.Put(
          assign::Assignment{"user-" + std::to_string(u), "space",
                             "sfu-" + std::to_string(u % servers), 0, "r1", 1, base::SteadyTime{}},
          0, 0);
    }
  }
  AdminResponse Get(std::string_view target) {
    return HandleAdmin(
        {"GET", target, {.authorization = {}, .host = "127.0.0.1:9090", .loopback = true}, {}},
        service);
  }
};

void BM_AdminReplica(benchmark::State& state) {
  Replica r(10);
  for (auto _ : state) benchmark::DoNotOptimize(r.Get("/v1/replica"));
}
BENCHMARK(BM_AdminReplica);

void BM_AdminServers(benchmark::State& state) {
  Replica r(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(r.Get("/v1/servers"));
}
BENCHMARK(BM_AdminServers)->Arg(10)->Arg(100);

void BM_AdminReadyz(benchmark::State& state) {
  Replica r(10);
  for (auto _ : state) benchmark::DoNotOptimize(r.Get("/readyz"));
}
BENCHMARK(BM_AdminReadyz);

}  // namespace
}  // namespace vrouter::admin
