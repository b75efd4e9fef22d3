#include "router/assign/watch_hub.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "router/base/absl_compat.h"

namespace vrouter::assign {

WatchHub::WatchHub(std::size_t shards)
    : shards_(std::make_unique<Shard[]>(shards == 0 ? 1 : shards)),
      shard_count_(shards == 0 ? 1 : shards) {}

WatchHub::Shard& WatchHub::ShardFor(std::string_view user) {
  return shards_[absl::HashOf(AsAbsl(user)) % shard_count_];
}

void WatchHub::Watch(std::string_view user, std::uint64_t watcher_id, std::weak_ptr<PushSink> sink,
                     std::string_view space) {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto& list = shard.watchers[AsAbsl(user)];
  for (const Entry& e : list) {
    if (e.id == watcher_id) return;
  }
  list.push_back({watcher_id, std::move(sink), std::string(space)});
  size_.fetch_add(1, std::memory_order_relaxed);
}

void WatchHub::Unwatch(std::string_view user, std::uint64_t watcher_id) {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.watchers.find(AsAbsl(user));
  if (it == shard.watchers.end()) return;
  auto& list = it->second;
  auto pos =
      std::find_if(list.begin(), list.end(), [&](const Entry& e) { return e.id == watcher_id; });
  if (pos == list.end()) return;
  *pos = std::move(list.back());
  list.pop_back();
  size_.fetch_sub(1, std::memory_order_relaxed);
  if (list.empty()) shard.watchers.erase(it);
}

std::size_t WatchHub::Publish(std::string_view user, const Frame& frame, Audience audience) {
  std::vector<std::shared_ptr<PushSink>> sinks;
  {
    Shard& shard = ShardFor(user);
    vrouter::MutexLock lock(&shard.mu);
    auto it = shard.watchers.find(AsAbsl(user));
    if (it == shard.watchers.end()) return 0;
    sinks.reserve(it->second.size());
    for (const Entry& e : it->second) {
      const bool hears = audience.space.empty() ||
                         (e.space.empty() ? audience.any_space : e.space == audience.space);
      if (!hears) continue;
      if (auto sink = e.sink.lock()) sinks.push_back(std::move(sink));
    }
  }
  for (const auto& sink : sinks) sink->Push(frame);
  return sinks.size();
}

}  // namespace vrouter::assign
