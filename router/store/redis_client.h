// An asynchronous Redis client for the replicated store: Boost.Asio connections (TCP or TLS),
// hiredis 0.14's reply parser.
//
// Two connections to one Redis: one runs commands (pipelined: every command is written without
// waiting for earlier replies), the other holds the pub/sub subscriptions (a subscribed
// connection cannot run ordinary commands). Both are up or both are down: losing either, or a
// command going unanswered for longer than `command_timeout`, ends the session, fails everything
// in flight and reconnects with exponential backoff and jitter.
//
// Threading: everything happens on the io_context's thread, which must be a single thread (the
// order of commands and of their callbacks rests on it). Command, Eval, Subscribe, Unsubscribe,
// Start, Stop, up and pending may be called from any thread; the work is posted to the io thread.
// Every callback and hook runs on the io thread, never inside the call that caused it, and never
// while hiredis is on the stack (a callback may call back into the client, Stop it, or destroy
// it).
//
// TLS (rediss://) with the options below; host names are resolved (asynchronously) on every
// connection attempt.
//
// Neither hiredis nor Asio is included here (pimpl), so the store's users do not compile them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace vrouter::store {

// A deep copy of a hiredis reply (hiredis frees its own after the callback returns).
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  std::int64_t integer = 0;
  std::string str;                   // kString, kStatus, kError
  std::vector<RedisReply> elements;  // kArray
};

enum class RedisFailureKind {
  kDisconnected,  // not connected, or the connection was lost with the command in flight
  kTimeout,       // this or an earlier command went unanswered for command_timeout
  kQueueFull,     // max_pending commands already in flight
  kStopped,       // Stop() or the destructor
};
struct RedisFailure {
  RedisFailureKind kind;
  std::string message;  // for logs: says why (the outage's reason, the timeout, ...)
};

// A Redis error reply (e.g. a script's redis.error_reply, WRONGTYPE) is a RedisReply of type
// kError, not a failure: Redis answered. A failure means no answer will come.
using RedisResult = std::variant<RedisReply, RedisFailure>;
using RedisCallback = std::function<void(RedisResult)>;

struct RedisTlsOptions {
  bool enabled = false;  // rediss://
  std::string ca_file;  // the CAs (PEM) the server's certificate must chain to; empty: the system's
  std::string cert_file;  // a client certificate chain (PEM), for servers that ask for one
  std::string key_file;   // its private key (PEM); both or neither
  // The name (or address) the server's certificate must carry; empty: `host`.
  std::string server_name;
};

// Redis behind Sentinel: the client asks a Sentinel where the primary of `master_name` is (the
// next Sentinel in turn on each connection attempt), connects there only if ROLE says primary,
// keeps a Sentinel connection subscribed to +switch-master, and starts a new session (every
// subscription again) when the primary moves: on +switch-master, on READONLY from the node it
// writes to, or when a Sentinel it reconnects to names another primary.
struct RedisSentinelOptions {
  std::vector<std::pair<std::string, std::uint16_t>> sentinels;  // empty: host and port below
  std::string master_name;
  std::string username, password;  // the Sentinels' own AUTH, if they ask for one
  // The Sentinels over TLS too (rediss-sentinel://), with RedisOptions::tls's files and checks;
  // needs tls.enabled (a deployment that encrypts Sentinels encrypts Redis).
  bool tls = false;
};

struct RedisOptions {
  std::string host = "127.0.0.1";  // an address or a name (unused behind Sentinel)
  std::uint16_t port = 6379;
  std::string username;  // an ACL user: AUTH USERNAME PASSWORD (empty: AUTH PASSWORD)
  std::string password;  // AUTH when not empty
  int db = 0;            // SELECT when not 0 (commands connection; pub/sub ignores databases)
  // From the start of a connection attempt to both connections having answered the handshake
  // (a SIGSTOPped Redis accepts TCP connections and never answers).
  std::chrono::milliseconds connect_timeout{1000};
  // The longest an answer may take once sent (subscription confirmations included).
  std::chrono::milliseconds command_timeout{1000};
  // Commands accepted and not yet answered, both connections (see pending()).
  std::size_t max_pending = 10000;
  std::chrono::milliseconds backoff_min{100}, backoff_max{5000};
  RedisTlsOptions tls;  // to Sentinels too when sentinel.tls
  RedisSentinelOptions sentinel;
};

struct RedisHooks {  // all called on the io_context thread; any may be empty
  // Both connections ready: AUTH/SELECT/PING answered and every wanted channel's SUBSCRIBE sent.
  std::function<void()> on_up;
  // Once per outage (including a first connection that fails), with a human reason
  // ("connect to 127.0.0.1:6379 failed: Connection refused", "command timed out after 1000 ms",
  // "AUTH failed: WRONGPASS ..."). Not called by Stop().
  std::function<void(const std::string& why)> on_down;
  // A message on a subscribed channel (only channels still wanted).
  std::function<void(std::string_view channel, std::string_view payload)> on_message;
  // A shard channel (SubscribeShard) this client no longer holds although it was not asked to
  // let go: Redis Cluster moved its slot to another node (an unsolicited `sunsubscribe`), or
  // answered its SSUBSCRIBE with a redirection (`redirect` is the error: "MOVED 1234 h:p").
  // The channel is no longer wanted here; messages published since may have been missed.
  std::function<void(const std::string& channel, const std::string& redirect)> on_shard_lost;
  // Per command that was sent to Redis, when it completes (ok: Redis answered, even with an
  // error reply) or fails; seconds from the Command/Eval call. Commands refused before being
  // sent (not up, queue full, stopped) are not reported.
  std::function<void(double seconds, bool ok)> on_command;
  // Before each reconnection attempt after an outage (not the first connection).
  std::function<void()> on_reconnect_attempt;
  // Redis Cluster only: some shards cannot be written while the client is up (their primary is
  // down and not replaced yet, or slots have no primary), with how many primaries and why
  // ("primaries down: 10.0.0.21:6379"); called again with 0 and "" once all are back.
  std::function<void(std::size_t primaries_down, const std::string& why)> on_partial;
};

