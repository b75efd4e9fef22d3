// Lookups against the sharded assignment table, alone and with writers on other threads.
//   build/release/bench/micro_bench --benchmark_filter=Table
#include <benchmark/benchmark.h>

#include "router/assign/assignment_table.h"

namespace {
using namespace vrouter::assign;

AssignmentTable& Table() {
  static AssignmentTable* table = [] {
    auto* t = new AssignmentTable(64);
    for (int i = 0; i < 50000; ++i) {
      t->Put(
          Assignment{
              "user-" + std::to_string(i), "space", "sfu-" + std::to_string(i % 20), 0, "r", 1, {}},
          0);
    }
    return t;
  }();
  return *table;
}

void BM_TableLookup10(benchmark::State& state) {
  auto& t = Table();
  std::vector<std::string> users;
  for (int i = 0; i < 10; ++i)
    users.push_back("user-" + std::to_string(i * 997 + state.thread_index()));
  std::vector<std::optional<Assignment>> out;
  for (auto _ : state) {
    t.Lookup(users, out);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * 10);
}
BENCHMARK(BM_TableLookup10)->Threads(1)->Threads(2)->Threads(4);

void BM_TableMoveUser(benchmark::State& state) {
  auto& t = Table();
  const std::string user = "user-" + std::to_string(100 + state.thread_index());
  int n = 0;
  for (auto _ : state) {
    auto cur = t.Get(user);
    benchmark::DoNotOptimize(
        t.Put(Assignment{user, "space", "sfu-" + std::to_string(++n % 20), 0, "r", 1, {}},
              cur ? cur->epoch : 0));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TableMoveUser)->Threads(1)->Threads(2);
}  // namespace
