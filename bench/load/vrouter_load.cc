// vrouter_load: simulated people on real sockets, the load generator behind bench/run.
//
// One process plays the users i < --users-total with i % --processes == --process, on one
// io_context and one thread (the open-files limit is per process, so bench/run starts several).
// Each user ("u<i>", in space "s<i / space-size>"):
//   * connects over ws or wss to one of --urls picked at random (another one than the last that
//     failed), sends `hello` with an HS256 token minted from --secret-file, then `join`, or
//     `resume` with its last server and epoch after a reconnect;
//   * people mode: walks a 2D map (bench/load/crowd.h: every process agrees on every position),
//     watches the people near it and unwatches those who walked away, once per --step-ms;
//     lookups of its neighbours are paced at --rate per process over the joined users; from
//     --broken ID@S on, a user on server ID gets no media and reports `no_media` after 3 s, every
//     5 s, until `migrate` moves it;
//   * lookup mode: after `assigned`, only lookups of one user of its space, paced at --rate per
//     process (latency from the actual send) or closed loop with --inflight per connection;
//   * echo mode: no hello; the same lookup frame is sent and must come back (echo_baseline);
//   * idle mode: hello and join, then nothing (memory per connection);
//   * reconnects with full-jitter exponential backoff (100 ms .. 5 s) after a failed connect or a
//     dropped connection, and after `goaway` at a random time within reconnect_after_ms;
//   * --surge ON,OFF: everyone connects at once, holds ON s, closes, waits OFF s, again.
// Connections open at --ramp per second. After --duration (or SIGINT/SIGTERM) every connection is
// closed with 1000 and the report is written.
//
// Output: --timeline FILE gets one JSON line per second (cumulative counters, and latency
// percentiles of that second per message type); --report FILE gets the summary (connections,
// failures by kind, close codes, latency histograms per message type, pushes, resumes, the
// broken server's accounting, unexpected errors by kind). Histograms are log-linear buckets
// (bench/load/histogram.h) that bench/run merges across processes. Exit: 0, or 2 on usage/setup
// errors. Unexpected errors are in the report, for bench/run to judge.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/common/ws_client.h"
#include "bench/load/crowd.h"
#include "bench/load/histogram.h"
#include "bench/load/load_options.h"
#include "proto/messages.h"
#include "router/edge/token.h"

namespace vrouter::bench::load {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = WsClock;
using std::chrono::milliseconds;

constexpr milliseconds kBackoffBase{100};
constexpr milliseconds kBackoffCap{5000};
// A join refused for now (no_video_server, unavailable, rate_limited) is asked again on the same
// connection after a full-jitter delay, as the JS client does (its DEFAULT_BACKOFF: 250 ms doubling
// to 10 s): the router's admission pacing spreads a surge over time instead of failing it.

bool RetryableJoinRefusal(std::string_view code) {
  return code == "no_video_server" || code == "unavailable" || code == "rate_limited";
}
constexpr milliseconds kRequestTimeout{10000};
constexpr milliseconds kNoMediaReportAfter{3000};
constexpr milliseconds kNoMediaReportEvery{5000};
constexpr milliseconds kCloseGrace{3000};  // at exit: closes still pending after it are dropped
constexpr std::int64_t kTokenTtlS = 24 * 3600;

std::int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t Micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<std::uint64_t>(us);
}

// The "server" and "epoch" of `assigned` and `migrate`; nullopt when malformed.
struct Placement {
  std::string server;
  std::uint64_t epoch = 0;
};
std::optional<Placement> ParsePlacement(const json::object& m) {
  const auto* server = m.if_contains("server");
  const auto* epoch = m.if_contains("epoch");
  if (server == nullptr || !server->is_object() || epoch == nullptr || !epoch->is_number()) {
    return std::nullopt;
  }
  const auto* id = server->as_object().if_contains("id");
  if (id == nullptr || !id->is_string()) return std::nullopt;
  return Placement{std::string(id->as_string()), epoch->to_number<std::uint64_t>()};
}

enum class Req { kHello, kJoin, kResume, kLookup, kWatch, kUnwatch, kReport, kEcho, kCount };
constexpr const char* kReqNames[] = {"hello", "join",    "resume", "lookup",
                                     "watch", "unwatch", "report", "echo"};
const char* ReqName(Req r) { return kReqNames[static_cast<int>(r)]; }

struct TypeStats {
  std::uint64_t sent = 0;
  std::uint64_t answered = 0;
  std::map<std::string, std::uint64_t> errors;
  LatencyHistogram latency;
  LatencyHistogram window;  // this second, for the timeline
};

struct Cycle {
  std::int64_t start_unix_ms = 0;
  std::int64_t all_open_unix_ms = 0;  // 0: not every user got connected
  std::uint64_t opened = 0;
  std::uint64_t failed = 0;
};

