// Why this file is longer than ~600 lines: the connections, the command pipeline and the
// subscriptions share one ownership and threading scheme (below) that is easier to check in one
// place than across files; the sections follow the list below.
//
// Redis on Boost.Asio, with hiredis 0.14 for the protocol only. How the pieces fit:
//
// - Transport: each connection is our own Asio TCP socket, or an asio::ssl stream over one for
//   rediss:// (OpenSSL, as the router's own wss listener). Why not hiredis's async API: Debian
//   12's hiredis 0.14 has no TLS, no cluster routing and no RESP3 push handling, and it owns the
//   socket; driving its reply reader (redisReader) over sockets we manage ourselves keeps the
//   well-tested RESP parser and lets the same connection code carry TLS now and per-node cluster
//   connections later. Commands are written as RESP arrays of bulk strings (the one format
//   Redis needs from a client; AppendCommand below), pipelined: every command is appended to the
//   connection's output buffer, written by at most one async_write at a time.
// - Replies: a read loop feeds what arrives to the connection's redisReader and takes every whole
//   reply out; a command connection's replies answer its requests in send order (a FIFO); on the
//   subscriber connection, after the handshake, replies are pub/sub events. A reply the reader
//   cannot parse (a node answering garbage) ends the session with the reader's error.
// - Ownership: Impl is owned by RedisClient through a shared_ptr. A connection (Conn) is owned by
//   Impl and by its pending handlers (each holds a shared_ptr<Conn>). Impl marks a Conn closed
//   and closes its socket before letting go of it, and before it dies; a handler that finds its
//   Conn closed returns at once, so `owner` is only used while the Conn is Impl's.
// - Reentrancy: reply handling only records what happened: completions and hooks go into
//   `events_`, the reasons for an outage into the Conn (`death`) or `handshake_error_`. User code
//   runs only from Flush(), at the end of every handler, so a user callback may Stop or destroy
//   the client.
// - Timeouts: a periodic tick compares the oldest unanswered request (per-connection FIFOs:
//   replies come in send order) with command_timeout, and a connection attempt's age with
//   connect_timeout.
#include "router/store/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <charconv>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <utility>

namespace vrouter::store {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A command as Redis reads it: an array of bulk strings (RESP). hiredis's redisFormatCommandArgv
// would do the same into a malloc'd buffer of its own, one per command; this appends to the
// connection's output buffer.
void AppendCommand(std::string& out, const std::vector<std::string>& args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (const std::string& a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

RedisReply CopyReply(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) {
        out.elements.push_back(r.element[i] != nullptr ? CopyReply(*r.element[i]) : RedisReply{});
      }
      break;
    default:  // REDIS_REPLY_NIL
      break;
  }
  return out;
}

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

RedisReply ErrorReply(std::string message) {
  RedisReply r;
  r.type = RedisReply::Type::kError;
  r.str = std::move(message);
  return r;
}

// Commands that change the connection's state behind the client's back: a subscriber or monitor
// connection routes replies differently in hiredis, RESET/SELECT/AUTH/HELLO/QUIT would undo the
// handshake (HELLO 3 even switches to RESP3, which 0.14 cannot parse), and a reconnection would
// silently undo them again. Subscriptions go through Subscribe(); the rest through RedisOptions.
bool ChangesConnectionState(const std::string& name) {
  static constexpr std::string_view kNames[] = {
      "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ssubscribe", "sunsubscribe",
      "monitor",   "reset",      "select",      "auth",         "hello",      "quit"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](std::string_view n) {
    return n.size() == name.size() &&
           std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
             return a == static_cast<char>(std::tolower(static_cast<unsigned char>(b)));
           });
  });
}

}  // namespace

RedisScript::RedisScript(std::string source)
    : source_(std::make_shared<const std::string>(std::move(source))) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(source_->data(), source_->size(), md, &len, EVP_sha1(), nullptr) != 1) {
    len = 0;  // an empty SHA1 only costs an EVALSHA that Redis refuses, then EVAL
  }
  static constexpr char kHex[] = "0123456789abcdef";
  sha1_.reserve(std::size_t{2} * len);
  for (unsigned int i = 0; i < len; ++i) {
    sha1_.push_back(kHex[md[i] >> 4]);
    sha1_.push_back(kHex[md[i] & 0xf]);
  }
}

const std::string& RedisScript::source() const { return *source_; }
const std::string& RedisScript::sha1() const { return sha1_; }

class RedisClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  // One request written (or queued to be written) on a connection and not answered yet; owned by
  // the connection's FIFO until its reply arrives or the connection closes.
  struct Request {
    enum class Kind { kCommand, kEvalSha, kEval, kAuth, kSelect, kPing, kRole, kLocate };
    Kind kind = Kind::kCommand;
    std::vector<std::string> args;              // the whole command
    std::shared_ptr<const std::string> source;  // kEvalSha: the script, for the EVAL fallback
    RedisCallback cb;                           // user requests only
    Clock::time_point start;                    // Command()/Eval() call: latency
    Clock::time_point sent;                     // last queued on a connection: timeout
  };

  Impl(asio::io_context& io, RedisOptions options, RedisHooks hooks)
      : io_(io),
        options_(std::move(options)),
        hooks_(std::move(hooks)),
        endpoint_((options_.host.find(':') != std::string::npos ? "[" + options_.host + "]"
                                                                : options_.host) +
                  ":" + std::to_string(options_.port)),
        tick_period_(std::clamp(std::min(options_.command_timeout, options_.connect_timeout) / 4,
                                std::chrono::milliseconds(5), std::chrono::milliseconds(250))),
        rng_(std::random_device{}()) {
    tick_timer_.emplace(io_);
    reconnect_timer_.emplace(io_);
    resolver_.emplace(io_);
    watch_timer_.emplace(io_);
    if (options_.tls.enabled) MakeTlsContext();
    if (!options_.sentinel.sentinels.empty()) {
      endpoint_ = "the primary '" + options_.sentinel.master_name + "' (Sentinel)";
    }
  }

  ~Impl() {
    // Shutdown() ran (RedisClient's destructor), so no context is left to free.
  }

  // ---- Any thread ----

  void Start() {
    asio::post(io_, [w = weak_from_this()] {
      if (auto self = w.lock()) {
        self->DoStart();
        self->AfterIo();
      }
    });
  }

  void Stop() {
    // On the io thread this runs inline (so up() is false when Stop returns); the callbacks it
    // fails are delivered by a posted flush, never inside Stop.
    asio::dispatch(io_, [w = weak_from_this()] {
      if (auto self = w.lock()) {
        self->DoStop();
        self->PostFlush();
      }
    });
  }

  void Submit(std::unique_ptr<Request> req) {
    req->start = Clock::now();
    // Counted here, not on the io thread, so that a burst is bounded before it is posted.
    const std::size_t before = admitted_.fetch_add(1);
    if (before + sub_pending_.load() >= options_.max_pending) {
      admitted_.fetch_sub(1);
      asio::post(io_, [cb = std::move(req->cb), max = options_.max_pending] {
        cb(RedisFailure{RedisFailureKind::kQueueFull,
                        "more than " + std::to_string(max) + " Redis commands pending"});
      });
      return;
    }
    asio::post(io_, [w = weak_from_this(), req = std::move(req)]() mutable {
      auto self = w.lock();
      if (!self) {
        req->cb(RedisFailure{RedisFailureKind::kStopped, "Redis client destroyed"});
        return;
      }
      self->Dispatch(std::move(req));
      self->Flush();
    });
  }

  void Subscribe(std::string channel, std::function<void()> confirmed, bool shard) {
    asio::post(io_, [w = weak_from_this(), channel = std::move(channel),
                     confirmed = std::move(confirmed), shard]() mutable {
      if (auto self = w.lock()) {
        self->DoSubscribe(channel, std::move(confirmed), shard);
        self->Flush();
      }
    });
  }

  void ForgetShard(std::string channel) {
    asio::post(io_, [w = weak_from_this(), channel = std::move(channel)] {
      if (auto self = w.lock()) self->DoForgetShard(channel);
    });
  }

  void Unsubscribe(std::string channel, bool shard) {
    asio::post(io_, [w = weak_from_this(), channel = std::move(channel), shard] {
      if (auto self = w.lock()) self->DoUnsubscribe(channel, shard);
    });
  }

  bool up() const { return up_.load(); }
  std::size_t pending() const { return admitted_.load() + sub_pending_.load(); }

  // ---- The io thread (or any thread once the io_context stopped) ----

  // RedisClient's destructor: everything in flight fails with kStopped now, no hook runs again.
  void Shutdown() {
    destroyed_ = true;
    DoStop();
    hooks_ = {};
    tick_timer_.reset();
    reconnect_timer_.reset();
    resolver_.reset();
    watch_timer_.reset();
    Flush();  // a no-op when a callback in Flush destroyed the client: that Flush delivers them
  }

 private:
  enum class State { kIdle, kConnecting, kUp, kBackoff, kStopped };
  // kSentinel: asks a Sentinel where the primary is, then hears its +switch-master events.
  enum class Role { kCommands, kSubscriber, kSentinel };

  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(asio::io_context& io, Impl* o, Role r, ssl::context* tls, std::string h, std::uint16_t p)
        : owner(o),
          role(r),
          host(std::move(h)),
          port(p),
          endpoint(host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                       : host + ":" + std::to_string(port)),
          reader(redisReaderCreate()) {
      if (tls != nullptr) {
        secure.emplace(io, *tls);
      } else {
        plain.emplace(io);
      }
    }
    ~Conn() {
      if (reader != nullptr) redisReaderFree(reader);
    }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    tcp::socket& socket() { return secure ? secure->next_layer() : *plain; }
    // Calls `f` with the stream the connection speaks Redis over: TLS or the socket itself.
    template <class F>
    void WithStream(F&& f) {
      if (secure) {
        f(*secure);
      } else {
        f(*plain);
      }
    }

    std::optional<tcp::socket> plain;
    std::optional<ssl::stream<tcp::socket>> secure;  // rediss://
    Impl* owner;                                     // valid while !closed (top of the file)
    Role role;
    std::string host;
    std::uint16_t port;
    std::string endpoint;    // "host:port", for messages
    redisReader* reader;     // null only if hiredis ran out of memory
    bool closed = false;     // Impl let go of it: its handlers return at once
    bool connected = false;  // TCP (and TLS) established: writes flow
    bool ready = false;      // handshake answered
    bool writing = false;    // an async_write is under way (of `sending`)
    std::string out;         // commands queued behind `sending`
    std::string sending;
    std::array<char, std::size_t{16} * 1024> in{};
    std::string death;                              // why the connection failed
    std::deque<std::unique_ptr<Request>> inflight;  // queued or sent, unanswered, in send order
  };

  struct SubRequest {  // a SUBSCRIBE or SSUBSCRIBE sent and not yet confirmed
    std::string channel;
    Clock::time_point sent;
    std::vector<std::function<void()>> confirms;
    bool shard = false;
  };
  // A shard command sent on the subscriber connection. Each gets exactly one answer, in order:
  // its confirmation or an error (a redirection). This queue says which command an error
  // answers, and tells Redis's own `sunsubscribe` (a slot that moved away) from ours.
  struct ShardCommand {
    std::string channel;
    bool unsubscribe = false;
  };

  // ---- TLS ----

  // Builds the client TLS context once; a file that cannot be used makes every connection
  // attempt fail with that reason (on_down says it, the client keeps retrying: the operator may
  // be fixing the file).
  void MakeTlsContext() {
    const RedisTlsOptions& t = options_.tls;
    tls_.emplace(ssl::context::tls_client);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    tls_->set_verify_mode(ssl::verify_peer, ec);
    auto fail = [&](const std::string& what, const std::string& file) {
      tls_error_ =
          "TLS to " + endpoint_ + ": cannot use the " + what + " " + file + ": " + ec.message();
    };
    if (t.ca_file.empty()) {
      tls_->set_default_verify_paths(ec);
      if (ec) fail("system's CA certificates", "");
    } else {
      tls_->load_verify_file(t.ca_file, ec);
      if (ec) return fail("CA file", t.ca_file);
    }
    if (!t.cert_file.empty()) {
      tls_->use_certificate_chain_file(t.cert_file, ec);
      if (ec) return fail("client certificate", t.cert_file);
      tls_->use_private_key_file(t.key_file, ssl::context::pem, ec);
      if (ec) return fail("client key", t.key_file);
    }
  }

  // ---- Transport (static: handlers hold the Conn, which is checked before its owner is) ----

  // A connection to `host`:`port` with its handshake queued: AUTH, SELECT (commands only), PING,
  // and ROLE behind a Sentinel (a primary that was demoted must not take writes); a Sentinel
  // connection asks where the primary is and subscribes to +switch-master.
  std::shared_ptr<Conn> OpenConn(Role role, const std::string& host, std::uint16_t port,
                                 std::string& why) {
    const bool tls = (role != Role::kSentinel || options_.sentinel.tls) && tls_;
    if (tls && tls_error_) {
      why = *tls_error_;
      return nullptr;
    }
    auto conn = std::make_shared<Conn>(io_, this, role, tls ? &*tls_ : nullptr, host, port);
    if (conn->reader == nullptr) {
      why = "connect to " + conn->endpoint + " failed: out of memory";
      return nullptr;
    }
    // Queued now, written (pipelined) once connected. Pub/sub ignores the database, so only the
    // commands connection SELECTs.
    using Kind = Request::Kind;
    const RedisSentinelOptions& sentinel = options_.sentinel;
    const std::string& user = role == Role::kSentinel ? sentinel.username : options_.username;
    const std::string& password = role == Role::kSentinel ? sentinel.password : options_.password;
    if (!password.empty()) {
      SendInternal(*conn, Kind::kAuth,
                   user.empty() ? std::vector<std::string>{"AUTH", password}
                                : std::vector<std::string>{"AUTH", user, password});
    }
    if (role == Role::kCommands && options_.db != 0) {
      SendInternal(*conn, Kind::kSelect, {"SELECT", std::to_string(options_.db)});
    }
    if (role == Role::kSentinel) {
      SendInternal(*conn, Kind::kLocate,
                   {"SENTINEL", "get-master-addr-by-name", sentinel.master_name});
      AppendCommand(conn->out, {"SUBSCRIBE", "+switch-master"});
    } else {
      SendInternal(*conn, Kind::kPing, {"PING"});
      if (!sentinel.sentinels.empty()) SendInternal(*conn, Kind::kRole, {"ROLE"});
    }
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
      const std::array<tcp::endpoint, 1> endpoints{tcp::endpoint(address, port)};
      StartConnect(conn, endpoints);
    } else {  // a name: resolved for every attempt (it may move, as a managed Redis does)
      resolver_->async_resolve(
          host, std::to_string(port),
          [conn](const boost::system::error_code& rec, const tcp::resolver::results_type& found) {
            if (conn->closed) return;
            auto impl = conn->owner->shared_from_this();
            if (rec) {
              conn->death = "resolve " + conn->endpoint + " failed: " + rec.message();
            } else {
              StartConnect(conn, found);
            }
            impl->AfterIo();
          });
    }
    return conn;
  }

  template <class Endpoints>
  static void StartConnect(const std::shared_ptr<Conn>& c, const Endpoints& endpoints) {
    asio::async_connect(c->socket(), endpoints,
                        [c](const boost::system::error_code& ec, const tcp::endpoint& /*chosen*/) {
                          if (c->closed) return;
                          auto impl = c->owner->shared_from_this();
                          if (ec) {
                            c->death = "connect to " + c->endpoint + " failed: " + ec.message();
                          } else {
                            boost::system::error_code ignored;
                            c->socket().set_option(tcp::no_delay(true), ignored);
                            if (c->secure) {
                              impl->StartTlsHandshake(c);
                            } else {
                              OnConnected(c);
                            }
                          }
                          impl->AfterIo();
                        });
  }

  void StartTlsHandshake(const std::shared_ptr<Conn>& c) {
    const std::string& name = options_.tls.server_name.empty() ? c->host : options_.tls.server_name;
    boost::system::error_code ec;
    asio::ip::make_address(name, ec);
    if (ec) SSL_set_tlsext_host_name(c->secure->native_handle(), name.c_str());  // SNI: names only
    c->secure->set_verify_callback(ssl::host_name_verification(name));
    c->secure->async_handshake(ssl::stream_base::client, [c](const boost::system::error_code& hec) {
      if (c->closed) return;
      auto impl = c->owner->shared_from_this();
      if (hec) {
        c->death = "TLS handshake with " + c->endpoint + " failed: " + hec.message();
      } else {
        OnConnected(c);
      }
      impl->AfterIo();
    });
  }

  static void OnConnected(const std::shared_ptr<Conn>& c) {
    c->connected = true;
    StartRead(c);
    StartWrite(c);
  }

  static void StartRead(const std::shared_ptr<Conn>& c) {
    c->WithStream([&](auto& stream) {
      stream.async_read_some(asio::buffer(c->in), [c](const boost::system::error_code& ec,
                                                      std::size_t n) { OnRead(c, ec, n); });
    });
  }

  static void OnRead(const std::shared_ptr<Conn>& c, const boost::system::error_code& ec,
                     std::size_t n) {
    if (c->closed) return;
    // Keeps Impl alive through Flush, where a user callback may destroy the client.
    auto impl = c->owner->shared_from_this();
    if (ec) {
      if (c->death.empty()) c->death = LostReason(*c, ec);
      impl->AfterIo();
      return;
    }
    redisReaderFeed(c->reader, c->in.data(), n);
    while (c->death.empty()) {
      void* raw = nullptr;
      if (redisReaderGetReply(c->reader, &raw) != REDIS_OK) {
        c->death = "protocol error from " + c->endpoint + ": " + c->reader->errstr;
        break;
      }
      if (raw == nullptr) break;  // no whole reply yet
      const ReplyPtr reply(static_cast<redisReply*>(raw));
      impl->OnReply(*c, *reply);
    }
    if (c->death.empty()) StartRead(c);
    impl->AfterIo();
  }

  static void StartWrite(const std::shared_ptr<Conn>& c) {
    if (c->writing || !c->connected || c->closed || c->out.empty()) return;
    c->writing = true;
    c->sending.swap(c->out);
    c->out.clear();
    c->WithStream([&](auto& stream) {
      asio::async_write(stream, asio::buffer(c->sending),
                        [c](const boost::system::error_code& ec, std::size_t /*n*/) {
                          c->writing = false;
                          if (c->closed) return;
                          auto impl = c->owner->shared_from_this();
                          if (ec) {
                            if (c->death.empty()) c->death = LostReason(*c, ec);
                          } else {
                            c->sending.clear();
                            StartWrite(c);
                          }
                          impl->AfterIo();
                        });
    });
  }

  static std::string LostReason(const Conn& c, const boost::system::error_code& ec) {
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      return "connection to " + c.endpoint + " lost: closed by the server";
    }
    return "connection to " + c.endpoint + " lost: " + ec.message();
  }

  // Marks the connection closed (its handlers return at once), closes its socket, and fails its
  // requests with `failure` (user requests only: the handshake's are internal).
  void Close(Conn& c, const RedisFailure& failure) {
    c.closed = true;
    boost::system::error_code ignored;
    c.socket().close(ignored);
    auto inflight = std::move(c.inflight);
    c.inflight.clear();
    for (auto& req : inflight) {
      using Kind = Request::Kind;
      if (req->kind == Kind::kCommand || req->kind == Kind::kEval || req->kind == Kind::kEvalSha) {
        Complete(std::move(req), failure);
      }
    }
  }

  // ---- Replies (no user code: see the top of the file) ----

  void OnReply(Conn& c, const redisReply& reply) {
    if (!c.inflight.empty()) {
      std::unique_ptr<Request> req = std::move(c.inflight.front());
      c.inflight.pop_front();
      HandleReply(c, std::move(req), reply);
    } else if (c.role == Role::kSubscriber) {
      OnSubscriberReply(c, reply);
    } else if (c.role == Role::kSentinel) {
      OnSentinelEvent(c, reply);
    } else {
      c.death = "a reply nobody asked for from " + c.endpoint;
    }
  }

  // The subscriber connection after its handshake: confirmations and messages. An error (an ACL
  // that refuses the channel) ends the session with Redis's reason; a redirection (a shard
  // command at a node that no longer serves its slot) never does.
  void OnSubscriberReply(Conn& c, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) {
      std::string error(reply.str, reply.len);
      if (IsRedirection(error)) {
        // Unmatched: the answer to a SUNSUBSCRIBE whose entry Redis's own `sunsubscribe` took.
        if (!shard_order_.empty()) OnShardRefused(std::move(error));
        return;
      }
      c.death = "Redis at " + c.endpoint + " refused a subscription: " + error;
      return;
    }
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 3) return;
    const redisReply* kind = reply.element[0];
    const redisReply* channel = reply.element[1];
    if (kind == nullptr || channel == nullptr || kind->type != REDIS_REPLY_STRING ||
        channel->type != REDIS_REPLY_STRING) {
      return;
    }
    const std::string_view k(kind->str, kind->len);
    std::string ch(channel->str, channel->len);
    if (k == "message" || k == "smessage") {
      const redisReply* payload = reply.element[2];
      if (payload != nullptr && payload->type == REDIS_REPLY_STRING) {
        OnMessage(std::move(ch), std::string(payload->str, payload->len));
      }
    } else if (k == "subscribe") {
      OnSubscribed(ch, /*shard=*/false);
    } else if (k == "ssubscribe") {
      if (!shard_order_.empty() && shard_order_.front().channel == ch) shard_order_.pop_front();
      OnSubscribed(ch, /*shard=*/true);
    } else if (k == "sunsubscribe") {
      const bool ours = !shard_order_.empty() && shard_order_.front().unsubscribe &&
                        shard_order_.front().channel == ch;
      if (ours) {
        shard_order_.pop_front();
      } else {
        OnShardLost(ch, {});  // the slot moved away: Redis let go of the channel
      }
    }
  }

  static bool IsRedirection(std::string_view error) {
    return error.starts_with("MOVED ") || error.starts_with("TRYAGAIN") ||
           error.starts_with("CLUSTERDOWN");
  }

  // The node does not serve the slot of the shard command at the head of the queue.
  void OnShardRefused(std::string error) {
    ShardCommand refused = std::move(shard_order_.front());
    shard_order_.pop_front();
    if (refused.unsubscribe) return;  // it holds no such subscription anyway
    auto it = std::find_if(sub_inflight_.begin(), sub_inflight_.end(), [&](const SubRequest& s) {
      return s.shard && s.channel == refused.channel;
    });
    if (it != sub_inflight_.end()) {
      sub_inflight_.erase(it);  // its confirmations never run: the owner subscribes elsewhere
      sub_pending_.fetch_sub(1);
    }
    OnShardLost(refused.channel, std::move(error));
  }

  void OnShardLost(const std::string& channel, std::string redirect) {
    const auto it = wanted_.find(channel);
    if (it == wanted_.end() || !it->second) return;  // not wanted (any more), or not a shard one
    wanted_.erase(it);
    waiting_confirms_.erase(channel);
    Emit([this, channel, redirect = std::move(redirect)] {
      if (!destroyed_ && hooks_.on_shard_lost) hooks_.on_shard_lost(channel, redirect);
    });
  }

  void HandleReply(Conn& c, std::unique_ptr<Request> req, const redisReply& reply) {
    using Kind = Request::Kind;
    switch (req->kind) {
      case Kind::kAuth:
      case Kind::kSelect:
      case Kind::kPing:
      case Kind::kRole:
        if (reply.type == REDIS_REPLY_ERROR) {
          if (c.role == Role::kSentinel) {
            c.death =
                "sentinel " + c.endpoint + ": AUTH failed: " + std::string(reply.str, reply.len);
          } else if (!handshake_error_) {  // the first error is the cause (after AUTH, all fail)
            const char* what = req->kind == Kind::kAuth     ? "AUTH"
                               : req->kind == Kind::kSelect ? "SELECT"
                               : req->kind == Kind::kRole   ? "ROLE"
                                                            : "PING";
            handshake_error_ = std::string(what) + " failed: " + std::string(reply.str, reply.len);
          }
        } else if (req->kind == Kind::kRole) {
          OnRole(c, reply);
        } else if (req->kind == Kind::kPing && options_.sentinel.sentinels.empty()) {
          c.ready = true;  // behind a Sentinel, ROLE decides
        }
        return;
      case Kind::kLocate:
        OnLocated(c, reply);
        return;
      case Kind::kEvalSha:
        if (reply.type == REDIS_REPLY_ERROR &&
            std::string_view(reply.str, reply.len).starts_with("NOSCRIPT")) {
          // Queued behind what is in flight.
          req->kind = Kind::kEval;
          req->args[0] = "EVAL";
          req->args[1] = *req->source;
          if (!Send(c, req)) {
            Complete(std::move(req),
                     RedisFailure{RedisFailureKind::kDisconnected,
                                  c.death.empty() ? "connection closing" : c.death});
          }
          return;
        }
        [[fallthrough]];
      case Kind::kCommand:
      case Kind::kEval:
        if (reply.type == REDIS_REPLY_ERROR &&
            std::string_view(reply.str, reply.len).starts_with("READONLY")) {
          // A failover demoted the node this client writes to: a topology change, not an answer
          // for the caller. The session ends and the next one asks where the primary is.
          const std::string why = c.endpoint + " is a replica now (READONLY): reconnecting";
          if (!topology_change_) topology_change_ = why;
          Complete(std::move(req), RedisFailure{RedisFailureKind::kDisconnected, why});
          return;
        }
        Complete(std::move(req), CopyReply(reply));
        return;
    }
  }

  // ---- Sentinel ----

  // ROLE on a node a Sentinel named: only a primary takes the session.
  void OnRole(Conn& c, const redisReply& reply) {
    const redisReply* role =
        reply.type == REDIS_REPLY_ARRAY && reply.elements > 0 ? reply.element[0] : nullptr;
    const std::string name = role != nullptr && role->type == REDIS_REPLY_STRING
                                 ? std::string(role->str, role->len)
                                 : std::string("?");
    if (name == "master") {
      c.ready = true;
    } else if (!handshake_error_) {
      handshake_error_ =
          c.endpoint + " is not a primary (ROLE " + name + "): asking Sentinel again";
    }
  }

  // SENTINEL get-master-addr-by-name: [host, port], or nil for a name it does not monitor.
  void OnLocated(Conn& c, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) {
      c.death = "sentinel " + c.endpoint + ": " + std::string(reply.str, reply.len);
      return;
    }
    const bool pair = reply.type == REDIS_REPLY_ARRAY && reply.elements == 2 &&
                      reply.element[0]->type == REDIS_REPLY_STRING &&
                      reply.element[1]->type == REDIS_REPLY_STRING;
    unsigned port = 0;
    if (pair) {
      const std::string_view p(reply.element[1]->str, reply.element[1]->len);
      const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
      if (ec != std::errc() || end != p.data() + p.size() || port == 0 || port > 65535) port = 0;
    }
    if (port == 0) {
      c.death = "sentinel " + c.endpoint + " knows no primary named '" +
                options_.sentinel.master_name + "'";
      return;
    }
    PrimaryAt(std::string(reply.element[0]->str, reply.element[0]->len),
              static_cast<std::uint16_t>(port), "sentinel " + c.endpoint);
  }

  // +switch-master "<name> <old ip> <old port> <new ip> <new port>".
  void OnSentinelEvent(Conn& c, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) {
      c.death = "sentinel " + c.endpoint +
                " refused +switch-master: " + std::string(reply.str, reply.len);
      return;
    }
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 3) return;
    const redisReply* kind = reply.element[0];
    const redisReply* payload = reply.element[2];
    if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message" ||
        payload->type != REDIS_REPLY_STRING) {
      return;
    }
    std::vector<std::string> words;
    std::string word;
    for (const char ch : std::string_view(payload->str, payload->len)) {
      if (ch == ' ') {
        words.push_back(std::move(word));
        word.clear();
      } else {
        word.push_back(ch);
      }
    }
    words.push_back(std::move(word));
    unsigned port = 0;
    if (words.size() != 5 || words[0] != options_.sentinel.master_name) return;
    const auto [end, ec] =
        std::from_chars(words[4].data(), words[4].data() + words[4].size(), port);
    if (ec != std::errc() || end != words[4].data() + words[4].size() || port == 0 ||
        port > 65535) {
      return;
    }
    PrimaryAt(words[3], static_cast<std::uint16_t>(port),
              "sentinel " + c.endpoint + " (+switch-master)");
  }

  // Where a Sentinel says the primary is: connects there if this attempt was waiting for it;
  // ends the session if it is elsewhere than where the client is connected.
  void PrimaryAt(const std::string& host, std::uint16_t port, const std::string& source) {
    if (state_ != State::kConnecting && state_ != State::kUp) return;
    if (!cmd_) return OpenPrimary(host, port);
    if (host == primary_host_ && port == primary_port_) return;
    if (!topology_change_) {
      topology_change_ =
          source + ": the primary is now " + Endpoint(host, port) + ", not " + endpoint_;
    }
  }

  static std::string Endpoint(const std::string& host, std::uint16_t port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port);
  }

  // While up, a Sentinel connection is kept for +switch-master; when it is lost, the next
  // Sentinel takes over a second later (its answer also catches a switch missed meanwhile).
  void WatchLater() {
    if (!watch_timer_) return;
    watch_timer_->expires_after(std::chrono::seconds(1));
    watch_timer_->async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      auto self = w.lock();
      if (!self || self->sentinel_ || (self->state_ != State::kUp)) return;
      self->OpenSentinel();
      self->AfterIo();
    });
  }

  bool OpenSentinel() {
    const auto& all = options_.sentinel.sentinels;
    const auto& [host, port] = all[next_sentinel_++ % all.size()];
    std::string why;
    sentinel_ = OpenConn(Role::kSentinel, host, port, why);
    return sentinel_ != nullptr;
  }

  void OnMessage(std::string channel, std::string payload) {
    if (!wanted_.contains(channel)) return;  // in flight when it was unsubscribed
    Emit([this, channel = std::move(channel), payload = std::move(payload)] {
      if (!destroyed_ && hooks_.on_message) hooks_.on_message(channel, payload);
    });
  }

  void OnSubscribed(const std::string& channel, bool shard) {
    auto it = std::find_if(sub_inflight_.begin(), sub_inflight_.end(), [&](const SubRequest& s) {
      return s.shard == shard && s.channel == channel;
    });
    if (it == sub_inflight_.end()) return;
    for (auto& f : it->confirms) {
      if (!f) continue;
      Emit([this, f = std::move(f)] {
        if (!destroyed_) f();
      });
    }
    sub_inflight_.erase(it);
    sub_pending_.fetch_sub(1);
  }

  // ---- State machine (io thread, never inside hiredis) ----

  void DoStart() {
    if (state_ != State::kIdle) return;
    StartTick();
    Connect();
  }

  void Connect() {
    state_ = State::kConnecting;
    attempt_deadline_ = Clock::now() + options_.connect_timeout;
    if (options_.sentinel.sentinels.empty()) return OpenPrimary(options_.host, options_.port);
    // Behind a Sentinel: ask one (the next in turn each attempt) where the primary is; its
    // answer opens the connections (PrimaryAt). The attempt's deadline covers both steps.
    if (!OpenSentinel()) {
      DeclareDown(RedisFailureKind::kDisconnected, "cannot open a connection to a sentinel");
    }
  }

  void OpenPrimary(const std::string& host, std::uint16_t port) {
    primary_host_ = host;
    primary_port_ = port;
    endpoint_ = Endpoint(host, port);
    std::string why;
    cmd_ = OpenConn(Role::kCommands, host, port, why);
    if (cmd_) sub_ = OpenConn(Role::kSubscriber, host, port, why);
    if (!cmd_ || !sub_) DeclareDown(RedisFailureKind::kDisconnected, why);
  }

  // Runs after every handler: turns what the connections recorded into state changes, then runs
  // the user code that resulted.
  void AfterIo() {
    CheckConnections();
    Flush();
  }

  void CheckConnections() {
    if (state_ != State::kConnecting && state_ != State::kUp) return;
    if (sentinel_ && !sentinel_->death.empty()) {
      if (!cmd_) {  // still asking where the primary is: this attempt failed
        DeclareDown(RedisFailureKind::kDisconnected, sentinel_->death);
        return;
      }
      // The primary's connections stand; another Sentinel keeps watch.
      const std::shared_ptr<Conn> lost = std::move(sentinel_);
      sentinel_.reset();
      Close(*lost, RedisFailure{RedisFailureKind::kDisconnected, lost->death});
      WatchLater();
    }
    if (topology_change_) {
      DeclareDown(RedisFailureKind::kDisconnected, *topology_change_);
      return;
    }
    for (const Conn* c : {cmd_.get(), sub_.get()}) {
      if (c != nullptr && !c->death.empty()) {
        DeclareDown(RedisFailureKind::kDisconnected, c->death);
        return;
      }
    }
    if (handshake_error_) {
      DeclareDown(RedisFailureKind::kDisconnected, *handshake_error_);
      return;
    }
    if (state_ == State::kConnecting && cmd_ && sub_ && cmd_->ready && sub_->ready) BecomeUp();
  }

  void BecomeUp() {
    state_ = State::kUp;
    up_.store(true);
    attempt_ = 0;
    outage_reported_ = false;
    last_error_.clear();
    auto waiting = std::move(waiting_confirms_);
    waiting_confirms_.clear();
    for (const auto& [channel, shard] : wanted_) {
      auto it = waiting.find(channel);
      SendSubscribe(
          channel,
          it != waiting.end() ? std::move(it->second) : std::vector<std::function<void()>>{},
          shard);
    }
    Emit([this] {
      if (!destroyed_ && hooks_.on_up) hooks_.on_up();
    });
  }

  // Ends the session: fails what is in flight with `kind`/`why`, frees both contexts, reports the
  // outage (once) and schedules the next attempt. `why` is a copy: callers pass strings that
  // CloseConnections destroys (a Conn's death, handshake_error_).
  // `why` by value: callers pass members (handshake_error_) that CloseConnections resets.
  void DeclareDown(RedisFailureKind kind,
                   std::string why) {  // NOLINT(performance-unnecessary-value-param)
    if (state_ != State::kConnecting && state_ != State::kUp) return;
    state_ = State::kBackoff;
    up_.store(false);
    last_error_ = why;
    CloseConnections(RedisFailure{kind, why});
    if (!outage_reported_) {
      outage_reported_ = true;
      Emit([this, why] {
        if (!destroyed_ && hooks_.on_down) hooks_.on_down(why);
      });
    }
    ScheduleReconnect();
  }

  void CloseConnections(const RedisFailure& failure) {
    topology_change_.reset();
    if (watch_timer_) watch_timer_->cancel();
    for (std::shared_ptr<Conn>* slot : {&cmd_, &sub_, &sentinel_}) {
      std::shared_ptr<Conn> c = std::move(*slot);
      slot->reset();
      if (c) Close(*c, failure);
    }
    handshake_error_.reset();
    // Unconfirmed SUBSCRIBEs are sent again on the next connection, with their callbacks.
    for (SubRequest& s : sub_inflight_) {
      if (!wanted_.contains(s.channel)) continue;
      auto& w = waiting_confirms_[s.channel];
      for (auto& f : s.confirms) w.push_back(std::move(f));
    }
    sub_inflight_.clear();
    sub_pending_.store(0);
    shard_order_.clear();
  }

  void ScheduleReconnect() {
    if (!reconnect_timer_) return;
    using std::chrono::milliseconds;
    const auto lo = std::max(options_.backoff_min, milliseconds(1));
    const auto hi = std::max(options_.backoff_max, lo);
    // Exponential ceiling, full jitter above the floor (replicas reconnecting after one Redis
    // restart spread out instead of arriving together).
    auto ceiling = lo;
    for (int i = 0; i < attempt_ && ceiling < hi; ++i) ceiling *= 2;
    ceiling = std::min(ceiling, hi);
    ++attempt_;
    std::uniform_int_distribution<std::int64_t> pick(lo.count(), ceiling.count());
    reconnect_timer_->expires_after(milliseconds(pick(rng_)));
    reconnect_timer_->async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      auto self = w.lock();
      if (!self || self->state_ != State::kBackoff) return;
      self->Emit([s = self.get()] {
        if (!s->destroyed_ && s->hooks_.on_reconnect_attempt) s->hooks_.on_reconnect_attempt();
      });
      self->Connect();
      self->AfterIo();
    });
  }

  void StartTick() {
    if (!tick_timer_) return;
    tick_timer_->expires_after(tick_period_);
    tick_timer_->async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = w.lock()) self->OnTick();
    });
  }

  void OnTick() {
    if (state_ == State::kStopped) return;
    const auto now = Clock::now();
    if (state_ == State::kConnecting && now >= attempt_deadline_) {
      const bool connected = cmd_ && sub_ && cmd_->connected && sub_->connected;
      std::string why;
      if (!cmd_ && sentinel_) {
        why = "no answer from sentinel " + sentinel_->endpoint + " within " +
              Millis(options_.connect_timeout);
      } else if (connected) {
        why = "no answer to the handshake from " + endpoint_ + " within " +
              Millis(options_.connect_timeout);
      } else {
        why = "connect to " + endpoint_ + " timed out after " + Millis(options_.connect_timeout);
      }
      DeclareDown(RedisFailureKind::kDisconnected, why);
    } else if (state_ == State::kUp) {
      if (sentinel_ && sentinel_->death.empty() && !sentinel_->inflight.empty() &&
          now - sentinel_->inflight.front()->sent >= options_.command_timeout) {
        sentinel_->death = "sentinel " + sentinel_->endpoint + " did not answer within " +
                           Millis(options_.command_timeout);
        CheckConnections();
      }
      std::optional<Clock::time_point> oldest;
      if (cmd_ && !cmd_->inflight.empty()) oldest = cmd_->inflight.front()->sent;
      if (!sub_inflight_.empty()) {
        oldest =
            oldest ? std::min(*oldest, sub_inflight_.front().sent) : sub_inflight_.front().sent;
      }
      if (oldest && now - *oldest >= options_.command_timeout) {
        DeclareDown(RedisFailureKind::kTimeout,
                    "command timed out after " + Millis(options_.command_timeout));
      }
    }
    StartTick();
    Flush();
  }

  void DoStop() {
    if (state_ == State::kStopped) return;
    state_ = State::kStopped;
    up_.store(false);
    CloseConnections(RedisFailure{RedisFailureKind::kStopped, "Redis client stopped"});
    waiting_confirms_.clear();
    if (tick_timer_) tick_timer_->cancel();
    if (reconnect_timer_) reconnect_timer_->cancel();
    if (resolver_) resolver_->cancel();
  }

  // ---- Requests ----

  void Dispatch(std::unique_ptr<Request> req) {
    if (state_ == State::kStopped) {
      Reject(std::move(req), RedisFailure{RedisFailureKind::kStopped, "Redis client stopped"});
      return;
    }
    if (state_ != State::kUp) {
      Reject(std::move(req), RedisFailure{RedisFailureKind::kDisconnected, DownMessage()});
      return;
    }
    // Refused here rather than sent (see ChangesConnectionState), as an error reply.
    if (req->args.empty() || ChangesConnectionState(req->args[0])) {
      RedisReply error =
          ErrorReply(req->args.empty() ? "ERR empty command"
                                       : "ERR " + req->args[0] +
                                             " would change the connection's state: not allowed "
                                             "through RedisClient");
      Reject(std::move(req), std::move(error));
      return;
    }
    if (!Send(*cmd_, req)) {
      Reject(std::move(req),
             RedisFailure{RedisFailureKind::kDisconnected, "Redis connection closing"});
    }
  }

  std::string DownMessage() const {
    if (state_ == State::kIdle) return "Redis client not started";
    if (last_error_.empty()) return "not connected to Redis at " + endpoint_ + " yet";
    return "Redis at " + endpoint_ + " unavailable: " + last_error_;
  }

  // Queues `req` on `c` (which takes it) and writes it as soon as the connection allows.
  bool Send(Conn& c, std::unique_ptr<Request>& req) {
    if (c.closed || !c.death.empty()) return false;
    AppendCommand(c.out, req->args);
    req->sent = Clock::now();
    c.inflight.push_back(std::move(req));
    StartWrite(c.shared_from_this());
    return true;
  }

  void SendInternal(Conn& c, Request::Kind kind, std::vector<std::string> args) {
    auto req = std::make_unique<Request>();
    req->kind = kind;
    req->args = std::move(args);
    Send(c, req);  // fails only on a dead connection, whose death ends the attempt
  }

  void SendSubscribe(const std::string& channel, std::vector<std::function<void()>> confirms,
                     bool shard) {
    if (sub_ == nullptr || sub_->closed || !sub_->death.empty()) {
      auto& w = waiting_confirms_[channel];
      for (auto& f : confirms) w.push_back(std::move(f));
      return;
    }
    AppendCommand(sub_->out, {shard ? "SSUBSCRIBE" : "SUBSCRIBE", channel});
    StartWrite(sub_);
    if (shard) shard_order_.push_back(ShardCommand{channel, /*unsubscribe=*/false});
    sub_inflight_.push_back(SubRequest{channel, Clock::now(), std::move(confirms), shard});
    sub_pending_.fetch_add(1);
  }

  void DoSubscribe(const std::string& channel, std::function<void()> confirmed, bool shard) {
    if (state_ == State::kStopped) return;
    wanted_[channel] = shard;
    std::vector<std::function<void()>> confirms;
    if (confirmed) confirms.push_back(std::move(confirmed));
    if (state_ == State::kUp) {
      SendSubscribe(channel, std::move(confirms), shard);
    } else if (!confirms.empty()) {
      waiting_confirms_[channel].push_back(std::move(confirms.front()));
    }
  }

  // Drops a shard channel without telling Redis: the node no longer serves its slot, so it has
  // dropped the subscription itself (and would answer a SUNSUBSCRIBE with a redirection).
  void DoForgetShard(const std::string& channel) {
    wanted_.erase(channel);
    waiting_confirms_.erase(channel);
  }

  void DoUnsubscribe(const std::string& channel, bool shard) {
    wanted_.erase(channel);
    waiting_confirms_.erase(channel);
    if (state_ != State::kUp || sub_ == nullptr || sub_->closed) return;
    // Its confirmation ("unsubscribe", channel, count) is ignored; messages already on their
    // way are dropped by OnMessage.
    AppendCommand(sub_->out, {shard ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", channel});
    StartWrite(sub_);
    if (shard) shard_order_.push_back(ShardCommand{channel, /*unsubscribe=*/true});
  }

  // A reply or a failure for a request that was sent.
  void Complete(std::unique_ptr<Request> req, RedisResult result) {
    admitted_.fetch_sub(1);
    const double seconds = std::chrono::duration<double>(Clock::now() - req->start).count();
    const bool ok = std::holds_alternative<RedisReply>(result);
    Emit([this, seconds, ok] {
      if (!destroyed_ && hooks_.on_command) hooks_.on_command(seconds, ok);
    });
    Emit(
        [cb = std::move(req->cb), result = std::move(result)]() mutable { cb(std::move(result)); });
  }

  // An answer for a request that was never sent (no on_command).
  void Reject(std::unique_ptr<Request> req, RedisResult result) {
    admitted_.fetch_sub(1);
    Emit(
        [cb = std::move(req->cb), result = std::move(result)]() mutable { cb(std::move(result)); });
  }

  // ---- User code ----

  void Emit(std::function<void()> event) { events_.push_back(std::move(event)); }

  // Runs the recorded events in order. Not reentrant: an event that causes more (a callback that
  // calls Stop) appends them, and the running loop delivers them.
  void Flush() {
    if (flushing_) return;
    flushing_ = true;
    while (!events_.empty()) {
      std::vector<std::function<void()>> batch;
      batch.swap(events_);
      for (auto& e : batch) e();
    }
    flushing_ = false;
  }

  // For events produced outside a handler (Stop called by user code): delivered later.
  void PostFlush() {
    if (events_.empty()) return;
    asio::post(io_, [w = weak_from_this()] {
      if (auto self = w.lock()) self->Flush();
    });
  }

  asio::io_context& io_;
  const RedisOptions options_;
  RedisHooks hooks_;
  std::string endpoint_;  // the primary's "host:port", for messages (io thread after start)
  const std::chrono::milliseconds tick_period_;

  // Thread-safe views.
  std::atomic<bool> up_{false};
  std::atomic<std::size_t> admitted_{0};     // user requests accepted and not completed
  std::atomic<std::size_t> sub_pending_{0};  // == sub_inflight_.size()

  // Io thread only.
  State state_ = State::kIdle;
  std::shared_ptr<Conn> cmd_, sub_;
  std::optional<asio::steady_timer> tick_timer_, reconnect_timer_;  // reset by Shutdown
  Clock::time_point attempt_deadline_;
  int attempt_ = 0;               // consecutive failed attempts (backoff exponent)
  bool outage_reported_ = false;  // on_down already called for this outage
  std::string last_error_;        // why the client is down, for kDisconnected messages
  std::optional<std::string> handshake_error_;
  std::optional<ssl::context> tls_;        // rediss://
  std::optional<std::string> tls_error_;   // why tls_ cannot be used (every attempt fails)
  std::optional<tcp::resolver> resolver_;  // reset by Shutdown
  // Behind a Sentinel: where the primary is, the Sentinel connection, which Sentinel is next,
  // and why the session must end for the primary moved (READONLY, +switch-master).
  std::string primary_host_;
  std::uint16_t primary_port_ = 0;
  std::shared_ptr<Conn> sentinel_;
  std::size_t next_sentinel_ = 0;
  std::optional<std::string> topology_change_;
  std::optional<asio::steady_timer> watch_timer_;  // reset by Shutdown
  std::map<std::string, bool> wanted_;             // channels to keep subscribed -> shard channel
  std::map<std::string, std::vector<std::function<void()>>> waiting_confirms_;  // not sent yet
  std::deque<SubRequest> sub_inflight_;
  std::deque<ShardCommand> shard_order_;
  std::vector<std::function<void()>> events_;
  bool flushing_ = false;
  bool destroyed_ = false;
  std::minstd_rand rng_;
};

RedisClient::RedisClient(boost::asio::io_context& io, RedisOptions options, RedisHooks hooks)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(hooks))) {}

