// The Redis store's local copies of spaces: the spaces this replica's sessions are in (and the
// dead replicas' spaces it took in hand), each a copy of its Redis hash kept current by the
// space's change channel. A space is loaded without a gap: subscribe, and only once Redis
// confirmed it, HGETALL (which carries the space's sequence number); changes that arrived
// meanwhile are applied if newer than the snapshot. A skipped sequence number reloads the space,
// as does a subscription lost to a slot move or an outage. Store thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "router/base/time.h"
#include "router/store/local_copy.h"
#include "router/store/own_sessions.h"
#include "router/store/redis_gateway.h"
#include "router/store/redis_schema.h"

namespace vrouter::store {

class SpaceCopies {
 public:
  SpaceCopies(RedisGateway& gw, LocalCopy& local, OwnSessions& sessions,
              const RedisStoreOptions& opt);

  // Holds `space` (`refs` more sessions in it, and at least until `until`), loading it first.
  void Hold(const std::string& space, int refs, base::SteadyTime until);

  // Subscribes (again) and loads the snapshot once Redis has confirmed the subscription.
  void Subscribe(const std::string& space);

  // A space whose subscription or snapshot did not complete (a failed read, a full queue) starts
  // over; changes keep being buffered meanwhile.
  void RestartStuckSpaces();

  // Lets go of spaces nobody here is in any more, unless it holds records this replica must see
  // expire: its own detached users and those of `dead` replicas.
  void DropIdleSpaces(const absl::flat_hash_set<std::string>& dead);
  // A session left `space` (EnterSpace's counterpart): dropped once idle (DropIdleSpaces).
  void Release(const std::string& space);
  // A change heard on `space`'s channel: applied, or buffered while the space loads.
  void OnChange(const std::string& space, redis::ChangeMessage m);
  // Redis went away: every space loads again when it is back (ResubscribeAll).
  void OnDown();
  void ResubscribeAll();
  // The spaces held, and those whose copy is current (loaded and following their channel).
  std::vector<std::string> Held() const;
  std::vector<std::string> Ready() const;
  bool Holds(const std::string& space) const { return spaces_.contains(space); }
  std::size_t size() const { return spaces_.size(); }

 private:
  struct SpaceState {
    int refs = 0;
    base::SteadyTime hold_until{};
    enum class Phase { kSubscribing, kLoading, kReady } phase = Phase::kSubscribing;
    std::uint64_t seq = 0;
    std::uint64_t generation = 0;    // a newer load makes older callbacks stale
    base::SteadyTime phase_since{};  // when the current subscribe or load began
    std::vector<redis::ChangeMessage> buffered;
  };

  // HGETALL of the space (load `gen`; a newer load makes it stale): the copy replaced, the
  // changes buffered meanwhile applied if newer, this replica's own records reconciled.
  void LoadSnapshot(const std::string& space, std::uint64_t gen);

  // The local time a detached record was detached at, from the Redis-clock ms in the record.
  base::SteadyTime DetachedSince(const redis::Record& r, base::SteadyTime now) const;

  // One change of a loaded space, in sequence order: a gap reloads the space, an epoch ahead of
  // Redis's clock is read from Redis instead.
  void ApplySpaceChange(const std::string& space, redis::ChangeMessage m);

  // Replaces the local copy's record of `user` in `space` with what Redis holds now.
  void RefreshRecord(const std::string& space, const std::string& user);

  RedisGateway& gw_;
  RedisConnection* const client_;
  LocalCopy& local_;
  OwnSessions& sessions_;
  const std::string& me_;
  telemetry::Metrics& metrics_;
  const redis::PubSub pubsub_;
  absl::flat_hash_map<std::string, SpaceState> spaces_;
};

}  // namespace vrouter::store