struct Stats {
  TypeStats requests[static_cast<int>(Req::kCount)];
  std::uint64_t attempts = 0;
  std::uint64_t opened = 0;
  std::uint64_t connect_failures = 0;
  std::map<std::string, std::uint64_t> failures;  // by kind
  std::map<int, std::uint64_t> closed;            // by close code, closes we did not ask for
  std::uint64_t unexpected_closes = 0;
  LatencyHistogram connect_us;     // connect start -> WebSocket open
  LatencyHistogram handshake_us;   // TCP connected -> WebSocket open (TLS + upgrade)
  LatencyHistogram join_wait_us;   // first `join` of a user -> its `assigned` (retries included)
  std::uint64_t join_retries = 0;  // joins asked again after a retryable refusal
  std::int64_t last_first_join_unix_ms = 0;  // when the last user got its first assignment
  std::int64_t first_open_unix_ms = 0;
  std::int64_t last_open_unix_ms = 0;
  std::uint64_t held = 0;
  std::uint64_t max_held = 0;
  std::uint64_t joined = 0;  // users with an assignment on an open connection
  std::uint64_t moved = 0, left = 0, migrate = 0, goaway = 0;
  std::uint64_t resumes_resumed = 0, resumes_not_resumed = 0;
  std::uint64_t broken_assigned_after = 0, broken_reports = 0, broken_migrated_away = 0;
  std::int64_t broken_first_migrate_unix_ms = 0;
  std::map<std::string, std::uint64_t> unexpected;
  std::vector<Cycle> cycles;

  TypeStats& of(Req r) { return requests[static_cast<int>(r)]; }
  void Unexpected(const std::string& kind) { ++unexpected[kind]; }
};

class Generator;

class User final : public ConnListener {
 public:
  User(Generator& g, std::uint64_t index);

  // `elsewhere`: another replica than the last one, when there is a choice.
  void Connect(bool elsewhere);
  // Closes with 1000 and stays away until the next Connect (surge off, end of run).
  void Park(std::function<void()> closed);
  // A retry or a goaway move scheduled with generation `gen` is due.
  void Due(std::uint64_t gen);
  std::uint64_t gen() const { return gen_; }
  void Step(Clock::time_point now);  // people mode: walk, watch, notice a broken server
  bool SendLookup(Clock::time_point now);
  void CheckTimeouts(Clock::time_point now);
  bool ready() const { return phase_ == Phase::kReady; }
  bool parked() const { return phase_ == Phase::kParked; }

  void OnOpen(const OpenResult& result) override;
  void OnMessage(std::string text) override;
  void OnClosed(boost::system::error_code ec, std::uint16_t code, std::string reason) override;

 private:
  enum class Phase { kIdle, kConnecting, kHello, kJoining, kJoinWait, kReady, kRetrying, kParked };
  struct Pending {
    std::uint64_t id;
    Req type;
    Clock::time_point sent;
  };

  std::uint64_t Send(Req type, std::string_view fields, Clock::time_point now);
  void SendUsers(Req type, const std::vector<std::uint64_t>& users, Clock::time_point now);
  void Joined(const json::object& m, Req request);
  // `join` (or `resume` of the assignment it had), now.
  void SendJoin(Clock::time_point now);
  void Lost();  // the open connection is gone: counters
  void Retry();
  void Answered(const Pending& p, Clock::time_point now);
  void SetServer(std::string server, std::uint64_t epoch);
  void HandleMessage(const json::object& m, Clock::time_point now);

  Generator& g_;
  std::uint64_t index_;
  std::string name_;
  std::string space_;
  std::string lookup_fields_;  // lookup/echo modes: `"users":["<a user of the space>"]`
  std::shared_ptr<WsConn> conn_;
  std::size_t url_ = 0;
  Phase phase_ = Phase::kIdle;
  std::string server_;
  std::uint64_t epoch_ = 0;
  bool has_assignment_ = false;
  bool goaway_ = false;
  std::vector<std::uint64_t> watching_;  // sorted global indices
  std::vector<Pending> pending_;
  std::uint64_t next_id_ = 1;
  int attempt_ = 0;
  int join_attempt_ = 0;                              // joins refused in a row on this connection
  std::optional<Clock::time_point> first_join_sent_;  // the user's very first `join`
  bool first_join_done_ = false;
  std::uint64_t gen_ = 0;  // bumped by Connect and Park: older scheduled retries are void
  std::optional<Clock::time_point> no_media_since_;
  Clock::time_point last_report_{};
};

class Generator {
 public:
  Generator(const LoadOptions& options, std::string secret, std::unique_ptr<asio::ssl::context> tls)
      : options(options),
        secret(std::move(secret)),
        tls(std::move(tls)),
        rng(std::random_device{}()),
        tick_(io),
        signals_(io, SIGINT, SIGTERM) {}

  int Run();

