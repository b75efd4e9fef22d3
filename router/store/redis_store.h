// The replicated store: assignments in Redis (layout and scripts in redis_schema.h), shared by
// every replica, with a local copy of the spaces this replica's sessions are in.
//
// - Writes are compare-and-set scripts on the space's one key; nothing is written locally first
//   except the result of a write that Redis accepted (read-your-writes on this replica).
// - A space is loaded without a gap: SUBSCRIBE to its channel, and only once Redis confirmed it,
//   HGETALL (which carries the space's sequence number); changes that arrived meanwhile are
//   applied if newer than the snapshot. A skipped sequence number reloads the space.
// - Watches subscribe to each watched user's channel; the change listener hears them from there.
// - Leases: every replica renews its lease each housekeeping tick. Records owned by a replica
//   whose lease ran out are detached by whoever holds their space, and one replica takes the dead
//   replica's other spaces in hand, so they expire after the resume grace even if nobody else
//   is in them.
// - Nothing read from Redis is used unchecked (redis_schema.h: Defect): bad records are treated
//   as absent, a bad sequence is reset by the next write, a key of the wrong type isolates its
//   space (StoreError::kCorrupt), change messages that do not decode or name another channel's
//   user or space are dropped, and one whose epoch is ahead of Redis's clock is not trusted: the
//   record is read from Redis instead. Fleet messages are authenticated (gossip_auth.h).
// - Redis down: writes fail at once with StoreError (the client gets a retryable error), lookups
//   of held spaces keep working, Problem() says why. When Redis is back, every held space is
//   reloaded, this replica's live sessions' assignments are reasserted if Redis lost them, and
//   watched users are re-read so watchers hear what changed meanwhile.
//
// Threading: every public method is thread-safe. All Redis work and all bookkeeping runs on the
// store's own thread (an io_context it owns); the change listener and completions run there.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "router/store/redis_store_options.h"
#include "router/store/store.h"
#include "router/telemetry/metrics.h"

namespace vrouter::store {

class RedisStore final : public AssignmentStore {
 public:
  using ReplacedHandler = store::ReplacedHandler;

  RedisStore(RedisStoreOptions options, telemetry::Metrics& metrics, ReplacedHandler on_replaced);
  ~RedisStore() override;  // stops the thread
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Starts the store's thread and connects. Returns at once; Problem() says when it is not up.
  void Start();
  void Stop();

  void SetChangeListener(ChangeListener listener) override;
  std::optional<assign::Assignment> GetLocal(std::string_view user) const override;
  void Lookup(std::vector<std::string> users, LookupDone done) const override;
  void LookupInSpace(std::vector<std::string> users, std::string space,
                     LookupDone done) const override;
  void Put(assign::Assignment desired, std::uint64_t expected_epoch, std::uint64_t min_epoch,
           PutDone done) override;
  void Attach(std::string_view user, std::string_view space, std::uint64_t session,
              AttachDone done) override;
  void Detach(std::string_view user, std::uint64_t session, base::SteadyTime now) override;
  void Remove(std::string_view user, std::uint64_t session, RemoveDone done) override;
  std::size_t ExpireDetached(base::SteadyTime) override { return 0; }  // housekeeping does it
  void EnterSpace(std::string_view space) override;
  void LeaveSpace(std::string_view space) override;
  void WatchUsers(std::span<const std::string> users, ReadyDone ready) override;
  void UnwatchUsers(std::span<const std::string> users) override;
  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const override;
  void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) override;
  absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(std::string_view space) const override;
  std::vector<assign::Assignment> AssignedTo(std::string_view server,
                                             std::size_t limit) const override;
  std::size_t size() const override;
  std::string Problem() const override;
  void CountHello(std::string_view user, std::string_view address, std::chrono::milliseconds window,
                  HelloCountDone done) override;
  bool SharesAdmission() const override { return true; }
  void Admit(std::string_view server, std::uint32_t cap, std::uint32_t room,
             std::chrono::milliseconds window, AdmitDone done) override;
  std::size_t LiveReplicas() const override;

  // ---- shared fleet evidence (the fleet controller's channel) ----
  // Publishes `payload` on vr:fleet, sealed with the replica key; fire and forget (dropped while
  // Redis is down).
  void PublishFleet(std::string payload);
  // Receives every vr:fleet message that verifies with the replica key, this replica's own
  // included, unsealed, on the store's thread. The others are dropped and counted.
  void SetFleetListener(std::function<void(std::string_view payload)> listener);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vrouter::store
