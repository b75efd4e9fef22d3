// The Redis store's watches: the users this replica's sessions watch, each followed on its
// user channel, and the change listener told what each watched user's assignment became (in
// epoch order: a change older than what watchers last heard is dropped). After an outage or a
// lost subscription, a watched user is read again and its watchers told what changed meanwhile.
// Store thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/assign/assignment.h"
#include "router/store/redis_gateway.h"
#include "router/store/redis_schema.h"
#include "router/store/store.h"

namespace vrouter::store {

class UserWatches {
 public:
  // `notify`: the change listener (it may be replaced while the store runs: the store's to say).
  UserWatches(boost::asio::io_context& io, RedisGateway& gw, const RedisStoreOptions& opt,
              std::function<void(const assign::AssignmentChange&)> notify);

  void DoWatch(std::vector<std::string> users, ReadyDone ready);

  void DoUnwatch(const std::vector<std::string>& users);

  void NotifyWatchers(const redis::ChangeMessage& m);

  // Redis went away: subscriptions are made again after the outage, and until confirmed a new
  // watcher waits.
  void OnDown();
  // Redis is back after an outage: every watched user subscribed again and read again.
  void Resync();
  // The user's channel was lost (its slot moved): subscribed again, then the user read again.
  void OnLost(const std::string& user);
  std::size_t size() const { return watched_.size(); }

 private:
  struct Watched {
    int refs = 0;
    bool confirmed = false;                           // Redis confirmed the SUBSCRIBE
    std::vector<std::function<void()>> on_confirmed;  // later watchers waiting for it
    std::uint64_t last_epoch = 0;
    bool removed = false;
    std::optional<assign::Assignment> last;
  };

  // Marks the user's channel confirmed and releases the watchers that waited for it.
  std::function<void()> Confirmer(const std::string& user);

  void ReconcileWatched(const std::string& user, const std::optional<assign::Assignment>& now);

  boost::asio::io_context& io_;
  RedisGateway& gw_;
  RedisConnection* const client_;
  const RedisStoreOptions& opt_;
  const redis::PubSub pubsub_;
  const std::function<void(const assign::AssignmentChange&)> notify_;
  absl::flat_hash_map<std::string, Watched> watched_;
};

}  // namespace vrouter::store