// A Lua script sent by EVALSHA, falling back to EVAL when Redis answers NOSCRIPT (its script
// cache was flushed or it restarted); EVAL caches the script, so the next call's EVALSHA hits.
// Copies share the source. Immutable, so usable from any thread.
class RedisScript {
 public:
  explicit RedisScript(std::string source);  // computes the SHA1

  const std::string& source() const;
  const std::string& sha1() const;  // 40 lowercase hex digits

 private:
  friend class RedisClient;
  std::shared_ptr<const std::string> source_;  // shared: a NOSCRIPT fallback needs it later
  std::string sha1_;
};

// What the store needs from Redis, whether one server (RedisClient, possibly found through
// Sentinel) or a Redis Cluster (RedisClusterClient, redis_cluster_client.h). The contracts are
// RedisClient's, below.
class RedisConnection {
 public:
  virtual ~RedisConnection() = default;
  virtual void Start() = 0;
  virtual void Stop() = 0;
  virtual void Command(std::vector<std::string> args, RedisCallback cb) = 0;
  virtual void Eval(const RedisScript& script, std::vector<std::string> keys,
                    std::vector<std::string> args, RedisCallback cb) = 0;
  virtual void Subscribe(std::string channel, std::function<void()> confirmed) = 0;
  virtual void Unsubscribe(std::string channel) = 0;
  // Sharded pub/sub (Redis 7: SSUBSCRIBE, SPUBLISH): a shard channel lives in its name's hash
  // slot, like a key. Same contract as Subscribe, plus RedisHooks::on_shard_lost.
  virtual void SubscribeShard(std::string channel, std::function<void()> confirmed) = 0;
  virtual void UnsubscribeShard(std::string channel) = 0;
  virtual bool up() const = 0;
  virtual std::size_t pending() const = 0;
};

class RedisClient final : public RedisConnection {
 public:
  RedisClient(boost::asio::io_context& io, RedisOptions options, RedisHooks hooks);
  // Must run on the io thread, or after the io_context stopped running (never concurrently with
  // it). Frees the hiredis contexts; commands in flight get kStopped during the destructor, and
  // ones still being posted get kStopped on the io thread later. No hook runs after it.
  ~RedisClient() override;

  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Begins connecting; returns at once. Once only.
  void Start() override;
  // Fails everything in flight with kStopped and disconnects, for good (no reconnect, no
  // restart). Pending `confirmed` callbacks of Subscribe are dropped.
  void Stop() override;

  // `cb` is ALWAYS invoked later on the io thread, exactly once, never inline. Commands are sent
  // in the order they are called from one thread, and (one connection) answered in that order.
  // Commands that would change the connection's state (the SUBSCRIBE family, MONITOR, SELECT,
  // AUTH, RESET, HELLO, QUIT) are answered with an error reply without being sent.
  void Command(std::vector<std::string> args, RedisCallback cb) override;
  // EVALSHA, or on NOSCRIPT the same call again as EVAL (which goes to the back of the pipeline:
  // a command sent after it may then run before it).
  void Eval(const RedisScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback cb) override;

  // Adds `channel` to the wanted set, which is (re)subscribed on every (re)connection. When up,
  // sends SUBSCRIBE at once. `confirmed` (may be empty) runs once, on the io thread, when Redis
  // confirms this SUBSCRIBE (after a reconnect if it was down); it never runs if the channel is
  // unsubscribed before its SUBSCRIBE was sent, or on Stop().
  void Subscribe(std::string channel, std::function<void()> confirmed) override;
  void Unsubscribe(std::string channel) override;
  // The same with SSUBSCRIBE / SUNSUBSCRIBE, on the same subscriber connection. A redirection in
  // answer (the node does not serve the channel's slot), or Redis dropping the subscription
  // because the slot moved, is not an outage: the channel is dropped and on_shard_lost says so.
  void SubscribeShard(std::string channel, std::function<void()> confirmed) override;
  void UnsubscribeShard(std::string channel) override;
  // Drops a shard channel without a SUNSUBSCRIBE: for a node that no longer serves its slot.
  void ForgetShard(std::string channel);

  // Whether the Redis at `options` (its address, AUTH and TLS; not behind Sentinel) is a Redis
  // Cluster node: CLUSTER SLOTS answers a map there and "cluster support disabled" elsewhere.
  // Asked over connections of its own on a private io_context, so it blocks the caller for up to
  // `timeout` (one connection attempt); nullopt when it cannot tell (unreachable, AUTH refused,
  // another error), with why.
  static std::optional<bool> IsClusterNode(const RedisOptions& options,
                                           std::chrono::milliseconds timeout, std::string& why);

  bool up() const override;  // both connections ready
  // Commands accepted and not yet answered (including ones still being posted to the io thread)
  // plus SUBSCRIBEs sent and not yet confirmed.
  std::size_t pending() const override;

 private:
  class Impl;
  // Shared so that the io thread's handlers can keep it alive while a callback they run destroys
  // the client; everything else refers to it weakly.
  std::shared_ptr<Impl> impl_;
};

}  // namespace vrouter::store
