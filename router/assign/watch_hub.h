// Who watches whom. A watcher is a session somewhere on some thread; the hub only holds weak
// references to its PushSink, so a closed session needs no synchronous unregistration to be safe
// (it unregisters anyway, to keep the map small).
//
// Threading: every method can be called from any thread. Publish copies the watcher list under
// the shard lock and pushes outside it; the frame is encoded once and shared by all watchers.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/base/mutex.h"

namespace vrouter::assign {

using Frame = std::shared_ptr<const std::string>;

// Implemented by sessions. Push must be callable from any thread and must not block: it queues
// the frame on the session's own executor (and closes the session if its queue is full).
class PushSink {
 public:
  virtual ~PushSink() = default;
  virtual void Push(Frame frame) = 0;
};

// Who hears a change of a user: the watchers in `space` and, with `any_space`, those who may
// watch across spaces. An empty space (tests, benchmarks) reaches every watcher.
struct Audience {
  std::string_view space;
  bool any_space = true;
};

class WatchHub {
 public:
  explicit WatchHub(std::size_t shards = 64);

  // Registers `watcher_id` (unique per session) as a watcher of `user` for the changes of `user`
  // in `space` (empty: in any space; a watcher sees only its own space unless the replica lets
  // lookups cross spaces). Idempotent.
  void Watch(std::string_view user, std::uint64_t watcher_id, std::weak_ptr<PushSink> sink,
             std::string_view space = {});
  void Unwatch(std::string_view user, std::uint64_t watcher_id);

  // Pushes `frame` to every live watcher of `user` in `audience`. Returns how many sinks received
  // it.
  std::size_t Publish(std::string_view user, const Frame& frame, Audience audience = {});

  // Number of (user, watcher) pairs.
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    std::uint64_t id;
    std::weak_ptr<PushSink> sink;
    std::string space;  // empty: any space
  };
  struct Shard {
    vrouter::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<Entry>> watchers ABSL_GUARDED_BY(mu);
  };
  Shard& ShardFor(std::string_view user);

  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace vrouter::assign
