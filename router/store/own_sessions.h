// The Redis store's part that writes for this replica's live sessions (the compare-and-set
// scripts of redis_schema.h: put, attach, detach, remove) and keeps what they own: a user whose
// record names this replica and a live session. It keeps the records true to the sessions: a
// record Redis lost is written back (Reassert), one another replica detached is taken back, and
// a session that lost its user to a newer one elsewhere is told (the ReplacedHandler). Store
// thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/assign/assignment.h"
#include "router/store/local_copy.h"
#include "router/store/redis_gateway.h"
#include "router/store/redis_store_options.h"
#include "router/store/store.h"

namespace vrouter::store {

class OwnSessions {
 public:
  OwnSessions(RedisGateway& gw, LocalCopy& local, const RedisStoreOptions& opt,
              ReplacedHandler on_replaced);

  // AssignmentStore's Put, Attach, Detach and Remove (store.h), on the store's thread.
  void DoPut(assign::Assignment desired, std::uint64_t expected, std::uint64_t min_epoch,
             PutDone done);
  void DoAttach(const std::string& user, const std::string& space, std::uint64_t session,
                AttachDone done);
  void DoDetach(const std::string& user, std::uint64_t session);
  void DoRemove(const std::string& user, std::uint64_t session, RemoveDone done);

  // After a (re)load: this replica's records match its live sessions. A live session whose record
  // Redis lost is written again; a record of this replica without a live session is detached.
  void Reconcile(const std::string& space, const std::vector<assign::Assignment>& records);

  // Whether a record change took a user away from this replica's live session.
  void CheckOwnership(const assign::Assignment& a);

  // Writes a live session's assignment back where Redis lost it (vrouter_store_reasserted_total).
  void Reassert(const assign::Assignment& own);

  // Deletes the user's pointer (vr:u:{user}) if it still names `space`.
  void DeletePointer(const std::string& user, const std::string& space);

  // This replica's live users per video server (vr:rl:{replica}, expiring with its lease).
  void WriteOwnLoad();

  // A record of `space` removed by someone else while this replica's session still holds the
  // user (this replica's lease ran out during a partition, and another replica expired it): the
  // session is still here, so the record is written back.
  void OnRemovedElsewhere(const std::string& user, const std::string& space, std::uint64_t epoch);
  // Detaches Redis refused for a reason other than an outage, tried again (housekeeping).
  void RetryDetaches();

 private:
  std::optional<assign::Assignment> Known(const std::string& user) const;

  // A user changing spaces: its record leaves the old space's key (compare-and-set on the epoch,
  // which decides between racing writers) and is written into the new one.
  void MoveSpace(assign::Assignment desired, const assign::Assignment& old, std::uint64_t min_epoch,
                 PutDone done);

  // `claim`: the write comes from the session named in `desired` (it then owns the user here);
  // false for the store's own repairs, which never make a released session an owner again.
  void PutScript(const assign::Assignment& desired, std::uint64_t expected, std::uint64_t min_epoch,
                 std::string previous_server, PutDone done, bool claim = true);

  // A refused write's answer: the user's record wherever it is now.
  void ReadCurrent(const std::string& user, PutDone done);

  // A write of this replica that Redis accepted: visible to this replica's lookups at once.
  void ApplyOwnWrite(const assign::Assignment& a, bool claim = true);

  void SendDetach(const std::string& user, std::uint64_t session, const std::string& space);

  // Attaches the session to its user's record in `space` (the attach script).
  void AttachIn(const std::string& user, const std::string& space, std::uint64_t session,
                AttachDone done);

  RedisGateway& gw_;
  RedisConnection* const client_;
  LocalCopy& local_;
  const RedisStoreOptions& opt_;
  const std::string& me_;
  telemetry::Metrics& metrics_;
  const ReplacedHandler on_replaced_;
  absl::flat_hash_map<std::string, assign::Assignment> owned_;  // live sessions of this replica
  absl::flat_hash_map<std::string, int> writing_;               // users with a Put in flight
  struct PendingDetach {
    std::string user;
    std::uint64_t session;
    std::string space;
  };
  std::vector<PendingDetach> retry_detach_;  // detaches Redis refused; retried by housekeeping
};

}  // namespace vrouter::store
