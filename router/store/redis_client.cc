// Why this file is longer than ~600 lines: the hiredis adapter, the connections and the command
// pipeline share one ownership and threading scheme (below) that is easier to check in one place
// than across files; the sections follow the list below.
//
// hiredis 0.14 on Boost.Asio. How the pieces fit (the hiredis 0.14 pitfalls each piece works
// around are noted where it handles them: the adapter before the connect callback, (P)UNSUBSCRIBE
// without callback, SUBSCRIBE callbacks that fire again with a NULL reply):
//
// - Adapter: each hiredis context is attached to a posix::stream_descriptor over its fd. hiredis
//   asks for read/write interest with addRead/delRead/addWrite/delWrite; each direction keeps at
//   most one async_wait pending, and when it completes the handler calls
//   redisAsyncHandleRead/Write if the interest is still wanted, then re-arms it. cleanup (hiredis
//   is freeing the context) release()s the descriptor: hiredis closes the fd itself.
// - Ownership: Impl is owned by RedisClient through a shared_ptr. A connection (Conn) is owned by
//   Impl and by its pending waits (their handlers hold a shared_ptr<Conn>, so a released
//   descriptor's aborted wait never touches freed memory). A Conn's context is alive exactly as
//   long as the Conn is Impl's current connection: Impl always frees the context before dropping
//   the Conn, and frees both before it dies, so a handler that finds `ac` set may use `owner`.
// - Reentrancy: hiredis callbacks (replies, connect, disconnect, cleanup) only record what
//   happened: completions and hooks go into `events_`, the reasons for an outage into the Conn or
//   `handshake_error_`. User code runs only from Flush(), which the top of every handler calls
//   after hiredis has returned; so a user callback may Stop or destroy the client, and a context
//   is never freed from inside hiredis (which 0.14 does not survive for the connect callback).
// - Timeouts: hiredis 0.14 has none. A periodic tick compares the oldest unanswered request
//   (per-connection FIFOs: replies come in send order) with command_timeout, and a connection
//   attempt's age with connect_timeout.
// - No TLS: hiredis 0.14 has no TLS support; callers reject rediss:// before getting here.
#include "router/store/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <utility>

namespace vrouter::store {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

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
  // One request in hiredis's hands; its address is the hiredis privdata. Owned by hiredis's
  // callback list (and listed in Conn::inflight) from Send until the reply callback, which takes
  // it back; hiredis calls every reply callback exactly once (with NULL when freeing).
  struct Request {
    enum class Kind { kCommand, kEvalSha, kEval, kAuth, kSelect, kPing };
    Kind kind = Kind::kCommand;
    std::vector<std::string> args;              // the whole command
    std::shared_ptr<const std::string> source;  // kEvalSha: the script, for the EVAL fallback
    RedisCallback cb;                           // user requests only
    Clock::time_point start;                    // Command()/Eval() call: latency
    Clock::time_point sent;                     // last handed to hiredis: timeout
  };