  // What users use.
  const LoadOptions& options;
  std::string secret;
  std::unique_ptr<asio::ssl::context> tls;
  asio::io_context io{1};
  std::vector<ConnTarget> targets;
  WsClientOptions conn_options{.subprotocol = std::string(proto::kSubprotocol),
                               .user_agent = "vrouter-load"};
  Stats stats;
  std::mt19937_64 rng;
  Clock::time_point start = Clock::now();
  std::int64_t t0_unix_ms = 0;
  std::optional<Clock::time_point> broken_from;
  bool stopping = false;

  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng); }
  double RunSeconds(Clock::time_point now) const {
    return std::chrono::duration<double>(now - start).count() +
           static_cast<double>(start_unix_ms_ - t0_unix_ms) / 1000.0;
  }
  void RetryLater(User* user, milliseconds delay) {
    retries_.push({Clock::now() + delay, user, user->gen()});
  }
  void UserOpened() {
    ++stats.held;
    stats.max_held = std::max(stats.max_held, stats.held);
    if (!stats.cycles.empty() && stats.held == users_.size() &&
        stats.cycles.back().all_open_unix_ms == 0) {
      stats.cycles.back().all_open_unix_ms = UnixMs();
    }
  }
  void UserOpenFailed() {
    if (!stats.cycles.empty()) ++stats.cycles.back().failed;
  }
  void CountCycleOpen() {
    if (!stats.cycles.empty()) ++stats.cycles.back().opened;
  }
  bool closed_loop() const {
    return options.rate == 0 && (options.mode == Mode::kLookup || options.mode == Mode::kEcho);
  }

 private:
  struct Due {
    Clock::time_point at;
    User* user;
    std::uint64_t gen;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  void Tick();
  void Second(Clock::time_point now);
  void Surge(Clock::time_point now);
  void Stop(const char* why);
  void Finish();
  json::value Report() const;

  std::vector<std::unique_ptr<User>> users_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> retries_;
  asio::steady_timer tick_;
  asio::signal_set signals_;
  std::int64_t start_unix_ms_ = UnixMs();
  std::size_t next_connect_ = 0;  // ramp cursor
  double connect_credit_ = 0;
  double lookup_credit_ = 0;
  double step_credit_ = 0;
  std::size_t step_cursor_ = 0;
  std::size_t lookup_cursor_ = 0;
  Clock::time_point last_tick_ = start;
  Clock::time_point next_second_ = start + std::chrono::seconds(1);
  // Surge: the current phase and when it ends.
  bool surge_on_ = false;
  Clock::time_point surge_switch_at_ = start;
  std::ofstream timeline_;
  std::size_t closes_pending_ = 0;
  std::string stopped_by_;
  std::uint64_t held_at_stop_ = 0;  // before the closes of the end
  std::uint64_t joined_at_stop_ = 0;
};

// ---- User ----

User::User(Generator& g, std::uint64_t index)
    : g_(g), index_(index), name_(UserName(index)), space_(SpaceName(index, g.options.crowd)) {
  const auto& c = g.options.crowd;
  const std::uint64_t base = index / c.space_size * c.space_size;
  std::uint64_t other = base + (index - base + 1) % c.space_size;
  if (other >= c.users_total) other = base;
  lookup_fields_ = "\"users\":[\"" + UserName(other) + "\"]";
  url_ = static_cast<std::size_t>(g.Uniform() * static_cast<double>(g.targets.size())) %
         g.targets.size();
}

void User::Connect(bool elsewhere) {
  if (g_.stopping) return;
  const std::size_t n = g_.targets.size();
  if (elsewhere && n > 1) {
    url_ = (url_ + 1 + static_cast<std::size_t>(g_.Uniform() * static_cast<double>(n - 1))) % n;
  } else {
    url_ = static_cast<std::size_t>(g_.Uniform() * static_cast<double>(n)) % n;
  }
  ++gen_;
  phase_ = Phase::kConnecting;
  goaway_ = false;
  ++g_.stats.attempts;
  conn_ = MakeWsConn(g_.io, g_.targets[url_], this, g_.tls.get(), g_.conn_options);
  conn_->Start();
}

void User::Park(std::function<void()> closed) {
  const bool open = phase_ == Phase::kHello || phase_ == Phase::kJoining ||
                    phase_ == Phase::kJoinWait || phase_ == Phase::kReady;
  if (open) Lost();
  phase_ = Phase::kParked;
  ++gen_;
  pending_.clear();
  watching_.clear();
  if (!conn_) return closed();
  auto conn = std::move(conn_);
  if (open) {
    conn->Close(1000, std::move(closed));
  } else {
    conn->Abort();
    closed();
  }
}

void User::Due(std::uint64_t gen) {
  if (gen != gen_) return;
  if (phase_ == Phase::kRetrying) return Connect(true);
  if (phase_ == Phase::kJoinWait) return SendJoin(Clock::now());
  if (goaway_ && (phase_ == Phase::kHello || phase_ == Phase::kJoining ||
                  phase_ == Phase::kJoinWait || phase_ == Phase::kReady)) {
    // The replica is shutting down: move now, and resume elsewhere.
    Lost();
    conn_->Close(1000, [] {});
    conn_.reset();
    pending_.clear();
    watching_.clear();
    attempt_ = 0;
    Connect(true);
  }
}