RedisClient::~RedisClient() { impl_->Shutdown(); }

void RedisClient::Start() { impl_->Start(); }
void RedisClient::Stop() { impl_->Stop(); }

void RedisClient::Command(std::vector<std::string> args, RedisCallback cb) {
  auto req = std::make_unique<Impl::Request>();
  req->args = std::move(args);
  req->cb = std::move(cb);
  impl_->Submit(std::move(req));
}

void RedisClient::Eval(const RedisScript& script, std::vector<std::string> keys,
                       std::vector<std::string> args, RedisCallback cb) {
  auto req = std::make_unique<Impl::Request>();
  req->kind = Impl::Request::Kind::kEvalSha;
  req->args.reserve(3 + keys.size() + args.size());
  req->args.emplace_back("EVALSHA");
  req->args.push_back(script.sha1_);
  req->args.push_back(std::to_string(keys.size()));
  for (auto& k : keys) req->args.push_back(std::move(k));
  for (auto& a : args) req->args.push_back(std::move(a));
  req->source = script.source_;
  req->cb = std::move(cb);
  impl_->Submit(std::move(req));
}

void RedisClient::Subscribe(std::string channel, std::function<void()> confirmed) {
  impl_->Subscribe(std::move(channel), std::move(confirmed), /*shard=*/false);
}

