// How a Redis store reaches Redis and times its work (RedisStore, redis_store.h, and its parts).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "router/base/time.h"
#include "router/store/redis_client.h"

namespace vrouter::store {

struct RedisStoreOptions {
  RedisOptions redis;
  // A Redis Cluster: nodes to ask for the slot map (`redis` then applies to every node; its host
  // and port are unused). Empty: one Redis (`redis`, or its Sentinels).
  std::vector<std::pair<std::string, std::uint16_t>> cluster_seeds;
  // This process's identity in Redis (records' owner, lease key): unique per process start
  // (the app appends a per-start suffix to the replica name).
  std::string replica_id;
  std::chrono::milliseconds resume_grace{30000};
  // A replica silent for this long is dead: its users' assignments start their resume grace.
  std::chrono::milliseconds lease_ttl{5000};
  // Lease renewal, expiry sweep, fleet-wide load refresh.
  std::chrono::milliseconds housekeeping_interval{1000};
  // The replicas' shared key (--replica-key, at least kMinReplicaKeyBytes): fleet messages are
  // sealed with it and only messages sealed with it are accepted (gossip_auth.h). Without one,
  // none are sent or accepted.
  std::string replica_key;
  // The store's clock for what it times itself (a held space's hold, a stuck load's restart,
  // when a detached user's grace is over, log rate limits); tests may inject their own. What
  // Redis times (lease deadlines, the detach time a grace is measured from, TTLs) is on Redis's
  // clock, shared by every replica.
  std::function<base::SteadyTime()> clock = [] { return std::chrono::steady_clock::now(); };
};

// A session of this replica lost its user to a newer session (on any replica): close it.
using ReplacedHandler = std::function<void(const std::string& user, std::uint64_t session)>;

}  // namespace vrouter::store
