#include "router/store/local_copy.h"

#include "absl/hash/hash.h"
#include "router/base/absl_compat.h"

namespace vrouter::store {

LocalCopy::LocalCopy(std::size_t shards)
    : shards_(std::make_unique<Shard[]>(shards == 0 ? 1 : shards)),
      shard_count_(shards == 0 ? 1 : shards) {}

LocalCopy::Shard& LocalCopy::ShardFor(std::string_view user) const {
  return shards_[absl::Hash<absl::string_view>{}(AsAbsl(user)) % shard_count_];
}

std::optional<assign::Assignment> LocalCopy::Get(std::string_view user) const {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.map.find(AsAbsl(user));
  if (it == shard.map.end()) return std::nullopt;
  return it->second;
}

void LocalCopy::Lookup(std::span<const std::string> users,
                       std::vector<std::optional<assign::Assignment>>& out,
                       std::vector<std::size_t>& missing) const {
  out.assign(users.size(), std::nullopt);
  for (std::size_t i = 0; i < users.size(); ++i) {
    out[i] = Get(users[i]);
    if (!out[i]) missing.push_back(i);
  }
}

bool LocalCopy::Holds(std::string_view space) const {
  vrouter::MutexLock lock(&spaces_mu_);
  return spaces_.contains(AsAbsl(space));
}

absl::flat_hash_map<std::string, std::int64_t> LocalCopy::SpaceLoad(std::string_view space) const {
  vrouter::MutexLock lock(&spaces_mu_);
  auto it = spaces_.find(AsAbsl(space));
  if (it == spaces_.end()) return {};
  return it->second.per_server;
}

std::vector<assign::Assignment> LocalCopy::SpaceRecords(std::string_view space) const {
  std::vector<std::string> users;
  {
    vrouter::MutexLock lock(&spaces_mu_);
    auto it = spaces_.find(AsAbsl(space));
    if (it == spaces_.end()) return {};
    users.assign(it->second.users.begin(), it->second.users.end());
  }
  std::vector<assign::Assignment> out;
  out.reserve(users.size());
  for (const auto& u : users) {
    if (auto a = Get(u); a && a->space == space) out.push_back(std::move(*a));
  }
  return out;
}

std::vector<assign::Assignment> LocalCopy::AssignedTo(std::string_view server,
                                                      std::string_view replica,
                                                      std::size_t limit) const {
  std::vector<assign::Assignment> out;
  for (std::size_t i = 0; i < shard_count_ && out.size() < limit; ++i) {
    Shard& shard = shards_[i];
    vrouter::MutexLock lock(&shard.mu);
    for (const auto& [user, a] : shard.map) {
      if (a.server != server || a.replica != replica || a.session == 0) continue;
      out.push_back(a);
      if (out.size() >= limit) break;
    }
  }
  return out;
}

std::size_t LocalCopy::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    vrouter::MutexLock lock(&shards_[i].mu);
    n += shards_[i].map.size();
  }
  return n;
}

void LocalCopy::Count(Space& s, const std::string& server, std::int64_t delta) {
  auto& n = s.per_server[server];
  n += delta;
  if (n <= 0) s.per_server.erase(server);
}

void LocalCopy::AddSpace(std::string_view space) {
  vrouter::MutexLock lock(&spaces_mu_);
  spaces_.try_emplace(AsAbsl(space));
}

std::optional<assign::Assignment> LocalCopy::Upsert(const assign::Assignment& a) {
  std::optional<assign::Assignment> previous;
  {
    Shard& shard = ShardFor(a.user);
    vrouter::MutexLock lock(&shard.mu);
    auto [it, inserted] = shard.map.try_emplace(a.user, a);
    if (!inserted) {
      previous = std::move(it->second);
      it->second = a;
    }
  }
  vrouter::MutexLock lock(&spaces_mu_);
  if (previous) {
    auto old = spaces_.find(previous->space);
    if (old != spaces_.end()) {
      Count(old->second, previous->server, -1);
      if (previous->space != a.space) old->second.users.erase(a.user);
    }
  }
  Space& s = spaces_[a.space];
  s.users.insert(a.user);
  Count(s, a.server, +1);
  return previous;
}

std::optional<assign::Assignment> LocalCopy::Erase(std::string_view space, std::string_view user) {
  std::optional<assign::Assignment> removed;
  {
    Shard& shard = ShardFor(user);
    vrouter::MutexLock lock(&shard.mu);
    auto it = shard.map.find(AsAbsl(user));
    // A user that moved to another held space is no longer this space's to erase.
    if (it == shard.map.end() || it->second.space != space) return std::nullopt;
    removed = std::move(it->second);
    shard.map.erase(it);
  }
  vrouter::MutexLock lock(&spaces_mu_);
  auto s = spaces_.find(AsAbsl(space));
  if (s != spaces_.end()) {
    s->second.users.erase(AsAbsl(user));
    Count(s->second, removed->server, -1);
  }
  return removed;
}

void LocalCopy::Replace(std::string_view space, const std::vector<assign::Assignment>& records) {
  for (const auto& a : SpaceRecords(space)) Erase(space, a.user);
  AddSpace(space);
  for (const auto& a : records) Upsert(a);
}

void LocalCopy::DropSpace(std::string_view space) {
  for (const auto& a : SpaceRecords(space)) Erase(space, a.user);
  vrouter::MutexLock lock(&spaces_mu_);
  spaces_.erase(AsAbsl(space));
}

}  // namespace vrouter::store
