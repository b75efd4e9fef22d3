// The replicated state of the router behind one interface: assignments and change notification.
// Implementations: MemoryStore (embedded default, one replica) and, with the replication issue,
// a Redis store shared by several replicas.
//
// Contract: every write is a compare-and-set on the user's epoch, so callers handle races once
// (two sessions of one user, two replicas) and any implementation can enforce it atomically.
// Every method is thread-safe. The change listener is called after each successful write, on
// the writing thread, outside any lock the store holds.
//
// The calls are synchronous because the in-memory store answers from memory. The Redis store will
// answer reads from its local copy but must not block a thread on a write: when it lands, the
// write methods gain a completion callback (the callers in router/net are written so that the
// answer is sent only after the write returns, which is the order a callback preserves).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/core/assignment.h"
#include "router/core/assignment_table.h"

namespace vrouter::store {

using ChangeListener = std::function<void(const core::AssignmentChange&)>;

class AssignmentStore {
 public:
  virtual ~AssignmentStore() = default;

  // Set once, before any write.
  virtual void SetChangeListener(ChangeListener listener) = 0;

  virtual std::optional<core::Assignment> Get(std::string_view user) const = 0;
  virtual void Lookup(std::span<const std::string> users,
                      std::vector<std::optional<core::Assignment>>& out) const = 0;

  // See AssignmentTable for the semantics of each write.
  virtual core::PutResult Put(core::Assignment desired, std::uint64_t expected_epoch,
                              std::uint64_t min_epoch) = 0;
  virtual std::optional<core::Assignment> Attach(std::string_view user, std::uint64_t session) = 0;
  virtual bool Detach(std::string_view user, std::uint64_t session, core::SteadyTime now) = 0;
  virtual bool Remove(std::string_view user, std::uint64_t session) = 0;
  // Ends assignments whose owner has been gone longer than the resume grace period.
  virtual std::size_t ExpireDetached(core::SteadyTime now) = 0;

  virtual absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const = 0;
  virtual absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(
      std::string_view space) const = 0;
  virtual std::vector<core::Assignment> AssignedTo(std::string_view server,
                                                   std::size_t limit) const = 0;
  virtual std::size_t size() const = 0;
};

}  // namespace vrouter::store
