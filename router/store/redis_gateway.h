// The Redis store's one way to Redis, shared by the parts the store is made of (own_sessions.h,
// space_copies.h, user_watches.h, replica_leases.h; redis_store.cc puts them together): the
// connection (one Redis, behind Sentinel or not, or a Redis Cluster), the scripts, the clock,
// and the checks on everything Redis answers. A defect in what Redis holds is counted and logged
// (at most every kLogEvery per kind and key); a sharded script's user changes are published
// (redis_schema.h, VRTELL). Store thread only, unless said otherwise.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/base/time.h"
#include "router/store/redis_client.h"
#include "router/store/redis_schema.h"
#include "router/store/redis_store_options.h"
#include "router/store/store.h"
#include "router/telemetry/metrics.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace vrouter::store {

// How far ahead of Redis's clock (as this replica estimates it) a published epoch may be before
// the payload is distrusted and the record read from Redis instead. Epochs are Redis's clock in
// microseconds when written (redis_schema.h), so a real change is never ahead by more than the
// estimate's error; a forged `left` can silence a user's watchers for at most this long.
inline constexpr std::uint64_t kEpochAheadUs = 2'000'000;
// At most one log line per this interval for each kind of rejected message or corrupt key.
inline constexpr std::chrono::seconds kLogEvery{10};
// Why a change message from pub/sub was not applied as published (metric label values).
enum class ChangeRejection : std::uint8_t { kMalformed, kWrongChannel, kEpochAhead };
inline constexpr std::string_view kChangeRejectionNames[] = {"malformed", "wrong_channel",
                                                             "epoch_ahead"};

// The scripts of redis_schema.h, the space scripts in the form for `pubsub`.
struct StoreScripts {
  explicit StoreScripts(redis::PubSub pubsub);
  std::vector<const RedisScript*> All() const;
  const RedisScript put, attach, detach, remove, expire, orphan;  // the space scripts
  const RedisScript lease, pointer_delete, own_load, hello_count, admit;
};

class RedisGateway {
 public:
  RedisGateway(boost::asio::io_context& io, const RedisStoreOptions& opt,
               telemetry::Metrics& metrics, RedisHooks hooks);

  // Sharded pub/sub on Redis Cluster (a change travels only inside its shard), classic otherwise.
  static redis::PubSub PubSubFor(const RedisStoreOptions& opt) {
    return opt.cluster_seeds.empty() ? redis::PubSub::kClassic : redis::PubSub::kSharded;
  }

  const StoreScripts scripts;

  RedisConnection& client() { return *client_; }
  redis::PubSub pubsub() const { return pubsub_; }
  telemetry::Metrics& metrics() { return metrics_; }
  // Now, on the store's clock (RedisStoreOptions::clock).
  base::SteadyTime Now() const { return opt_.clock(); }
  // What the lease script said Redis's clock is (ms), minus this machine's.
  void SetClockOffset(std::int64_t ms) { clock_offset_ms_ = ms; }

  // ---- what the store read that it cannot trust ----
  // Counts and logs (at most once per kLogEvery per kind, key and field) a defect of the data at
  // `key` (`field`: the hash field, when it is one: a user, or "" for the sequence).
  void NoteDefect(redis::Defect d, std::string_view key, std::string_view field = {});

  // A change message from pub/sub not applied as published.
  void RejectChange(ChangeRejection why, std::string_view channel);

  // Checks a reply for what the store held at `key`: a WRONGTYPE error is a defect of the key,
  // a script's trailing "VRDEFECTS ..." report is counted and removed from the reply, and so are
  // a sharded script's "VRTELL ..." user changes, which are published (Tell).
  void Inspect(const std::string& key, RedisResult& r);

  // A script on `key` (a space's key: EvalSpace), its reply inspected first.
  void EvalOn(const RedisScript& script, const std::string& key, std::vector<std::string> args,
              RedisCallback cb);

  // A space script: on the space's key.
  void EvalSpace(const RedisScript& script, const std::string& space, std::vector<std::string> args,
                 RedisCallback cb);

  // A command on `key`, its reply inspected first.
  void CommandOn(const std::string& key, std::vector<std::string> args, RedisCallback cb);

  // Redis's clock as this replica estimates it (ms), from the lease script's answers.
  std::int64_t RedisNowMs() const;

  // The highest epoch a change published now can honestly carry (see kEpochAheadUs).
  std::uint64_t EpochCeiling() const;

  // Reads users from Redis: the pointer to their space, then their record there.
  void ReadRemote(std::vector<std::string> users, LookupDone done);

  // The user's record in `space` as Redis holds it now (nullopt: none, or not a valid one).
  void ReadRecord(const std::string& space, const std::string& user, AttachDone done);

  // The records of `users` in `space` (nullopt where there is none): one HGET each.
  void ReadInSpace(const std::string& space, std::vector<std::string> users, LookupDone done);

  // Subscribes to (unsubscribes from) a space or user channel: classic or shard channels
  // (redis_schema.h, PubSub). `confirmed` as for RedisConnection::Subscribe.
  void Listen(const std::string& channel, std::function<void()> confirmed);
  void StopListening(const std::string& channel);

  // Whether a log line about `what` is due (at most one per kLogEvery).
  bool LogDue(const std::string& what);

 private:
  std::unique_ptr<RedisConnection> MakeClient(RedisHooks hooks);
  // SPUBLISHes a change handed back by a sharded script to its user's channel. Not atomic with
  // the script: a replica that dies between the two leaves that one change unheard by the
  // user's watchers (their next change, or a resync, tells them where the user is).
  void Tell(std::string message);
  static bool IsStatus(const RedisReply& r, std::string_view prefix);

  boost::asio::io_context& io_;
  const RedisStoreOptions& opt_;
  const redis::PubSub pubsub_;
  telemetry::Metrics& metrics_;
  std::unique_ptr<RedisConnection> client_;  // one Redis (maybe via Sentinel), or a Cluster
  std::array<prometheus::Counter*, redis::kDefectCount> corrupt_{};
  std::array<prometheus::Counter*, std::size(kChangeRejectionNames)> rejected_{};
  absl::flat_hash_map<std::string, base::SteadyTime> log_due_;  // LogDue: when to log again
  std::int64_t clock_offset_ms_ = 0;  // Redis clock minus this machine's, from the lease script
};

}  // namespace vrouter::store
