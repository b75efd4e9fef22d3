// The sharded user -> assignment map. Thread-safe: each shard has its own mutex, so concurrent
// joins and lookups of different users rarely contend. Every write is a compare-and-set on the
// epoch, the same contract the Redis store implements with a script, so callers are written once
// against races between sessions and between replicas.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "router/assign/assignment.h"
#include "router/base/mutex.h"

namespace vrouter::assign {

struct PutResult {
  bool written = false;
  Assignment current;  // the stored assignment after the call (the winner on conflict)
  std::optional<AssignmentChange> change;  // set when written
};

class AssignmentTable {
 public:
  explicit AssignmentTable(std::size_t shards = 64);

  std::optional<Assignment> Get(std::string_view user) const;

  // Writes `desired` (its epoch is ignored: a new, larger one is assigned) if the stored epoch
  // equals `expected_epoch` (0 = no assignment stored) and, for a rewrite, the stored owner
  // (replica, session) is desired's: only the owning session rewrites a user. The new epoch is
  // greater than every epoch this table has issued and than `min_epoch` (a client resuming with an
  // epoch from elsewhere).
  PutResult Put(Assignment desired, std::uint64_t expected_epoch, std::uint64_t min_epoch = 0);

  // Makes `session` the owner of the user's assignment, if there is one, and returns it.
  std::optional<Assignment> Attach(std::string_view user, std::uint64_t session);

  // Marks the assignment detached at `now` if `session` still owns it. Returns whether it did.
  bool Detach(std::string_view user, std::uint64_t session, base::SteadyTime now);

  // Removes the assignment if `session` owns it (`leave`). Returns the change, if any.
  std::optional<AssignmentChange> Remove(std::string_view user, std::uint64_t session);

  // Removes assignments detached for at least `grace` before `now`. Returns the removals.
  std::vector<AssignmentChange> ExpireDetached(base::SteadyTime now,
                                               std::chrono::nanoseconds grace);

  // Fills `out[i]` with the assignment of `users[i]` (nullopt when absent).
  void Lookup(std::span<const std::string> users,
              std::vector<std::optional<Assignment>>& out) const;
  // The same for ids read in place, copied into `out`'s existing slots (their strings keep their
  // capacity): a lookup through a reused `out` allocates nothing once warm.
  void LookupInto(std::span<const std::string_view> users,
                  std::vector<std::optional<Assignment>>& out) const;

  // Users assigned per video server id (the router's own ground truth of server load).
  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const;
  // The servers whose count changed since the last call, with their counts now (0: none left).
  void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out);

  // Users of `space` per video server id (for keeping a space together).
  absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(std::string_view space) const;

  // Up to `limit` assignments on `server` (for migrating a drained or ejected server's users).
  // Scans the table: migrations run a batch per second at most, not per request.
  std::vector<Assignment> AssignedTo(std::string_view server, std::size_t limit) const;

  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    mutable vrouter::Mutex mu;
    absl::flat_hash_map<std::string, Assignment> map ABSL_GUARDED_BY(mu);
  };
  Shard& ShardFor(std::string_view user) const;
  void Count(const Assignment& a, std::int64_t delta);

  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_;
  std::atomic<std::uint64_t> last_epoch_{0};
  std::atomic<std::size_t> size_{0};
  mutable vrouter::Mutex load_mu_;  // taken after a shard mutex, never before
  absl::flat_hash_map<std::string, std::int64_t> load_ ABSL_GUARDED_BY(load_mu_);
  absl::flat_hash_set<std::string> load_changed_ ABSL_GUARDED_BY(load_mu_);
  // space -> server -> users
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, std::int64_t>> space_load_
      ABSL_GUARDED_BY(load_mu_);
};

}  // namespace vrouter::assign