void User::Lost() {
  --g_.stats.held;
  if (phase_ == Phase::kReady) --g_.stats.joined;
}

void User::Retry() {
  phase_ = Phase::kRetrying;
  pending_.clear();
  watching_.clear();
  conn_.reset();
  const auto delay = FullJitterBackoff(attempt_, g_.Uniform(), kBackoffBase, kBackoffCap);
  ++attempt_;
  g_.RetryLater(this, delay);
}

std::uint64_t User::Send(Req type, std::string_view fields, Clock::time_point now) {
  const std::uint64_t id = next_id_++;
  std::string frame;
  frame.reserve(40 + fields.size());
  frame += "{\"type\":\"";
  frame += type == Req::kEcho ? "lookup" : ReqName(type);
  frame += "\",\"id\":";
  frame += std::to_string(id);
  if (!fields.empty()) {
    frame += ',';
    frame += fields;
  }
  frame += '}';
  pending_.push_back({id, type, now});
  ++g_.stats.of(type).sent;
  conn_->Send(std::move(frame));
  return id;
}

void User::SendUsers(Req type, const std::vector<std::uint64_t>& users, Clock::time_point now) {
  std::string fields = "\"users\":[";
  for (std::size_t i = 0; i < users.size(); ++i) {
    if (i > 0) fields += ',';
    fields += "\"" + UserName(users[i]) + "\"";
  }
  fields += ']';
  Send(type, fields, now);
}

bool User::SendLookup(Clock::time_point now) {
  if (phase_ != Phase::kReady) return false;
  if (g_.options.mode == Mode::kPeople) {
    auto near = Neighbours(index_, g_.RunSeconds(now), g_.options.crowd);
    if (near.empty()) {
      Send(Req::kLookup, lookup_fields_, now);
    } else {
      SendUsers(Req::kLookup, near, now);
    }
  } else {
    Send(g_.options.mode == Mode::kEcho ? Req::kEcho : Req::kLookup, lookup_fields_, now);
  }
  return true;
}

void User::Step(Clock::time_point now) {
  if (phase_ != Phase::kReady) return;
  const auto near = [&] {
    auto n = Neighbours(index_, g_.RunSeconds(now), g_.options.crowd);
    std::sort(n.begin(), n.end());
    return n;
  }();
  std::vector<std::uint64_t> add;
  std::vector<std::uint64_t> drop;
  std::set_difference(near.begin(), near.end(), watching_.begin(), watching_.end(),
                      std::back_inserter(add));
  std::set_difference(watching_.begin(), watching_.end(), near.begin(), near.end(),
                      std::back_inserter(drop));
  if (!add.empty()) SendUsers(Req::kWatch, add, now);
  if (!drop.empty()) SendUsers(Req::kUnwatch, drop, now);
  watching_ = near;
  // A black hole takes media and forwards none: the browser notices after a few seconds.
  if (g_.broken_from && now >= *g_.broken_from && server_ == g_.options.broken_server) {
    if (!no_media_since_) no_media_since_ = now;
    if (now - *no_media_since_ >= kNoMediaReportAfter &&
        now - last_report_ >= kNoMediaReportEvery) {
      last_report_ = now;
      ++g_.stats.broken_reports;
      Send(Req::kReport,
           "\"server\":" + json::serialize(json::string(server_)) +
               ",\"reason\":\"no_media\",\"detail\":\"vrouter_load: no media\"",
           now);
    }
  } else {
    no_media_since_.reset();
  }
}

void User::CheckTimeouts(Clock::time_point now) {
  while (!pending_.empty() && now - pending_.front().sent > kRequestTimeout) {
    ++g_.stats.of(pending_.front().type).errors["timeout"];
    g_.stats.Unexpected(std::string("timeout:") + ReqName(pending_.front().type));
    pending_.erase(pending_.begin());
  }
}

void User::OnOpen(const OpenResult& result) {
  const auto now = Clock::now();
  if (result.ec) {
    std::string kind;
    switch (result.stage) {
      case OpenStage::kConnect:
        kind = "connect";
        break;
      case OpenStage::kTls:
        kind = "tls";
        break;
      default:
        kind =
            result.http_status != 0 ? "http_" + std::to_string(result.http_status) : "ws_handshake";
    }
    ++g_.stats.connect_failures;
    ++g_.stats.failures[kind];
    g_.UserOpenFailed();
    if (!(g_.options.expect_drops && kind == "connect")) g_.stats.Unexpected("open:" + kind);
    if (attempt_ < 2 || attempt_ % 10 == 0) {
      std::fprintf(stderr, "vrouter_load: %s: %s\n", name_.c_str(), result.Describe().c_str());
    }
    return Retry();
  }
  const auto& t = conn_->times();
  g_.stats.connect_us.Record(Micros(now - t.started));
  if (t.tcp_connected) g_.stats.handshake_us.Record(Micros(now - *t.tcp_connected));
  ++g_.stats.opened;
  const auto unix_now = UnixMs();
  if (g_.stats.first_open_unix_ms == 0) g_.stats.first_open_unix_ms = unix_now;
  g_.stats.last_open_unix_ms = unix_now;
  g_.CountCycleOpen();
  g_.UserOpened();
  if (g_.options.mode == Mode::kEcho) {
    phase_ = Phase::kReady;
    ++g_.stats.joined;
    attempt_ = 0;
    if (g_.closed_loop()) {
      for (std::uint32_t i = 0; i < g_.options.inflight; ++i) SendLookup(now);
    }
    return;
  }
  phase_ = Phase::kHello;
  const auto unix_s = unix_now / 1000;
  const auto token = edge::MintToken(name_, space_, g_.secret, unix_s, unix_s + kTokenTtlS);
  Send(Req::kHello, "\"token\":\"" + token + "\"", now);
}

