#include "router/assign/assignment_table.h"

#include "absl/hash/hash.h"
#include "router/base/absl_compat.h"

namespace vrouter::assign {

AssignmentTable::AssignmentTable(std::size_t shards)
    : shards_(std::make_unique<Shard[]>(shards == 0 ? 1 : shards)),
      shard_count_(shards == 0 ? 1 : shards) {}

AssignmentTable::Shard& AssignmentTable::ShardFor(std::string_view user) const {
  return shards_[absl::HashOf(AsAbsl(user)) % shard_count_];
}

void AssignmentTable::Count(const Assignment& a, std::int64_t delta) {
  vrouter::MutexLock lock(&load_mu_);
  auto& n = load_[a.server];
  n += delta;
  if (n == 0) load_.erase(a.server);
  load_changed_.insert(a.server);
  auto& per_server = space_load_[a.space];
  auto& m = per_server[a.server];
  m += delta;
  if (m == 0) per_server.erase(a.server);
  if (per_server.empty()) space_load_.erase(a.space);
}

std::optional<Assignment> AssignmentTable::Get(std::string_view user) const {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.map.find(AsAbsl(user));
  if (it == shard.map.end()) return std::nullopt;
  return it->second;
}

PutResult AssignmentTable::Put(Assignment desired, std::uint64_t expected_epoch,
                               std::uint64_t min_epoch) {
  Shard& shard = ShardFor(desired.user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.map.find(desired.user);
  const std::uint64_t stored_epoch = it == shard.map.end() ? 0 : it->second.epoch;
  PutResult result;
  // A rewrite must come from the owner (its session, or a migration on its behalf): a session
  // that lost the user to a newer one cannot take it back with a late write.
  const bool owner = it == shard.map.end() || (it->second.replica == desired.replica &&
                                               it->second.session == desired.session);
  if (stored_epoch != expected_epoch || !owner) {
    if (it != shard.map.end()) result.current = it->second;
    return result;
  }
  // Issue an epoch above everything issued so far and above min_epoch.
  std::uint64_t last = last_epoch_.load(std::memory_order_relaxed);
  std::uint64_t next;
  do {
    next = std::max(last, min_epoch) + 1;
  } while (!last_epoch_.compare_exchange_weak(last, next, std::memory_order_relaxed));
  desired.epoch = next;

  AssignmentChange change{AssignmentChange::Kind::kAssigned, desired, std::nullopt, std::nullopt};
  if (it == shard.map.end()) {
    size_.fetch_add(1, std::memory_order_relaxed);
    Count(desired, +1);
    it = shard.map.emplace(desired.user, desired).first;
  } else {
    change.from_server = it->second.server;
    change.from_space = it->second.space;
    if (it->second.server != desired.server || it->second.space != desired.space) {
      Count(it->second, -1);
      Count(desired, +1);
    }
    it->second = desired;
  }
  result.written = true;
  result.current = it->second;
  result.change = std::move(change);
  return result;
}

std::optional<Assignment> AssignmentTable::Attach(std::string_view user, std::uint64_t session) {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.map.find(AsAbsl(user));
  if (it == shard.map.end()) return std::nullopt;
  it->second.session = session;
  return it->second;
}

bool AssignmentTable::Detach(std::string_view user, std::uint64_t session, base::SteadyTime now) {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.map.find(AsAbsl(user));
  if (it == shard.map.end() || it->second.session != session || session == 0) return false;
  it->second.session = 0;
  it->second.since = now;
  return true;
}

std::optional<AssignmentChange> AssignmentTable::Remove(std::string_view user,
                                                        std::uint64_t session) {
  Shard& shard = ShardFor(user);
  vrouter::MutexLock lock(&shard.mu);
  auto it = shard.map.find(AsAbsl(user));
  if (it == shard.map.end() || it->second.session != session) return std::nullopt;
  AssignmentChange change{AssignmentChange::Kind::kRemoved, std::move(it->second), std::nullopt,
                          std::nullopt};
  shard.map.erase(it);
  size_.fetch_sub(1, std::memory_order_relaxed);
  Count(change.assignment, -1);
  return change;
}

std::vector<AssignmentChange> AssignmentTable::ExpireDetached(base::SteadyTime now,
                                                              std::chrono::nanoseconds grace) {
  std::vector<AssignmentChange> removed;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    vrouter::MutexLock lock(&shard.mu);
    for (auto it = shard.map.begin(); it != shard.map.end();) {
      const Assignment& a = it->second;
      if (a.session == 0 && now - a.since >= grace) {
        Count(a, -1);
        removed.push_back(
            {AssignmentChange::Kind::kRemoved, std::move(it->second), std::nullopt, std::nullopt});
        shard.map.erase(it++);
        size_.fetch_sub(1, std::memory_order_relaxed);
      } else {
        ++it;
      }
    }
  }
  return removed;
}

void AssignmentTable::Lookup(std::span<const std::string> users,
                             std::vector<std::optional<Assignment>>& out) const {
  out.clear();
  out.reserve(users.size());
  for (const std::string& user : users) out.push_back(Get(user));
}

void AssignmentTable::LookupInto(std::span<const std::string_view> users,
                                 std::vector<std::optional<Assignment>>& out) const {
  out.resize(users.size());
  for (std::size_t i = 0; i < users.size(); ++i) {
    Shard& shard = ShardFor(users[i]);
    vrouter::MutexLock lock(&shard.mu);
    auto it = shard.map.find(AsAbsl(users[i]));
    if (it == shard.map.end()) {
      out[i].reset();
    } else if (out[i]) {
      *out[i] = it->second;  // copy-assignment: the slot's strings reuse their buffers
    } else {
      out[i].emplace(it->second);
    }
  }
}

absl::flat_hash_map<std::string, std::int64_t> AssignmentTable::LoadByServer() const {
  vrouter::MutexLock lock(&load_mu_);
  return load_;
}

void AssignmentTable::TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) {
  out.clear();
  vrouter::MutexLock lock(&load_mu_);
  for (const std::string& server : load_changed_) {
    const auto it = load_.find(server);
    out[server] = it == load_.end() ? 0 : it->second;
  }
  load_changed_.clear();
}

}  // namespace vrouter::assign

namespace vrouter::assign {

absl::flat_hash_map<std::string, std::int64_t> AssignmentTable::SpaceLoad(
    std::string_view space) const {
  vrouter::MutexLock lock(&load_mu_);
  auto it = space_load_.find(AsAbsl(space));
  if (it == space_load_.end()) return {};
  return it->second;
}

std::vector<Assignment> AssignmentTable::AssignedTo(std::string_view server,
                                                    std::size_t limit) const {
  std::vector<Assignment> out;
  for (std::size_t i = 0; i < shard_count_ && out.size() < limit; ++i) {
    Shard& shard = shards_[i];
    vrouter::MutexLock lock(&shard.mu);
    for (const auto& [user, a] : shard.map) {
      if (a.server != server) continue;
      out.push_back(a);
      if (out.size() >= limit) break;
    }
  }
  return out;
}

}  // namespace vrouter::assign
