// The replicated state of the router behind one interface: assignments, change notification and
// the interest that decides what a replica keeps locally. Implementations: MemoryStore (embedded
// default, one replica) and RedisStore (several replicas sharing one Redis).
//
// Contract:
// - Every write is a compare-and-set on the user's epoch, so callers handle races once (two
//   sessions of one user, two replicas) and every implementation enforces it atomically.
// - Every method is thread-safe and never blocks on I/O. Writes and remote reads complete through
//   a callback, exactly once: inline (MemoryStore, or a read answered from local memory) or later
//   on the store's own thread (RedisStore). A caller that must continue on its own thread posts.
// - A write that cannot be done safely (store unreachable, overloaded, corrupt) completes with a
//   StoreError and changes nothing that the caller can observe; the caller answers a retryable
//   error. Lookups of what the replica holds locally keep working when the store is unreachable.
// - The change listener is called once per change of a user that any session of this replica
//   may care about (a watched user), after the change is durable, outside any store lock, on the
//   store's thread (MemoryStore: on the writing thread).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/assign/assignment.h"
#include "router/assign/assignment_table.h"
#include "router/base/result.h"

namespace vrouter::store {

enum class StoreError : std::uint8_t {
  kUnavailable,  // the shared store cannot be reached (or is resynchronizing)
  kOverloaded,   // too much work already waiting for the shared store
  kTimeout,      // the shared store did not answer in time: the write may or may not have landed
  // The shared store holds data for the space that fails validation and cannot be repaired safely
  // (a key of the wrong type, redis_schema.h: Defect). Nothing was written; other spaces work.
  // Answered as the retryable `unavailable` with its own message: it works again once an
  // operator repairs the key (the log names it).
  kCorrupt,
};
std::string_view StoreErrorMessage(StoreError error);

template <typename T>
using StoreResult = base::Result<T, StoreError>;

using ChangeListener = std::function<void(const assign::AssignmentChange&)>;
using Assignments = std::vector<std::optional<assign::Assignment>>;
using PutDone = std::function<void(StoreResult<assign::PutResult>)>;
using AttachDone = std::function<void(StoreResult<std::optional<assign::Assignment>>)>;
using RemoveDone = std::function<void(StoreResult<bool>)>;
using LookupDone = std::function<void(StoreResult<Assignments>)>;
using ReadyDone = std::function<void()>;
// Hellos of one user and of one address in the current window, this one included.
struct HelloCounts {
  std::int64_t user = 0;
  std::int64_t address = 0;
};
using HelloCountDone = std::function<void(StoreResult<HelloCounts>)>;
// What the fleet-wide admission budget of one video server said about one placement.
struct Admission {
  bool admitted = false;
  // Placements on the server in the budget's current window, by every replica (this one included
  // when admitted).
  std::uint32_t fleet_count = 0;
  // Refused: until a placement there may be asked again (the window's end, or the oldest recent
  // placement leaving the budget's memory).
  std::chrono::milliseconds window_left{0};
};
using AdmitDone = std::function<void(StoreResult<Admission>)>;

class AssignmentStore {
 public:
  virtual ~AssignmentStore() = default;

  // Set once, before any write.
  virtual void SetChangeListener(ChangeListener listener) = 0;

  // ---- reads ----
  // The user's assignment as this replica knows it locally (own users, users of spaces it holds),
  // without I/O. Used where only the caller's own assignment matters.
  virtual std::optional<assign::Assignment> GetLocal(std::string_view user) const = 0;
  // The assignments of `users` (nullopt: not connected), from local memory where held and from
  // the shared store otherwise.
  virtual void Lookup(std::vector<std::string> users, LookupDone done) const = 0;
  // The same, seen from `space`: users assigned in another space are nullopt, and the answer
  // takes as long whether they are elsewhere or nowhere (a shared store reads only `space`'s
  // records, never where else a user is).
  virtual void LookupInSpace(std::vector<std::string> users, std::string space,
                             LookupDone done) const {
    Lookup(std::move(users),
           [space = std::move(space), done = std::move(done)](StoreResult<Assignments> r) {
             if (auto* found = std::get_if<Assignments>(&r)) {
               for (auto& a : *found) {
                 if (a && a->space != space) a.reset();
               }
             }
             done(std::move(r));
           });
  }