void User::SendJoin(Clock::time_point now) {
  phase_ = Phase::kJoining;
  if (has_assignment_) {
    Send(Req::kResume,
         "\"server\":" + json::serialize(json::string(server_)) +
             ",\"epoch\":" + std::to_string(epoch_),
         now);
  } else {
    if (!first_join_sent_) first_join_sent_ = now;
    Send(Req::kJoin, "", now);
  }
}

void User::SetServer(std::string server, std::uint64_t epoch) {
  if (server != server_) no_media_since_.reset();
  server_ = std::move(server);
  epoch_ = epoch;
  has_assignment_ = true;
}

void User::Joined(const json::object& m, Req request) {
  const auto now = Clock::now();
  auto placed = ParsePlacement(m);
  if (!placed) {
    g_.stats.Unexpected("malformed:assigned");
    return;
  }
  if (request == Req::kResume) {
    const auto* resumed = m.if_contains("resumed");
    if (resumed != nullptr && resumed->is_bool() && resumed->as_bool()) {
      ++g_.stats.resumes_resumed;
    } else {
      ++g_.stats.resumes_not_resumed;
    }
  }
  if (g_.broken_from && now >= *g_.broken_from && placed->server == g_.options.broken_server &&
      placed->server != server_) {
    ++g_.stats.broken_assigned_after;
  }
  SetServer(std::move(placed->server), placed->epoch);
  phase_ = Phase::kReady;
  ++g_.stats.joined;
  attempt_ = 0;
  join_attempt_ = 0;
  if (first_join_sent_ && !first_join_done_) {
    first_join_done_ = true;
    g_.stats.join_wait_us.Record(Micros(now - *first_join_sent_));
    g_.stats.last_first_join_unix_ms = std::max(g_.stats.last_first_join_unix_ms, UnixMs());
  }
  if (g_.closed_loop()) {
    for (std::uint32_t i = 0; i < g_.options.inflight; ++i) SendLookup(now);
  }
}

void User::Answered(const Pending& p, Clock::time_point now) {
  auto& s = g_.stats.of(p.type);
  ++s.answered;
  const auto us = Micros(now - p.sent);
  s.latency.Record(us);
  s.window.Record(us);
}

void User::OnMessage(std::string text) {
  const auto now = Clock::now();
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    g_.stats.Unexpected("malformed:frame");
    return;
  }
  try {
    HandleMessage(v.as_object(), now);
  } catch (const std::exception&) {  // a number out of range
    g_.stats.Unexpected("malformed:frame");
  }
}