void RedisClient::Unsubscribe(std::string channel) {
  impl_->Unsubscribe(std::move(channel), /*shard=*/false);
}

void RedisClient::SubscribeShard(std::string channel, std::function<void()> confirmed) {
  impl_->Subscribe(std::move(channel), std::move(confirmed), /*shard=*/true);
}

void RedisClient::UnsubscribeShard(std::string channel) {
  impl_->Unsubscribe(std::move(channel), /*shard=*/true);
}

void RedisClient::ForgetShard(std::string channel) { impl_->ForgetShard(std::move(channel)); }

std::optional<bool> RedisClient::IsClusterNode(const RedisOptions& options,
                                               std::chrono::milliseconds timeout,
                                               std::string& why) {
  asio::io_context io;
  std::optional<bool> answer;
  std::unique_ptr<RedisClient> client;
  RedisHooks hooks;
  hooks.on_up = [&] {
    client->Command({"CLUSTER", "SLOTS"}, [&](const RedisResult& r) {
      const auto* reply = std::get_if<RedisReply>(&r);
      if (reply == nullptr) {
        const auto& failure = std::get<RedisFailure>(r);
        if (failure.kind != RedisFailureKind::kStopped) why = failure.message;
      } else if (reply->type == RedisReply::Type::kArray) {
        answer = true;
      } else if (reply->type == RedisReply::Type::kError &&
                 reply->str.find("cluster support disabled") != std::string::npos) {
        answer = false;
      } else {
        why = "CLUSTER SLOTS answered: " + reply->str;
      }
      io.stop();
    });
  };
  hooks.on_down = [&](const std::string& down) {  // the first attempt failed: cannot tell now
    why = down;
    io.stop();
  };
  RedisOptions o = options;
  o.connect_timeout = std::min(o.connect_timeout, timeout);
  o.db = 0;  // a cluster node refuses SELECT of any other
  client = std::make_unique<RedisClient>(io, std::move(o), std::move(hooks));
  client->Start();
  io.run_for(timeout);
  if (!answer && why.empty()) why = "no answer within " + Millis(timeout);
  client.reset();  // the io_context is not running: allowed
  return answer;
}

bool RedisClient::up() const { return impl_->up(); }
std::size_t RedisClient::pending() const { return impl_->pending(); }

}  // namespace vrouter::store
