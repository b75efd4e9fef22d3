#include "router/edge/shared_budgets.h"

#include "absl/hash/hash.h"
#include "router/base/absl_compat.h"

namespace vrouter::edge {

SharedBudgets::Shard& SharedBudgets::ShardOf(std::string_view key) const {
  return shards_[absl::Hash<absl::string_view>{}(AsAbsl(key)) % shards_.size()];
}

std::shared_ptr<SharedBudget> SharedBudgets::Get(std::string_view key) {
  Shard& s = ShardOf(key);
  vrouter::MutexLock lock(&s.mu);
  auto& slot = s.budgets[AsAbsl(key)];
  if (!slot) slot = std::make_shared<SharedBudget>();
  return slot;
}

std::size_t SharedBudgets::Sweep(base::SteadyTime idle_before) {
  std::size_t forgotten = 0;
  for (Shard& s : shards_) {
    vrouter::MutexLock lock(&s.mu);
    // use_count 1: only the map holds it, so no session can be admitting through it now.
    forgotten += absl::erase_if(s.budgets, [&](const auto& entry) {
      return entry.second.use_count() == 1 && entry.second->last_used() < idle_before;
    });
  }
  return forgotten;
}

std::size_t SharedBudgets::size() const {
  std::size_t n = 0;
  for (const Shard& s : shards_) {
    vrouter::MutexLock lock(&s.mu);
    n += s.budgets.size();
  }
  return n;
}

}  // namespace vrouter::edge