  Impl(asio::io_context& io, RedisOptions options, RedisHooks hooks)
      : io_(io),
        options_(std::move(options)),
        hooks_(std::move(hooks)),
        endpoint_(options_.host + ":" + std::to_string(options_.port)),
        tick_period_(std::clamp(std::min(options_.command_timeout, options_.connect_timeout) / 4,
                                std::chrono::milliseconds(5), std::chrono::milliseconds(250))),
        rng_(std::random_device{}()) {
    tick_timer_.emplace(io_);
    reconnect_timer_.emplace(io_);
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

  void Subscribe(std::string channel, std::function<void()> confirmed) {
    asio::post(io_, [w = weak_from_this(), channel = std::move(channel),
                     confirmed = std::move(confirmed)]() mutable {
      if (auto self = w.lock()) {
        self->DoSubscribe(channel, std::move(confirmed));
        self->Flush();
      }
    });
  }

  void Unsubscribe(std::string channel) {
    asio::post(io_, [w = weak_from_this(), channel = std::move(channel)] {
      if (auto self = w.lock()) self->DoUnsubscribe(channel);
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
    Flush();  // a no-op when a callback in Flush destroyed the client: that Flush delivers them
  }

 private:
  enum class State { kIdle, kConnecting, kUp, kBackoff, kStopped };
  enum class Role { kCommands, kSubscriber };

  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(asio::io_context& io, Impl* o, Role r) : sd(io), owner(o), role(r) {}

    asio::posix::stream_descriptor sd;  // the context's fd, never closed by us
    Impl* owner;                        // valid while `ac` is set (see the top of the file)
    Role role;
    redisAsyncContext* ac = nullptr;                   // null once hiredis freed it (cleanup)
    bool want_read = false, want_write = false;        // hiredis's current interest
    bool read_waiting = false, write_waiting = false;  // an async_wait is pending
    bool ready = false;                                // handshake answered
    std::string death;                                 // why the context went away
    std::deque<Request*> inflight;                     // sent, unanswered, in send order
  };

  struct SubRequest {  // a SUBSCRIBE sent and not yet confirmed
    std::string channel;
    Clock::time_point sent;
    std::vector<std::function<void()>> confirms;
  };

  // ---- hiredis adapter (all static: hiredis hands back the Conn* we gave it) ----

  static void EvAddRead(void* p) {
    auto* c = static_cast<Conn*>(p);
    c->want_read = true;
    ArmRead(*c);
  }
  static void EvDelRead(void* p) { static_cast<Conn*>(p)->want_read = false; }
  static void EvAddWrite(void* p) {
    auto* c = static_cast<Conn*>(p);
    c->want_write = true;
    ArmWrite(*c);
  }
  static void EvDelWrite(void* p) { static_cast<Conn*>(p)->want_write = false; }
  static void EvCleanup(void* p) {
    auto* c = static_cast<Conn*>(p);
    c->want_read = c->want_write = false;
    // Cancels the pending waits (their handlers see operation_aborted) and gives the fd back:
    // redisFree closes it right after this.
    if (c->sd.is_open()) c->sd.release();
    if (c->death.empty() && c->ac != nullptr) c->death = LostReason(*c, *c->ac);
    c->ac = nullptr;
  }

  // At most one pending wait per direction (hiredis calls addRead/addWrite repeatedly).
  static void ArmRead(Conn& c) {
    if (c.read_waiting || c.ac == nullptr) return;
    c.read_waiting = true;
    c.sd.async_wait(asio::posix::stream_descriptor::wait_read,
                    [self = c.shared_from_this()](const boost::system::error_code& ec) {
                      OnReady(self, ec, /*read=*/true);
                    });
  }
  static void ArmWrite(Conn& c) {
    if (c.write_waiting || c.ac == nullptr) return;
    c.write_waiting = true;
    c.sd.async_wait(asio::posix::stream_descriptor::wait_write,
                    [self = c.shared_from_this()](const boost::system::error_code& ec) {
                      OnReady(self, ec, /*read=*/false);
                    });
  }

  static void OnReady(const std::shared_ptr<Conn>& c, const boost::system::error_code& ec,
                      bool read) {
    (read ? c->read_waiting : c->write_waiting) = false;
    if (ec == asio::error::operation_aborted || c->ac == nullptr) return;  // released
    if (!(read ? c->want_read : c->want_write)) return;  // interest dropped meanwhile
    // Keeps Impl alive through Flush, where a user callback may destroy the client.
    auto impl = c->owner->shared_from_this();
    if (read) {
      redisAsyncHandleRead(c->ac);
    } else {
      redisAsyncHandleWrite(c->ac);
    }
    // hiredis may have freed the context (cleanup nulls `ac`): re-check before re-arming.
    if (c->ac != nullptr) {
      if (c->want_read) ArmRead(*c);
      if (c->want_write) ArmWrite(*c);
    }
    impl->AfterIo();
  }

  // ---- hiredis callbacks: record only (no user code, no freeing) ----

  static void OnConnect(const redisAsyncContext* ac, int status) {
    auto* c = static_cast<Conn*>(ac->data);
    if (status != REDIS_OK && c->death.empty()) {
      c->death = "connect to " + c->owner->endpoint_ + " failed: " + ac->c.errstr;
    }
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    auto* c = static_cast<Conn*>(ac->data);
    (void)status;  // ac->c.err says more
    if (c->death.empty()) c->death = LostReason(*c, *ac);
  }

  static std::string LostReason(const Conn& c, const redisAsyncContext& ac) {
    std::string why = "connection to " + c.owner->endpoint_ + " lost";
    if (ac.c.err != 0 && ac.c.errstr[0] != '\0') why += std::string(": ") + ac.c.errstr;
    return why;
  }

  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata) {
    auto* c = static_cast<Conn*>(ac->data);
    std::unique_ptr<Request> req(static_cast<Request*>(privdata));
    if (!c->inflight.empty() && c->inflight.front() == req.get()) {
      c->inflight.pop_front();
    } else {  // not expected: replies come in send order
      c->inflight.erase(std::find(c->inflight.begin(), c->inflight.end(), req.get()));
    }
    c->owner->HandleReply(*c, *ac, std::move(req), static_cast<redisReply*>(reply));
  }

  // SUBSCRIBE's callback: hiredis calls it for the confirmation, for every message, for the
  // unsubscribe confirmation, and once more with NULL when the context is freed. privdata is
  // always null (we keep our state in Impl).
  static void OnSubReply(redisAsyncContext* ac, void* r, void* /*privdata*/) {
    const auto* reply = static_cast<const redisReply*>(r);
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    const redisReply* channel = reply->element[1];
    if (kind == nullptr || channel == nullptr || kind->type != REDIS_REPLY_STRING ||
        channel->type != REDIS_REPLY_STRING) {
      return;
    }
    auto* c = static_cast<Conn*>(ac->data);
    const std::string_view k(kind->str, kind->len);
    std::string ch(channel->str, channel->len);
    if (k == "message") {
      const redisReply* payload = reply->element[2];
      if (payload != nullptr && payload->type == REDIS_REPLY_STRING) {
        c->owner->OnMessage(std::move(ch), std::string(payload->str, payload->len));
      }
    } else if (k == "subscribe") {
      c->owner->OnSubscribed(ch);
    }
  }

  void HandleReply(Conn& c, const redisAsyncContext& ac, std::unique_ptr<Request> req,
                   const redisReply* reply) {
    using Kind = Request::Kind;
    switch (req->kind) {
      case Kind::kAuth:
      case Kind::kSelect:
      case Kind::kPing:
        // A NULL reply: the context is going away, and AfterIo declares the outage.
        if (reply == nullptr) return;
        if (reply->type == REDIS_REPLY_ERROR) {
          if (!handshake_error_) {  // the first error is the cause (after AUTH, all fail)
            const char* what = req->kind == Kind::kAuth     ? "AUTH"
                               : req->kind == Kind::kSelect ? "SELECT"
                                                            : "PING";
            handshake_error_ =
                std::string(what) + " failed: " + std::string(reply->str, reply->len);
          }
        } else if (req->kind == Kind::kPing) {
          c.ready = true;
        }
        return;
      case Kind::kEvalSha:
        if (reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
            std::string_view(reply->str, reply->len).starts_with("NOSCRIPT")) {
          // Sending from a reply callback is allowed; it queues behind what is in flight.
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
        if (reply != nullptr) {
          Complete(std::move(req), CopyReply(*reply));
        } else if (free_failure_) {  // we are freeing the context: our reason
          Complete(std::move(req), *free_failure_);
        } else {  // hiredis is freeing it (EOF, I/O error)
          if (c.death.empty()) c.death = LostReason(c, ac);
          Complete(std::move(req), RedisFailure{RedisFailureKind::kDisconnected, c.death});
        }
        return;
    }
  }

  void OnMessage(std::string channel, std::string payload) {
    if (!wanted_.contains(channel)) return;  // in flight when it was unsubscribed
    Emit([this, channel = std::move(channel), payload = std::move(payload)] {
      if (!destroyed_ && hooks_.on_message) hooks_.on_message(channel, payload);
    });
  }

  void OnSubscribed(const std::string& channel) {
    auto it = std::find_if(sub_inflight_.begin(), sub_inflight_.end(),
                           [&](const SubRequest& s) { return s.channel == channel; });
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
    std::string why;
    cmd_ = OpenConn(Role::kCommands, why);
    if (cmd_) sub_ = OpenConn(Role::kSubscriber, why);
    if (!cmd_ || !sub_) DeclareDown(RedisFailureKind::kDisconnected, why);
  }

  std::shared_ptr<Conn> OpenConn(Role role, std::string& why) {
    // Non-blocking connect (resolution is synchronous: the host should be an IP address).
    redisAsyncContext* ac = redisAsyncConnect(options_.host.c_str(), options_.port);
    if (ac == nullptr) {
      why = "connect to " + endpoint_ + " failed: out of memory";
      return nullptr;
    }
    if (ac->err != 0) {
      why = "connect to " + endpoint_ + " failed: " + ac->errstr;
      redisAsyncFree(ac);
      return nullptr;
    }
    auto conn = std::make_shared<Conn>(io_, this, role);
    boost::system::error_code ec;
    conn->sd.assign(ac->c.fd, ec);
    if (ec) {
      why = "connect to " + endpoint_ + " failed: " + ec.message();
      redisAsyncFree(ac);  // closes the fd
      return nullptr;
    }
    conn->ac = ac;
    ac->data = conn.get();
    ac->ev.data = conn.get();
    ac->ev.addRead = &EvAddRead;
    ac->ev.delRead = &EvDelRead;
    ac->ev.addWrite = &EvAddWrite;
    ac->ev.delWrite = &EvDelWrite;
    ac->ev.cleanup = &EvCleanup;
    // After the adapter: this arms the first write wait, whose completion is the connect.
    redisAsyncSetConnectCallback(ac, &OnConnect);
    redisAsyncSetDisconnectCallback(ac, &OnDisconnect);
    // The handshake, queued now and written (pipelined) once connected. Pub/sub ignores the
    // database, so only the commands connection SELECTs.
    using Kind = Request::Kind;
    if (!options_.password.empty()) {
      SendInternal(*conn, Kind::kAuth,
                   options_.username.empty()
                       ? std::vector<std::string>{"AUTH", options_.password}
                       : std::vector<std::string>{"AUTH", options_.username, options_.password});
    }
    if (role == Role::kCommands && options_.db != 0) {
      SendInternal(*conn, Kind::kSelect, {"SELECT", std::to_string(options_.db)});
    }
    SendInternal(*conn, Kind::kPing, {"PING"});
    return conn;
  }

  // Runs after every handler: turns what hiredis recorded into state changes, then runs the
  // user code that resulted.
  void AfterIo() {
    CheckConnections();
    Flush();
  }

  void CheckConnections() {
    if (state_ != State::kConnecting && state_ != State::kUp) return;
    for (const Conn* c : {cmd_.get(), sub_.get()}) {
      if (c != nullptr && c->ac == nullptr) {
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
    for (const std::string& channel : wanted_) {
      auto it = waiting.find(channel);
      SendSubscribe(channel, it != waiting.end() ? std::move(it->second)
                                                 : std::vector<std::function<void()>>{});
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

  void CloseConnections(RedisFailure failure) {
    free_failure_ = std::move(failure);
    for (std::shared_ptr<Conn>* slot : {&cmd_, &sub_}) {
      std::shared_ptr<Conn> c = std::move(*slot);
      slot->reset();
      // Runs every reply callback with NULL (-> free_failure_), the subscribe callbacks with
      // NULL (ignored), cleanup (releases the descriptor), then closes the fd.
      if (c && c->ac != nullptr) redisAsyncFree(c->ac);
    }
    free_failure_.reset();
    handshake_error_.reset();
    // Unconfirmed SUBSCRIBEs are sent again on the next connection, with their callbacks.
    for (SubRequest& s : sub_inflight_) {
      if (!wanted_.contains(s.channel)) continue;
      auto& w = waiting_confirms_[s.channel];
      for (auto& f : s.confirms) w.push_back(std::move(f));
    }
    sub_inflight_.clear();
    sub_pending_.store(0);
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
      const bool connected = cmd_ && sub_ && cmd_->ac != nullptr && sub_->ac != nullptr &&
                             (cmd_->ac->c.flags & REDIS_CONNECTED) != 0 &&
                             (sub_->ac->c.flags & REDIS_CONNECTED) != 0;
      DeclareDown(RedisFailureKind::kDisconnected,
                  connected ? "no answer to the handshake from " + endpoint_ + " within " +
                                  Millis(options_.connect_timeout)
                            : "connect to " + endpoint_ + " timed out after " +
                                  Millis(options_.connect_timeout));
    } else if (state_ == State::kUp) {
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

  // Hands `req` to hiredis (it takes ownership on success).
  bool Send(Conn& c, std::unique_ptr<Request>& req) {
    if (c.ac == nullptr) return false;
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(req->args.size());
    lens.reserve(req->args.size());
    for (const std::string& a : req->args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAsyncCommandArgv(c.ac, &OnReply, req.get(), static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      return false;
    }
    req->sent = Clock::now();
    c.inflight.push_back(req.release());
    return true;
  }

  void SendInternal(Conn& c, Request::Kind kind, std::vector<std::string> args) {
    auto req = std::make_unique<Request>();
    req->kind = kind;
    req->args = std::move(args);
    // On failure the connect timeout ends the attempt.
    Send(c, req);
  }

  void SendSubscribe(const std::string& channel, std::vector<std::function<void()>> confirms) {
    const char* argv[] = {"SUBSCRIBE", channel.data()};
    const std::size_t lens[] = {9, channel.size()};
    // privdata null: hiredis keeps one callback per channel and calls it for years.
    if (sub_ == nullptr || sub_->ac == nullptr ||
        redisAsyncCommandArgv(sub_->ac, &OnSubReply, nullptr, 2, argv, lens) != REDIS_OK) {
      auto& w = waiting_confirms_[channel];
      for (auto& f : confirms) w.push_back(std::move(f));
      return;
    }
    sub_inflight_.push_back(SubRequest{channel, Clock::now(), std::move(confirms)});
    sub_pending_.fetch_add(1);
  }

  void DoSubscribe(const std::string& channel, std::function<void()> confirmed) {
    if (state_ == State::kStopped) return;
    wanted_.insert(channel);
    std::vector<std::function<void()>> confirms;
    if (confirmed) confirms.push_back(std::move(confirmed));
    if (state_ == State::kUp) {
      SendSubscribe(channel, std::move(confirms));
    } else if (!confirms.empty()) {
      waiting_confirms_[channel].push_back(std::move(confirms.front()));
    }
  }

  void DoUnsubscribe(const std::string& channel) {
    wanted_.erase(channel);
    waiting_confirms_.erase(channel);
    if (state_ != State::kUp || sub_ == nullptr || sub_->ac == nullptr) return;
    const char* argv[] = {"UNSUBSCRIBE", channel.data()};
    const std::size_t lens[] = {11, channel.size()};
    // No callback and no privdata: hiredis 0.14 never calls or frees them for (P)UNSUBSCRIBE.
    // It refuses (REDIS_ERR) when the connection is not subscribed yet, which is fine.
    redisAsyncCommandArgv(sub_->ac, nullptr, nullptr, 2, argv, lens);
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
  const std::string endpoint_;  // "host:port", for messages
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
  std::optional<RedisFailure> free_failure_;  // set while we free the contexts ourselves
  std::set<std::string> wanted_;              // channels to keep subscribed
  std::map<std::string, std::vector<std::function<void()>>> waiting_confirms_;  // not sent yet
  std::deque<SubRequest> sub_inflight_;
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
  impl_->Subscribe(std::move(channel), std::move(confirmed));
}

void RedisClient::Unsubscribe(std::string channel) { impl_->Unsubscribe(std::move(channel)); }

bool RedisClient::up() const { return impl_->up(); }
std::size_t RedisClient::pending() const { return impl_->pending(); }

}  // namespace vrouter::store
