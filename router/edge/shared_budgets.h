// Rate limits that belong to a user or to an address instead of to one connection: every
// connection of the same key on this replica draws from the same buckets, so reconnecting does
// not refill them (a client that reconnected 800 times a second used to get 800 fresh budgets).
// A session takes its key's budget once (at hello, or at accept for its address) and keeps it;
// a budget nobody holds is forgotten once it has been idle long enough to be full again.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "router/base/mutex.h"
#include "router/base/time.h"
#include "router/edge/rate_limit.h"

namespace vrouter::edge {

// One key's buckets (RateLimiter: per message type, plus the strikes that close a flood). Shared
// by that key's sessions, which may run on different threads.
class SharedBudget {
 public:
  RateLimiter::Verdict Admit(std::size_t type, base::SteadyTime now, const RateLimits& limits) {
    vrouter::MutexLock lock(&mu_);
    last_used_ = now;
    return limiter_.Admit(type, now, limits);
  }
  base::SteadyTime last_used() const {
    vrouter::MutexLock lock(&mu_);
    return last_used_;
  }

 private:
  mutable vrouter::Mutex mu_;
  RateLimiter limiter_ ABSL_GUARDED_BY(mu_);
  base::SteadyTime last_used_ ABSL_GUARDED_BY(mu_){};
};

class SharedBudgets {
 public:
  // The budget of `key`, made on first use. The caller holds it as long as it acts for the key.
  std::shared_ptr<SharedBudget> Get(std::string_view key);
  // Forgets the budgets no session holds and unused since `idle_before` (callers pass a time by
  // which any bucket has refilled: forgetting it then gives nothing away). How many went.
  std::size_t Sweep(base::SteadyTime idle_before);
  std::size_t size() const;

 private:
  struct Shard {
    mutable vrouter::Mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<SharedBudget>> budgets ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(std::string_view key) const;
  mutable std::array<Shard, 16> shards_;
};

}  // namespace vrouter::edge
