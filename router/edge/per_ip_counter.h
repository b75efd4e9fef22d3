// Open connections per client IP, for the per-IP connection limit. Sharded by address so that
// worker threads accepting at once rarely meet on one lock; an IP's entry goes when its last
// connection does, so the map holds only addresses with connections open.
#pragma once

#include <array>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "router/base/mutex.h"
#include "router/edge/ip_address.h"

namespace vrouter::edge {

class PerIpCounter {
 public:
  // Counts one more connection from `ip` unless `limit` are already open (then false, nothing
  // counted). Every true is paired with one Release.
  bool TryAcquire(const IpAddress& ip, std::uint32_t limit);
  void Release(const IpAddress& ip);
  std::uint32_t Count(const IpAddress& ip) const;

 private:
  struct Shard {
    mutable vrouter::Mutex mu;
    absl::flat_hash_map<IpAddress, std::uint32_t> open ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(const IpAddress& ip) const;
  mutable std::array<Shard, 16> shards_;
};

}  // namespace vrouter::edge
