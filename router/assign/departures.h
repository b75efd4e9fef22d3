// The video server each user last left with `leave`, for a while. A user who joins again soon
// goes back to that server as a returning user (like a resume), not as a new one: its own
// join/leave churn must not use up the per-server admission budget that new users share (one
// token doing join/leave pairs used to take every new-user slot of a server and starve the
// others). Bounded: entries older than the window are dropped, and past `capacity` new ones are
// not kept.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "router/base/mutex.h"
#include "router/base/time.h"

namespace vrouter::assign {

class Departures {
 public:
  explicit Departures(std::size_t capacity = 100'000) : per_shard_(capacity / kShards + 1) {}

  void Left(std::string_view user, std::string_view server, base::SteadyTime now);
  // The server `user` left at or after `since`, taken (a departure is returned to once).
  std::optional<std::string> TakeSince(std::string_view user, base::SteadyTime since);
  // Drops the departures before `since`.
  void Forget(base::SteadyTime since);
  std::size_t size() const;

 private:
  struct Entry {
    std::string server;
    base::SteadyTime at{};
  };
  struct Shard {
    mutable vrouter::Mutex mu;
    absl::flat_hash_map<std::string, Entry> left ABSL_GUARDED_BY(mu);
  };
  static constexpr std::size_t kShards = 16;
  Shard& ShardOf(std::string_view user) const;
  const std::size_t per_shard_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace vrouter::assign