void User::HandleMessage(const json::object& m, Clock::time_point now) {
  const auto* type_v = m.if_contains("type");
  const std::string_view type =
      type_v != nullptr && type_v->is_string() ? std::string_view(type_v->as_string()) : "";
  // An answer: the pending request with that id.
  if (const auto* id_v = m.if_contains("id"); id_v != nullptr && id_v->is_number()) {
    const auto id = id_v->to_number<std::uint64_t>();
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [id](const Pending& p) { return p.id == id; });
    if (it == pending_.end()) {
      g_.stats.Unexpected("answer_without_request");
      return;
    }
    const Pending p = *it;
    pending_.erase(it);
    if (type == "error") {
      const auto* code_v = m.if_contains("code");
      const std::string code =
          code_v != nullptr && code_v->is_string() ? std::string(code_v->as_string()) : "?";
      ++g_.stats.of(p.type).errors[code];
      if ((p.type == Req::kJoin || p.type == Req::kResume) && RetryableJoinRefusal(code)) {
        // Refused for now: ask again later on this connection, as a client does.
        ++g_.stats.join_retries;
        phase_ = Phase::kJoinWait;
        g_.RetryLater(
            this, FullJitterBackoff(join_attempt_++, g_.Uniform(), kJoinRetryBase, kJoinRetryCap));
        return;
      }
      const bool expected = g_.options.expect_drops && (code == "unavailable");
      if (!expected) g_.stats.Unexpected("error:" + code);
      if (p.type == Req::kJoin || p.type == Req::kResume) {
        // No assignment on this connection: start over on another one later.
        Lost();
        conn_->Close(1000, [] {});
        Retry();
      }
      return;
    }
    Answered(p, now);
    switch (p.type) {
      case Req::kHello:
        return SendJoin(now);
      case Req::kJoin:
      case Req::kResume:
        return Joined(m, p.type);
      case Req::kLookup:
      case Req::kEcho:
        if (g_.closed_loop()) SendLookup(now);
        return;
      default:
        return;
    }
  }
  // A push.
  if (type == "moved") {
    ++g_.stats.moved;
  } else if (type == "left") {
    ++g_.stats.left;
  } else if (type == "migrate") {
    ++g_.stats.migrate;
    auto placed = ParsePlacement(m);
    if (!placed) {
      g_.stats.Unexpected("malformed:migrate");
      return;
    }
    if (!g_.options.broken_server.empty() && server_ == g_.options.broken_server &&
        placed->server != server_) {
      ++g_.stats.broken_migrated_away;
      if (g_.stats.broken_first_migrate_unix_ms == 0) {
        g_.stats.broken_first_migrate_unix_ms = UnixMs();
      }
    }
    SetServer(std::move(placed->server), placed->epoch);
  } else if (type == "goaway") {
    ++g_.stats.goaway;
    goaway_ = true;
    const auto* after = m.if_contains("reconnect_after_ms");
    const double window = after != nullptr && after->is_number() ? after->to_number<double>() : 0;
    // Keep serving, then move to another replica at a random point of the window.
    g_.RetryLater(this, milliseconds(static_cast<std::int64_t>(window * g_.Uniform())));
  } else if (type == "error") {
    const auto* code_v = m.if_contains("code");
    g_.stats.Unexpected("error:" + (code_v != nullptr && code_v->is_string()
                                        ? std::string(code_v->as_string())
                                        : std::string("?")));
  } else {
    g_.stats.Unexpected("unknown_push");
  }
}

void User::OnClosed(boost::system::error_code, std::uint16_t code, std::string reason) {
  if (phase_ == Phase::kParked || phase_ == Phase::kRetrying) return;
  Lost();
  ++g_.stats.closed[code];
  const bool shutdown = code == 1001 || code == 1012;
  const bool expected =
      (goaway_ && shutdown) || (g_.options.expect_drops && (shutdown || code == 1006));
  if (!expected) {
    ++g_.stats.unexpected_closes;
    g_.stats.Unexpected("close:" + std::to_string(code));
    std::fprintf(stderr, "vrouter_load: %s: closed %u %s\n", name_.c_str(), code, reason.c_str());
  }
  // Refused credentials or a newer session of the same user: reconnecting would not help.
  if (code == 4000 || code == 4001) {
    phase_ = Phase::kParked;
    conn_.reset();
    return;
  }
  if (goaway_) attempt_ = 0;  // a planned move, not a failure
  Retry();
}

// ---- Generator ----

int Generator::Run() {
  t0_unix_ms = options.t0_unix_ms.value_or(start_unix_ms_);
  if (!options.broken_server.empty()) {
    broken_from = start + milliseconds(t0_unix_ms - start_unix_ms_ +
                                       static_cast<std::int64_t>(options.broken_at * 1000));
  }
  for (const auto& url : options.urls) {
    asio::ip::tcp::resolver resolver(io);
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec || endpoints.empty()) {
      std::fprintf(stderr, "vrouter_load: cannot resolve '%s'\n", url.host.c_str());
      return 2;
    }
    const std::string path = url.target == "/" ? std::string(proto::kClientPath) : url.target;
    targets.push_back(ConnTarget{endpoints, url.host, HostHeader(url.host, url.port), path});
  }
  if (!options.timeline_file.empty()) {
    timeline_.open(options.timeline_file, std::ios::trunc);
    if (!timeline_) {
      std::fprintf(stderr, "vrouter_load: --timeline: cannot write '%s'\n",
                   options.timeline_file.c_str());
      return 2;
    }
  }
  for (std::uint64_t i :
       UsersOfProcess(options.crowd.users_total, options.process, options.processes)) {
    users_.push_back(std::make_unique<User>(*this, i));
  }
  if (options.surge_on) {
    surge_on_ = false;
    surge_switch_at_ = start;
  }
  signals_.async_wait([this](boost::system::error_code ec, int) {
    if (!ec) Stop("signal");
  });
  Tick();
  io.run();
  const auto report = json::serialize(Report());
  if (!options.report_file.empty()) {
    std::ofstream out(options.report_file, std::ios::trunc);
    out << report << "\n";
    if (!out) {
      std::fprintf(stderr, "vrouter_load: --report: cannot write '%s'\n",
                   options.report_file.c_str());
      return 2;
    }
  }
  std::fprintf(stderr,
               "vrouter_load %u/%u: %s after %.1f s: opened %llu, held max %llu, "
               "unexpected %zu kinds\n",
               options.process, options.processes, stopped_by_.c_str(),
               std::chrono::duration<double>(Clock::now() - start).count(),
               static_cast<unsigned long long>(stats.opened),
               static_cast<unsigned long long>(stats.max_held), stats.unexpected.size());
  return 0;
}

