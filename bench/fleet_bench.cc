// Choosing a video server for a join: FleetModel::Choose over fleets of 10, 100 and 1,000
// reporting servers (scores every server, then power of two choices), and the pure PickServer
// step alone. Run: build/release/bench/micro_bench --benchmark_filter=Fleet
#include <benchmark/benchmark.h>

#include "router/fleet/fleet_model.h"

namespace vrouter::fleet {
namespace {

struct Fleet {
  FleetModel model{FleetParams{}, 7};
  LoadMap own;
  LoadMap space;
  base::SteadyTime now = base::SteadyTime{} + std::chrono::seconds(1000);

  explicit Fleet(int n) {
    for (int i = 0; i < n; ++i) {
      const VideoServer s{"sfu-" + std::to_string(i), "wss://sfu/", i % 2 ? "eu" : "us", 1000,
                          true};
      model.Register(s, now);
      own[s.id] = 100 + i % 300;
    }
    // Two reports each: rates known, every server active and past slow start.
    for (int r = 1; r <= 2; ++r) {
      for (int i = 0; i < n; ++i) {
        proto::Stats st;
        st.seq = static_cast<std::uint64_t>(r);
        st.peers = 100;
        st.packets_in = st.packets_out = static_cast<std::uint64_t>(r) * 10000;
        model.OnStats("sfu-" + std::to_string(i), st, 100, now + std::chrono::seconds(r));
      }
    }
    now += std::chrono::seconds(60);
    model.Tick(own, now);
  }
};

void BM_FleetChoose(benchmark::State& state) {
  Fleet f(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto pick = f.model.Choose({"eu", &f.space}, f.own, f.now);
    benchmark::DoNotOptimize(pick);
    f.now += std::chrono::milliseconds(20);  // a new interval now and then: the caps reset
  }
}
BENCHMARK(BM_FleetChoose)->Arg(10)->Arg(100)->Arg(1000);

void BM_FleetTick(benchmark::State& state) {
  Fleet f(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    f.model.Tick(f.own, f.now);
    benchmark::DoNotOptimize(f.model.panic());
  }
}
BENCHMARK(BM_FleetTick)->Arg(10)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace vrouter::fleet
