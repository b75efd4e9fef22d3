#include "router/assign/departures.h"

#include "absl/hash/hash.h"
#include "router/base/absl_compat.h"

namespace vrouter::assign {

Departures::Shard& Departures::ShardOf(std::string_view user) const {
  return shards_[absl::Hash<absl::string_view>{}(AsAbsl(user)) % kShards];
}

void Departures::Left(std::string_view user, std::string_view server, base::SteadyTime now) {
  Shard& s = ShardOf(user);
  vrouter::MutexLock lock(&s.mu);
  // Full (a leave storm larger than the window holds): this departure is not remembered, and
  // its user's next join counts as a new one, as it did before departures were kept.
  if (s.left.size() >= per_shard_ && !s.left.contains(AsAbsl(user))) return;
  s.left[AsAbsl(user)] = Entry{std::string(server), now};
}

std::optional<std::string> Departures::TakeSince(std::string_view user, base::SteadyTime since) {
  Shard& s = ShardOf(user);
  vrouter::MutexLock lock(&s.mu);
  auto it = s.left.find(AsAbsl(user));
  if (it == s.left.end()) return std::nullopt;
  std::optional<std::string> server;
  if (it->second.at >= since) server = std::move(it->second.server);
  s.left.erase(it);
  return server;
}

void Departures::Forget(base::SteadyTime since) {
  for (Shard& s : shards_) {
    vrouter::MutexLock lock(&s.mu);
    absl::erase_if(s.left, [&](const auto& e) { return e.second.at < since; });
  }
}

std::size_t Departures::size() const {
  std::size_t n = 0;
  for (const Shard& s : shards_) {
    vrouter::MutexLock lock(&s.mu);
    n += s.left.size();
  }
  return n;
}

}  // namespace vrouter::assign