  // The assignments of `users` from this process's memory, at once and without I/O, into `out`
  // (its slots reused), whatever their space (the caller filters). Only a store that holds every
  // assignment locally can (MemoryStore); the others return false and the caller uses Lookup or
  // LookupInSpace. The lookup hot path: no callback, no allocation once `out` is warm.
  virtual bool LookupLocal(std::span<const std::string_view> /*users*/,
                           Assignments& /*out*/) const {
    return false;
  }

  // ---- writes (see AssignmentTable for the semantics of each) ----
  virtual void Put(assign::Assignment desired, std::uint64_t expected_epoch,
                   std::uint64_t min_epoch, PutDone done) = 0;
  // Makes `session` of this replica the owner of the user's assignment, if there is one, and
  // returns it. A session of another replica that owned it is closed by that replica.
  // `space` is where the session is (the record is looked for there first).
  virtual void Attach(std::string_view user, std::string_view space, std::uint64_t session,
                      AttachDone done) = 0;
  // The session is gone: its assignment now waits `resume grace` for a resume. Fire and forget.
  virtual void Detach(std::string_view user, std::uint64_t session, base::SteadyTime now) = 0;
  virtual void Remove(std::string_view user, std::uint64_t session, RemoveDone done) = 0;
  // Ends assignments whose owner has been gone longer than the resume grace period. Called every
  // second by the app; a store that expires on its own returns 0.
  virtual std::size_t ExpireDetached(base::SteadyTime now) = 0;

  // ---- interest: what this replica's sessions need (no-ops for a single replica) ----
  // A session of this replica is in `space` (refcounted): keep a local copy of it.
  virtual void EnterSpace(std::string_view space) = 0;
  virtual void LeaveSpace(std::string_view space) = 0;
  // Sessions here watch `users` (refcounted). `ready` runs (once, on any thread) when every later
  // change of them is sure to reach the change listener: read their state after it, not before.
  virtual void WatchUsers(std::span<const std::string> users, ReadyDone ready) = 0;
  virtual void UnwatchUsers(std::span<const std::string> users) = 0;

  // ---- views for scoring and migration ----
  // Users per video server, fleet-wide (a shared store: live sessions, as of its last refresh).
  virtual absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const = 0;
  // The servers whose count changed since the last call, with their counts now (0: none left).
  // One consumer, the fleet controller: it keeps its model's counts current with this instead of
  // copying every server's count on every join.
  virtual void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) = 0;
  virtual absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(
      std::string_view space) const = 0;
  // Up to `limit` assignments on `server` whose sessions live on this replica (they are the ones
  // this replica can tell to migrate).
  virtual std::vector<assign::Assignment> AssignedTo(std::string_view server,
                                                     std::size_t limit) const = 0;
  // Assignments this replica holds in memory.
  virtual std::size_t size() const = 0;

  // Empty when healthy; otherwise why this replica cannot write safely (for /readyz).
  virtual std::string Problem() const { return {}; }

  // Counts a hello of `user` from `address` across the fleet, in fixed windows of `window`, so
  // that reconnecting to another replica does not escape the hello budgets. A store that serves
  // one replica has nothing to share: the replica's own budgets hold, and it answers zeros.
  virtual void CountHello(std::string_view /*user*/, std::string_view /*address*/,
                          std::chrono::milliseconds /*window*/,
                          HelloCountDone done) {  // NOLINT(performance-unnecessary-value-param)
    // By value, as every store's callbacks are: a shared store keeps it until Redis answers.
    done(HelloCounts{});
  }

  // ---- admission shared by the replicas (docs/SCALING.md, "Admission across replicas") ----
  // Whether new placements draw on a fleet-wide budget per video server and interval (Admit). A
  // store that serves one replica has none: that replica's own per-interval cap is the fleet's.
  virtual bool SharesAdmission() const { return false; }
  // Takes one placement on `server` from its budget of `cap` per `window`, shared by every
  // replica. The window starts at its first placement. Refused when `cap` were taken in it, or
  // when the placements of the last few seconds (as long as the store's load counts may take to
  // reach every replica) reach `room`: the caller's view of the server's room, which may not
  // hold them yet.
  virtual void Admit(std::string_view /*server*/, std::uint32_t /*cap*/, std::uint32_t /*room*/,
                     std::chrono::milliseconds /*window*/,
                     AdmitDone done) {  // NOLINT(performance-unnecessary-value-param)
    done(Admission{true, 0, {}});
  }
  // Replicas alive as the store last saw them, this one included (at least 1): when the budget
  // cannot be reached, each replica admits its share of a server's cap.
  virtual std::size_t LiveReplicas() const { return 1; }
};

}  // namespace vrouter::store
