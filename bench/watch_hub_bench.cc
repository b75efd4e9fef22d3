// The watch fan-out: one change pushed to every watcher of a user, alone and from several
// threads at once (distinct users, shared shards), and the watch/unwatch churn of people walking.
// The sinks only count: this is the hub's cost, without the session's post to its thread.
//   build/release/bench/micro_bench --benchmark_filter=Watch
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "router/assign/watch_hub.h"

namespace {
using namespace vrouter::assign;

class CountingSink final : public PushSink {
 public:
  void Push(Frame) override { pushes.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<std::uint64_t> pushes{0};
};

std::vector<std::shared_ptr<CountingSink>> Sinks(int n) {
  std::vector<std::shared_ptr<CountingSink>> sinks;
  sinks.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) sinks.push_back(std::make_shared<CountingSink>());
  return sinks;
}

const Frame& MovedFrame() {
  static const Frame frame = std::make_shared<const std::string>(
      R"({"type":"moved","user":"user-1","server":{"id":"sfu-3","url":"wss://sfu-3"},"epoch":7})");
  return frame;
}

// One user with state.range(0) watchers; each iteration is one change pushed to all of them.
void BM_WatchFanOut(benchmark::State& state) {
  const int watchers = static_cast<int>(state.range(0));
  WatchHub hub;
  const auto sinks = Sinks(watchers);
  for (int i = 0; i < watchers; ++i) hub.Watch("user-1", static_cast<std::uint64_t>(i), sinks[i]);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the loop idiom
    benchmark::DoNotOptimize(hub.Publish("user-1", MovedFrame()));
  }
  state.SetItemsProcessed(state.iterations() * watchers);  // pushes per second
}
BENCHMARK(BM_WatchFanOut)->Arg(1)->Arg(10)->Arg(50)->Arg(1000);

// A space of 50 people all watching each other; every thread publishes changes of its own users
// (the shards are shared, the users are not).
WatchHub& SpaceHub() {
  static const auto sinks = Sinks(50);
  static WatchHub* const hub = [] {
    auto* h = new WatchHub();
    for (int u = 0; u < 50; ++u) {
      for (int w = 0; w < 50; ++w) {
        h->Watch("user-" + std::to_string(u), static_cast<std::uint64_t>(w), sinks[w]);
      }
    }
    return h;
  }();
  return *hub;
}

void BM_WatchFanOutFromThreads(benchmark::State& state) {
  WatchHub& hub = SpaceHub();
  const std::string user = "user-" + std::to_string(state.thread_index() * 7 % 50);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the loop idiom
    benchmark::DoNotOptimize(hub.Publish(user, MovedFrame()));
  }
  state.SetItemsProcessed(state.iterations() * 50);
}
BENCHMARK(BM_WatchFanOutFromThreads)->Threads(1)->Threads(2)->Threads(4);

// A person walking: stops watching one neighbour and starts watching another.
void BM_WatchChurn(benchmark::State& state) {
  WatchHub hub;
  const auto sinks = Sinks(1);
  std::vector<std::string> users;
  users.reserve(1000);
  for (int i = 0; i < 1000; ++i) users.push_back("user-" + std::to_string(i));
  for (int i = 0; i < 1000; i += 2) hub.Watch(users[i], 1, sinks[0]);
  std::size_t i = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the loop idiom
    hub.Unwatch(users[i % 1000], 1);
    hub.Watch(users[(i + 1) % 1000], 1, sinks[0]);
    i += 2;
  }
  state.SetItemsProcessed(state.iterations() * 2);
}
BENCHMARK(BM_WatchChurn);

}  // namespace
