// A replica's in-memory copy of the spaces its sessions are in, fed by the store's change stream.
// Pure data structure (no I/O). Lookups come from every session thread, so records are sharded
// by user with a mutex per shard; the per-space bookkeeping has its own mutex. Writes come from
// the store's one thread.
#pragma once

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

namespace vrouter::store {

class LocalCopy {
 public:
  explicit LocalCopy(std::size_t shards = 64);

  // ---- any thread ----
  std::optional<assign::Assignment> Get(std::string_view user) const;
  // Fills out[i] for users found; appends to `missing` the indexes of the others.
  void Lookup(std::span<const std::string> users,
              std::vector<std::optional<assign::Assignment>>& out,
              std::vector<std::size_t>& missing) const;
  bool Holds(std::string_view space) const;
  absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(std::string_view space) const;
  // Assignments owned by a live session of `replica` on `server`.
  std::vector<assign::Assignment> AssignedTo(std::string_view server, std::string_view replica,
                                             std::size_t limit) const;
  std::vector<assign::Assignment> SpaceRecords(std::string_view space) const;
  std::size_t size() const;

  // ---- the store's thread ----
  // Starts holding `space` empty; records are added by Upsert or Replace.
  void AddSpace(std::string_view space);
  // Upserts `a` into its space (which must be held). Returns the previous record of the user.
  std::optional<assign::Assignment> Upsert(const assign::Assignment& a);
  // Removes the user's record if it is in `space`. Returns it.
  std::optional<assign::Assignment> Erase(std::string_view space, std::string_view user);
  // Replaces the space's records with `records` (a snapshot).
  void Replace(std::string_view space, const std::vector<assign::Assignment>& records);
  void DropSpace(std::string_view space);

 private:
  struct Shard {
    mutable vrouter::Mutex mu;
    absl::flat_hash_map<std::string, assign::Assignment> map ABSL_GUARDED_BY(mu);
  };
  struct Space {
    absl::flat_hash_set<std::string> users;
    absl::flat_hash_map<std::string, std::int64_t> per_server;
  };
  Shard& ShardFor(std::string_view user) const;
  void Count(Space& s, const std::string& server, std::int64_t delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(spaces_mu_);

  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_;
  mutable vrouter::Mutex spaces_mu_;  // never held while taking a shard mutex, nor the reverse
  absl::flat_hash_map<std::string, Space> spaces_ ABSL_GUARDED_BY(spaces_mu_);
};

}  // namespace vrouter::store
