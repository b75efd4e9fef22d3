#include "router/edge/per_ip_counter.h"

#include "absl/hash/hash.h"

namespace vrouter::edge {

PerIpCounter::Shard& PerIpCounter::ShardOf(const IpAddress& ip) const {
  return shards_[absl::Hash<IpAddress>{}(ip) % shards_.size()];
}

bool PerIpCounter::TryAcquire(const IpAddress& ip, std::uint32_t limit) {
  Shard& s = ShardOf(ip);
  vrouter::MutexLock lock(&s.mu);
  std::uint32_t& n = s.open[ip];
  if (n >= limit) {
    if (n == 0) s.open.erase(ip);  // limit 0 never admits: leave no empty entry behind
    return false;
  }
  ++n;
  return true;
}

void PerIpCounter::Release(const IpAddress& ip) {
  Shard& s = ShardOf(ip);
  vrouter::MutexLock lock(&s.mu);
  auto it = s.open.find(ip);
  if (it == s.open.end()) return;
  if (--it->second == 0) s.open.erase(it);
}

std::uint32_t PerIpCounter::Count(const IpAddress& ip) const {
  Shard& s = ShardOf(ip);
  vrouter::MutexLock lock(&s.mu);
  auto it = s.open.find(ip);
  return it == s.open.end() ? 0 : it->second;
}

}  // namespace vrouter::edge
