// The Redis store's part that keeps track of which replicas are alive, and ends what dead ones
// leave behind. Each replica renews its lease every housekeeping tick (the lease script); a
// replica silent for lease_ttl is dead. Records a dead replica owned are detached by whoever
// holds their space (Sweep), one live replica takes a dead one's other spaces in hand so its
// users expire after the resume grace even where nobody else is (Reap), and detached users past
// the grace are removed. Also the fleet-wide users per video server, the sum of every live
// replica's own count (whose keys expire with their leases). Store thread only, unless said.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "router/base/absl_compat.h"
#include "router/base/mutex.h"
#include "router/store/local_copy.h"
#include "router/store/own_sessions.h"
#include "router/store/redis_gateway.h"
#include "router/store/space_copies.h"

namespace vrouter::store {

class ReplicaLeases {
 public:
  ReplicaLeases(RedisGateway& gw, LocalCopy& local, SpaceCopies& spaces, OwnSessions& sessions,
                const RedisStoreOptions& opt);

  // Renews this replica's lease; with the answer (the live and dead replicas, Redis's clock),
  // sweeps and reaps, and reads the fleet-wide load.
  void Renew();
  // The replicas whose lease ran out, as of the last renewal.
  const absl::flat_hash_set<std::string>& dead() const { return dead_; }

  // Any thread.
  std::size_t LiveReplicas() const { return live_replicas_.load(std::memory_order_relaxed); }
  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const;
  void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out);

 private:
  // Ends what is due in the spaces held here: detached past the grace, or owned by a dead replica.
  void Sweep();

  // Takes a dead replica's spaces in hand (one live replica per dead one, by a lock), so its
  // users expire after the grace even where no other replica has sessions.
  void Reap();

  // Fleet-wide users per server: the sum of every live replica's own count.
  void RefreshLoad(const std::vector<std::string>& live);

  RedisGateway& gw_;
  RedisConnection* const client_;
  LocalCopy& local_;
  SpaceCopies& spaces_;
  OwnSessions& sessions_;
  const RedisStoreOptions& opt_;
  const std::string& me_;
  telemetry::Metrics& metrics_;
  absl::flat_hash_set<std::string> dead_;  // replicas whose lease ran out
  absl::flat_hash_set<std::string> reaped_;
  std::atomic<std::size_t> live_replicas_{1};  // as of the last lease renewal

  mutable vrouter::Mutex mu_;
  absl::flat_hash_map<std::string, std::int64_t> load_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> load_changed_ ABSL_GUARDED_BY(mu_);  // since TakeLoadChanges
};

}  // namespace vrouter::store
