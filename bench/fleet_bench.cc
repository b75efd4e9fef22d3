// Choosing a video server for a join: FleetModel::Choose over fleets of 10 to 10,000 reporting
// servers, with the kept scores and the eligible index (what the router runs) and with every
// server rescored on every choice (the reference, what the router did before issue 20); and a
// tick. Run: build/release/bench/micro_bench --benchmark_filter=Fleet
#include <benchmark/benchmark.h>

#include "router/fleet/fleet_model.h"

namespace vrouter::fleet {
namespace {

// A fleet of `n` servers half in "eu", half in "us", each reporting once a second with the
// users the router placed there, all active and past their slow start.
struct Fleet {
  FleetModel model;
  LoadMap space;
  base::SteadyTime now = base::SteadyTime{} + std::chrono::seconds(1000);
  std::vector<std::string> ids;
  std::vector<proto::Stats> stats;
  std::size_t next_report = 0;
  std::chrono::nanoseconds report_gap;  // between two servers' reports: each reports once a second

  explicit Fleet(int n, ChoiceMethod method = ChoiceMethod::kIndexed)
      : model(FleetParams{}, 7, method),
        report_gap(std::chrono::nanoseconds(std::chrono::seconds(1)) / n) {
    for (int i = 0; i < n; ++i) {
      ids.push_back("sfu-" + std::to_string(i));
      const VideoServer s{ids.back(), "wss://sfu/", i % 2 ? "eu" : "us", 1000, true};
      model.Register(s, now);
      model.SetOwn(s.id, 100 + i % 300);
      stats.emplace_back();
    }
    for (int second = 0; second <= 31; ++second) {  // past the 30 s slow start
      for (std::size_t i = 0; i < ids.size(); ++i) Report(i);
      now += std::chrono::seconds(1);
      model.Tick(now);
    }
  }

  void Report(std::size_t i) {
    proto::Stats& st = stats[i];
    ++st.seq;
    st.peers = static_cast<std::uint32_t>(model.Own(ids[i]));
    st.packets_in += 100ull * st.peers;
    st.packets_out += 300ull * st.peers;
    model.OnStats(ids[i], st, now);
  }

  // The next server's report, and the time that passes until it: n reports per second.
  void NextReport() {
    Report(next_report);
    next_report = (next_report + 1) % ids.size();
    now += report_gap;
  }
};

// One choice and one report per iteration (a fleet of n servers reports n times a second), so the
// choices see what a router sees: pending placements absorbed by reports, scores that change.
void Choose(benchmark::State& state, ChoiceMethod method) {
  Fleet f(static_cast<int>(state.range(0)), method);
  std::int64_t placed = 0;
  for (auto _ : state) {
    auto pick = f.model.Choose({"eu", &f.space}, f.now);
    placed += pick.server.empty() ? 0 : 1;
    benchmark::DoNotOptimize(pick);
    f.NextReport();
  }
  state.counters["placed"] =
      benchmark::Counter(static_cast<double>(placed) /
                         static_cast<double>(std::max<std::int64_t>(1, state.iterations())));
}

void BM_FleetChoose(benchmark::State& state) { Choose(state, ChoiceMethod::kIndexed); }
BENCHMARK(BM_FleetChoose)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

void BM_FleetChooseFullScan(benchmark::State& state) { Choose(state, ChoiceMethod::kFullScan); }
BENCHMARK(BM_FleetChooseFullScan)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

// A report alone (to subtract from the above).
void BM_FleetReport(benchmark::State& state) {
  Fleet f(static_cast<int>(state.range(0)));
  for (auto _ : state) f.NextReport();
}
BENCHMARK(BM_FleetReport)->Arg(10)->Arg(10000);

// The once-per-interval tick, and the first choice after it (which rescores every server).
void BM_FleetTick(benchmark::State& state) {
  Fleet f(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    f.model.Tick(f.now);
    auto pick = f.model.Choose({"eu", &f.space}, f.now);
    benchmark::DoNotOptimize(pick);
  }
}
BENCHMARK(BM_FleetTick)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace vrouter::fleet