void Generator::Tick() {
  if (stopping) return;
  const auto now = Clock::now();
  const double dt = std::chrono::duration<double>(now - last_tick_).count();
  last_tick_ = now;
  if (now - start >= std::chrono::duration<double>(options.duration)) return Stop("duration");

  if (options.surge_on) {
    Surge(now);
  } else if (next_connect_ < users_.size()) {
    // Ramp: first connections at --ramp per second (0: all at once).
    connect_credit_ += options.ramp * dt;
    std::size_t n = options.ramp == 0 ? users_.size() : static_cast<std::size_t>(connect_credit_);
    connect_credit_ -= static_cast<double>(n);
    for (; n > 0 && next_connect_ < users_.size(); --n) users_[next_connect_++]->Connect(false);
  }
  while (!retries_.empty() && retries_.top().at <= now) {
    const Due due = retries_.top();
    retries_.pop();
    due.user->Due(due.gen);
  }
  if (options.mode == Mode::kPeople) {
    step_credit_ += static_cast<double>(users_.size()) * dt * 1000.0 / options.step_ms;
    for (; step_credit_ >= 1; step_credit_ -= 1) {
      users_[step_cursor_]->Step(now);
      step_cursor_ = (step_cursor_ + 1) % users_.size();
    }
  }
  if (options.rate > 0 && options.mode != Mode::kIdle &&
      now - start >= std::chrono::duration<double>(options.rate_after)) {
    lookup_credit_ = std::min(lookup_credit_ + options.rate * dt, options.rate);  // 1 s at most
    // Round robin over users, skipping those not joined (at most one pass per tick).
    for (std::size_t tried = 0; lookup_credit_ >= 1 && tried < users_.size(); ++tried) {
      if (users_[lookup_cursor_]->SendLookup(now)) lookup_credit_ -= 1;
      lookup_cursor_ = (lookup_cursor_ + 1) % users_.size();
    }
  }
  if (now >= next_second_) {
    Second(now);
    next_second_ += std::chrono::seconds(1);
  }
  tick_.expires_at(now + std::chrono::microseconds(options.tick_us));
  tick_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Tick();
  });
}

void Generator::Surge(Clock::time_point now) {
  if (now < surge_switch_at_) return;
  if (!surge_on_) {
    surge_on_ = true;
    surge_switch_at_ = now + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(*options.surge_on));
    stats.cycles.push_back({UnixMs(), 0, 0, 0});
    for (auto& u : users_) u->Connect(false);
  } else {
    surge_on_ = false;
    surge_switch_at_ = now + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(options.surge_off));
    for (auto& u : users_) u->Park([] {});
  }
}

void Generator::Second(Clock::time_point now) {
  for (auto& u : users_) u->CheckTimeouts(now);
  if (!timeline_.is_open()) {
    for (auto& t : stats.requests) t.window.Reset();
    return;
  }
  json::object sent;
  json::object lat;
  std::uint64_t answered = 0;
  std::uint64_t errors = 0;
  for (int i = 0; i < static_cast<int>(Req::kCount); ++i) {
    auto& t = stats.requests[i];
    answered += t.answered;
    for (const auto& [code, n] : t.errors) errors += n;
    if (t.sent == 0) continue;
    sent[kReqNames[i]] = t.sent;
    if (t.window.count() > 0) {
      lat[kReqNames[i]] = json::object{{"n", t.window.count()},
                                       {"p50", t.window.Percentile(0.5)},
                                       {"p99", t.window.Percentile(0.99)},
                                       {"p999", t.window.Percentile(0.999)}};
    }
    t.window.Reset();
  }
  std::uint64_t unexpected = 0;
  for (const auto& [kind, n] : stats.unexpected) unexpected += n;
  json::object line{{"t", UnixMs()},
                    {"held", stats.held},
                    {"joined", stats.joined},
                    {"opened", stats.opened},
                    {"connect_failures", stats.connect_failures},
                    {"closed_unexpected", stats.unexpected_closes},
                    {"sent", std::move(sent)},
                    {"answered", answered},
                    {"errors", errors},
                    {"unexpected", unexpected},
                    {"lat", std::move(lat)}};
  timeline_ << json::serialize(line) << "\n";
  timeline_.flush();
}

void Generator::Stop(const char* why) {
  if (stopping) return;
  stopping = true;
  stopped_by_ = why;
  held_at_stop_ = stats.held;
  joined_at_stop_ = stats.joined;
  tick_.cancel();
  signals_.cancel();
  Second(Clock::now());
  closes_pending_ = users_.size();
  auto closed = [this] {
    if (--closes_pending_ == 0) Finish();
  };
  for (auto& u : users_) u->Park(closed);
  if (closes_pending_ == 0) return Finish();
  tick_.expires_after(kCloseGrace);
  tick_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Finish();
  });
}

