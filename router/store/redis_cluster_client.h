// Redis Cluster for the store: one RedisClient per primary, each command routed to the primary
// that serves its key's slot (cluster_slots.h), MOVED and ASK followed, the slot map refreshed
// from the cluster (CLUSTER SLOTS) when it changes under us and every few seconds.
//
// - Routing: Command's key is its first argument, except for the keyless commands the store sends
//   (PUBLISH, PING, TIME, SCRIPT), which any primary takes; Eval's is its first key (every script
//   keeps its keys in one slot: RedisScriptsTest, the RedisClusterNode contract tests).
// - Redirections: MOVED updates the slot's owner and resends (and refreshes the map); ASK sends
//   ASKING then the command to the node named, once; TRYAGAIN and CLUSTERDOWN are retried after
//   100 ms. At most kMaxRedirects resends per command: a redirect loop or a MOVED to a node that
//   cannot be reached fails the command (kDisconnected), never spins.
// - Up: while the client has a slot map and at least one primary answers. A primary going down
//   (a crash, before the cluster fails it over) takes down only its own slots: their commands
//   fail at once with kDisconnected (the store answers the retryable `unavailable`) while the
//   other shards work on, and on_partial says which primaries are down. The map is refreshed
//   every 250 ms until the cluster names a new primary for those slots; their shard channels
//   are then lost (on_shard_lost), so the owner reloads what the new primary holds (and writes
//   back what the failover lost). on_down only when no primary answers at all.
// - Pub/sub: classic SUBSCRIBE on one primary that is up (PUBLISH reaches every node of a
//   cluster); when it goes down or leaves the map, every classic channel moves to another.
// - Sharded pub/sub (SubscribeShard, Redis 7): each shard channel is SSUBSCRIBEd on the primary
//   that serves its slot, so a change travels only inside its shard. When the slot moves (Redis
//   drops the subscription with `sunsubscribe`, the SSUBSCRIBE is redirected, or a new map says
//   so), the channel is dropped and on_shard_lost tells the owner ~100 ms later, once the map
//   says where the slot went: the owner subscribes again and reads what it may have missed.
//
// Threading: as RedisClient, everything on the io_context's thread; Command, Eval, Subscribe and
// Unsubscribe must be called there (the store's thread). Start, Stop, up and pending from any.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "router/store/redis_client.h"

namespace vrouter::store {

struct RedisClusterOptions {
  // Nodes to ask for the slot map (any of the cluster's), tried in turn.
  std::vector<std::pair<std::string, std::uint16_t>> seeds;
  // Every node's connection options (AUTH, TLS, timeouts, backoff); host and port are set per
  // node, db must be 0 (a cluster has one database).
  RedisOptions node;
  std::chrono::milliseconds refresh_interval{5000};
};

class RedisClusterClient final : public RedisConnection {
 public:
  static constexpr int kMaxRedirects = 5;

  RedisClusterClient(boost::asio::io_context& io, RedisClusterOptions options, RedisHooks hooks);
  ~RedisClusterClient() override;  // on the io thread, as RedisClient's

  RedisClusterClient(const RedisClusterClient&) = delete;
  RedisClusterClient& operator=(const RedisClusterClient&) = delete;

  void Start() override;
  void Stop() override;
  void Command(std::vector<std::string> args, RedisCallback cb) override;
  void Eval(const RedisScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback cb) override;
  void Subscribe(std::string channel, std::function<void()> confirmed) override;
  void Unsubscribe(std::string channel) override;
  void SubscribeShard(std::string channel, std::function<void()> confirmed) override;
  void UnsubscribeShard(std::string channel) override;
  bool up() const override;
  std::size_t pending() const override;

  // The primaries the client routes to now ("host:port"), for tests and logs; on the io thread.
  std::vector<std::string> Primaries() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace vrouter::store