void Generator::Finish() { io.stop(); }

json::value Generator::Report() const {
  json::object requests;
  for (int i = 0; i < static_cast<int>(Req::kCount); ++i) {
    const auto& t = stats.requests[i];
    if (t.sent == 0) continue;
    json::object errors;
    for (const auto& [code, n] : t.errors) errors[code] = n;
    requests[kReqNames[i]] = json::object{{"sent", t.sent},
                                          {"answered", t.answered},
                                          {"errors", std::move(errors)},
                                          {"latency_us", t.latency.ToJson()}};
  }
  json::object failures;
  for (const auto& [kind, n] : stats.failures) failures[kind] = n;
  json::object closed;
  for (const auto& [code, n] : stats.closed) closed[std::to_string(code)] = n;
  json::object unexpected;
  for (const auto& [kind, n] : stats.unexpected) unexpected[kind] = n;
  json::array cycles;
  for (const auto& c : stats.cycles) {
    cycles.push_back(json::object{{"start_unix_ms", c.start_unix_ms},
                                  {"all_open_unix_ms", c.all_open_unix_ms},
                                  {"opened", c.opened},
                                  {"failed", c.failed}});
  }
  const char* transport = options.tls() ? "wss" : "ws";
  json::object report{
      {"process", options.process},
      {"processes", options.processes},
      {"mode", ModeName(options.mode)},
      {"transport", transport},
      {"users", users_.size()},
      {"t0_unix_ms", t0_unix_ms},
      {"started_unix_ms", start_unix_ms_},
      {"elapsed_s", std::chrono::duration<double>(Clock::now() - start).count()},
      {"stopped_by", stopped_by_},
      {"connections", json::object{{"attempts", stats.attempts},
                                   {"opened", json::object{{transport, stats.opened}}},
                                   {"held_at_end", held_at_stop_},
                                   {"max_held", stats.max_held},
                                   {"failures", std::move(failures)},
                                   {"closed", std::move(closed)},
                                   {"unexpected_closes", stats.unexpected_closes}}},
      {"connect_us", stats.connect_us.ToJson()},
      {"handshake_us", stats.handshake_us.ToJson()},
      {"join_wait_us", stats.join_wait_us.ToJson()},
      {"join_retries", stats.join_retries},
      {"last_first_join_unix_ms", stats.last_first_join_unix_ms},
      {"first_open_unix_ms", stats.first_open_unix_ms},
      {"last_open_unix_ms", stats.last_open_unix_ms},
      {"cycles", std::move(cycles)},
      {"requests", std::move(requests)},
      {"pushes", json::object{{"moved", stats.moved},
                              {"left", stats.left},
                              {"migrate", stats.migrate},
                              {"goaway", stats.goaway}}},
      {"users_at_end",
       json::object{
           {"joined", joined_at_stop_}, {"connected", held_at_stop_}, {"target", users_.size()}}},
      {"resumes", json::object{{"sent", stats.requests[static_cast<int>(Req::kResume)].sent},
                               {"resumed", stats.resumes_resumed},
                               {"not_resumed", stats.resumes_not_resumed}}},
      {"unexpected_errors", std::move(unexpected)}};
  if (!options.broken_server.empty()) {
    report["broken"] = json::object{
        {"server", options.broken_server},
        {"at_unix_ms", t0_unix_ms + static_cast<std::int64_t>(options.broken_at * 1000)},
        {"assigned_after", stats.broken_assigned_after},
        {"reports_sent", stats.broken_reports},
        {"migrated_away", stats.broken_migrated_away},
        {"first_migrate_unix_ms", stats.broken_first_migrate_unix_ms}};
  }
  return report;
}

}  // namespace
}  // namespace vrouter::bench::load

int main(int argc, char** argv) {
  using namespace vrouter::bench::load;
  auto parsed = ParseLoadOptions(argc, argv);
  if (!parsed.options) {
    std::fprintf(parsed.exit_code == 0 ? stdout : stderr, "%s%s\n",
                 parsed.exit_code == 0 ? "" : "vrouter_load: ", parsed.message.c_str());
    return parsed.exit_code;
  }
  const LoadOptions& options = *parsed.options;
  std::string secret;
  if (!options.secret_file.empty()) {
    std::ifstream in(options.secret_file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
      std::fprintf(stderr, "vrouter_load: --secret-file: cannot read '%s'\n",
                   options.secret_file.c_str());
      return 2;
    }
    secret = vrouter::bench::sim::TrimSecret(text.str());
  }
  std::unique_ptr<boost::asio::ssl::context> tls;
  if (options.tls()) {
    auto made = vrouter::bench::MakeClientTls(options.ca_file);
    if (auto* err = made.error_message()) {
      std::fprintf(stderr, "vrouter_load: --ca %s\n", err->c_str());
      return 2;
    }
    tls = std::move(std::get<0>(made));
  }
  Generator generator(options, std::move(secret), std::move(tls));
  return generator.Run();
}
