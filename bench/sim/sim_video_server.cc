// sim_video_server: a simulated fleet of video servers (SFUs) that registers with a real vrouter
// on /v1/video-server (subprotocol vrouter.video.v1) and reports `stats` the way a real SFU
// would, with scripted failures, so that the router's health scoring can be exercised end to end.
//
// N servers run in one process, one WebSocket connection each, on one io_context and one thread.
// Each server:
//   * connects (ws or wss), sends `register` with a fresh token minted from --secret-file
//     (edge::MintServerToken: sub = its id), and waits for `registered`;
//   * sends `stats` every report_interval_ms (from `registered`; the first right away), counters
//     from bench/sim/media_model.h, driven by the number of users the router assigned to it,
//     which it learns by polling the admin API (GET /v1/servers/{id} -> "assigned") once per
//     interval over one keep-alive HTTP connection shared by the process;
//   * logs to stderr one line per event: connected, registered, state pushed (with reason),
//     error received, disconnected, behaviour switches;
//   * reconnects with jittered exponential backoff (250 ms .. 10 s) when the connection drops,
//     except a `dead` server.
// At exit (--duration reached, or SIGINT/SIGTERM; a second signal stops at once) the connections
// are closed (1001) and a JSON summary is printed to stdout (and to --summary FILE):
//   {"router":…,"admin":…,"elapsed_s":…,"stopped_by":"duration"|"signal",
//    "servers":{"sim-0":{"behavior","switch_at","region","url","connects","registrations",
//      "disconnects","last_state","state_pushes":[{"state","reason","t"}],"stats_sent",
//      "errors_received","errors":[{"code","message","t"}],"garbage_frames_sent",
//      "last_assigned","last_close_code","connected_at_exit"},…}}
// Exit code: 0 when every server that was meant to connect registered at least once; 1 when
// some never did (router down, credential refused…); 2 on a usage or set-up error.
//
// Behaviours (--behavior ID=MODE[@SECONDS], healthy before SECONDS): healthy, blackhole (reports
// low load while forwarding nothing), frozen (counters stop), restart (reconnects with seq and
// counters back to 0; --restart-in-place keeps the connection), dead (disconnects for good),
// flapping (down/up every --flap-period s), garbage (sends malformed frames once; the router must
// answer `error` and keep the connection).
//
// Example (one command line), against `scripts/run` (ws on 8080, admin on 9090), the router's
// video-server key being in a file such as .dev/video-secret:
//
//   build/release/bench/sim_video_server --router ws://127.0.0.1:8080
//     --admin http://127.0.0.1:9090 --secret-file .dev/video-secret --servers 4
//     --regions eu-west,us-east --behavior sim-1=blackhole@20 --behavior sim-2=flapping@10
//     --behavior sim-3=garbage@5 --duration 60 --summary .dev/sim-summary.json
//
// wss: --router wss://127.0.0.1:8443 (certificate not verified unless --ca .dev/cert.pem).
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/common/ws_client.h"
#include "bench/sim/media_model.h"
#include "bench/sim/sim_options.h"
#include "bench/sim/sim_support.h"
#include "proto/video_server_codec.h"
#include "proto/video_server_messages.h"
#include "router/edge/token.h"

namespace vrouter::bench::sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kTick{20};
constexpr milliseconds kDefaultInterval{1000};
constexpr milliseconds kIdleTimeout{30000};      // a half-open router connection is noticed
constexpr milliseconds kRegisterTimeout{10000};  // `register` sent -> `registered`
constexpr milliseconds kCloseTimeout{2000};      // at exit
constexpr milliseconds kHttpTimeout{5000};

const Clock::time_point g_start = Clock::now();

double Seconds(Clock::time_point t) { return std::chrono::duration<double>(t - g_start).count(); }

// One line per event on stderr: "[  12.345] sim-3: registered ...".
[[gnu::format(printf, 2, 3)]] void Log(std::string_view who, const char* format, ...) {
  char text[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  std::fprintf(stderr, "[%9.3f] %.*s: %s\n", Seconds(Clock::now()), static_cast<int>(who.size()),
               who.data(), text);
}

// ---- shared state ----

struct Fleet {
  Fleet(asio::io_context& io_context, const SimOptions& sim_options)
      : io(io_context), options(sim_options) {}

  asio::io_context& io;
  const SimOptions& options;
  ssl::context* tls = nullptr;  // wss only
  ConnTarget target;
  std::string secret;
  std::mt19937_64 rng{std::random_device{}()};
  bool stopping = false;

  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng); }

  WsClientOptions conn_options{.subprotocol = std::string(proto::kVideoSubprotocol),
                               .user_agent = "vrouter-sim-video-server",
                               .idle_timeout = kIdleTimeout};

  std::shared_ptr<WsConn> MakeConn(ConnListener* listener) {
    return MakeWsConn(io, target, listener, tls, conn_options);
  }
};

// ---- one simulated server ----

class SimServer final : public ConnListener {
 public:
  SimServer(Fleet& fleet, const ServerPlan& plan, Clock::time_point first_connect)
      : fleet_(fleet),
        plan_(plan),
        model_(plan.spec, ModelParams{fleet.options.capacity, fleet.options.pps,
                                      fleet.options.flap_period, 1000}) {
    record_.id = plan.id;
    record_.region = plan.region;
    record_.url = plan.url;
    record_.behavior = std::string(BehaviorName(plan.spec.behavior));
    record_.switch_at = plan.spec.at;
    next_connect_at_ = first_connect;
  }

  const std::string& id() const { return plan_.id; }
  milliseconds interval() const { return interval_; }
  bool ever_registered() const { return record_.registrations > 0; }
  // A `dead` server from the start never tries.
  bool meant_to_connect() const {
    return !(plan_.spec.behavior == Behavior::kDead && plan_.spec.at <= 0);
  }

  void SetAssigned(std::optional<std::uint32_t> assigned) {
    assigned_ = assigned.value_or(0);
    if (assigned) record_.last_assigned = assigned;
  }

  // Called every kTick: behaviour switches, (re)connects, reports.
  void Tick(Clock::time_point now) {
    const double t = Seconds(now);
    if (!announced_switch_ && plan_.spec.behavior != Behavior::kHealthy && model_.Switched(t)) {
      announced_switch_ = true;
      Log(id(), "behaviour %s starts (t >= %.3f s)", record_.behavior.c_str(), plan_.spec.at);
    }
    if (model_.RestartDue(t)) {
      if (fleet_.options.restart_in_place) {
        Log(id(), "restart in place: seq and counters back to 0");
      } else {
        Log(id(), "restart: process restarts, connection dropped, seq and counters back to 0");
        Drop();
        next_connect_at_ = now;
        attempt_ = 0;
      }
      model_.Restart(t);
    }
    const bool wants = model_.WantsConnection(t);
    if (!wants) {
      if (conn_) {
        Log(id(), "%s: dropping the connection",
            plan_.spec.behavior == Behavior::kDead ? "dead" : "flapping (down)");
        Drop();
      }
      was_down_ = true;
      return;
    }
    if (was_down_) {
      was_down_ = false;
      next_connect_at_ = now;  // back up: reconnect at once, not after a backoff
      attempt_ = 0;
    }
    switch (phase_) {
      case Phase::kIdle:
        if (now >= next_connect_at_) Connect();
        break;
      case Phase::kConnecting:
        break;
      case Phase::kRegistering:
        if (now >= register_deadline_) {
          Log(id(), "no `registered` within %lld ms: dropping the connection",
              static_cast<long long>(kRegisterTimeout.count()));
          Drop();
          ScheduleRetry(now);
        }
        break;
      case Phase::kRunning:
        if (model_.GarbageDue(t)) {
          const auto frames = GarbageFrames(model_.next_seq());
          for (const auto& f : frames) conn_->Send(f);
          record_.garbage_frames_sent += frames.size();
          model_.MarkGarbageSent();
          Log(id(), "garbage: sent %zu malformed frames", frames.size());
        }
        if (now >= next_report_at_) {
          conn_->Send(proto::Encode(proto::VideoServerMessage{model_.NextStats(t, assigned_)}));
          ++record_.stats_sent;
          next_report_at_ += interval_;
          if (next_report_at_ <= now) next_report_at_ = now + interval_;
        }
        break;
    }
  }

  // Graceful close at exit; `done` runs when the connection is gone.
  void Stop(std::function<void()> done) {
    record_.connected_at_exit = phase_ == Phase::kRunning;
    phase_ = Phase::kIdle;
    if (!conn_) return done();
    auto conn = std::move(conn_);
    conn->Close(1001, std::move(done));
  }

  const ServerRecord& record() const { return record_; }

  // ConnListener
  void OnOpen(const OpenResult& result) override {
    const auto now = Clock::now();
    if (result.ec) {
      conn_.reset();
      phase_ = Phase::kIdle;
      const auto delay = ScheduleRetry(now);
      Log(id(), "%s; retrying in %lld ms", result.Describe().c_str(),
          static_cast<long long>(delay.count()));
      return;
    }
    ++record_.connects;
    Log(id(), "connected to %s", fleet_.options.router_text.c_str());
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    proto::Register reg;
    reg.token =
        edge::MintServerToken(id(), fleet_.secret, unix_now, unix_now + fleet_.options.token_ttl_s);
    reg.id = id();
    reg.url = plan_.url;
    reg.region = plan_.region;
    reg.capacity = fleet_.options.capacity;
    if (reg.token.empty()) Log(id(), "warning: could not mint a token (crypto library failure)");
    conn_->Send(proto::Encode(proto::VideoServerMessage{std::move(reg)}));
    phase_ = Phase::kRegistering;
    register_deadline_ = now + kRegisterTimeout;
  }

  void OnMessage(std::string text) override {
    const auto now = Clock::now();
    auto decoded = proto::DecodeRouterToVideoServerMessage(text);
    if (auto* err = std::get_if<proto::DecodeError>(&decoded)) {
      Log(id(), "undecodable frame from the router (%s): %.200s", err->message.c_str(),
          text.c_str());
      return;
    }
    auto& message = std::get<proto::RouterToVideoServerMessage>(decoded);
    if (auto* reg = std::get_if<proto::Registered>(&message)) {
      if (phase_ != Phase::kRegistering) {
        Log(id(), "unexpected `registered` (already registered)");
        return;
      }
      if (reg->report_interval_ms == 0) {
        Log(id(), "router sent report_interval_ms 0; using %lld ms",
            static_cast<long long>(kDefaultInterval.count()));
        interval_ = kDefaultInterval;
      } else {
        interval_ = milliseconds(reg->report_interval_ms);
      }
      if (reg->id != id()) Log(id(), "warning: router registered us as '%s'", reg->id.c_str());
      phase_ = Phase::kRunning;
      attempt_ = 0;
      ++record_.registrations;
      record_.last_state = reg->state;
      next_report_at_ = now;  // first report at once, then every interval
      Log(id(), "registered: replica %s, report every %u ms, state %s", reg->replica.c_str(),
          reg->report_interval_ms, reg->state.c_str());
    } else if (auto* change = std::get_if<proto::StateChange>(&message)) {
      record_.last_state = change->state;
      record_.state_pushes.push_back({change->state, change->reason, Seconds(now)});
      Log(id(), "state pushed: %s (reason: %s)", change->state.c_str(),
          change->reason.empty() ? "none" : change->reason.c_str());
    } else if (auto* error = std::get_if<proto::Error>(&message)) {
      ++record_.errors_received;
      const std::string code(proto::ErrorCodeName(error->code));
      if (record_.errors.size() < kMaxErrorRecords) {
        record_.errors.push_back({code, error->message, Seconds(now)});
      }
      Log(id(), "error received: %s: %s", code.c_str(), error->message.c_str());
    }
  }

  void OnClosed(beast::error_code ec, std::uint16_t code, std::string reason) override {
    const auto now = Clock::now();
    conn_.reset();
    const bool was_registering = phase_ == Phase::kRegistering;
    phase_ = Phase::kIdle;
    ++record_.disconnects;
    record_.last_close_code = code;
    const auto delay = ScheduleRetry(now);
    std::string how = "close code " + std::to_string(code);
    if (!reason.empty()) how += " '" + reason + "'";
    if (code == 1006) how += " (no close frame: " + ec.message() + ")";
    if (was_registering && code == proto::close_code::kAuthFailed) how += ", credential refused";
    Log(id(), "disconnected: %s; reconnecting in %lld ms", how.c_str(),
        static_cast<long long>(delay.count()));
  }

 private:
  enum class Phase { kIdle, kConnecting, kRegistering, kRunning };

  void Connect() {
    phase_ = Phase::kConnecting;
    conn_ = fleet_.MakeConn(this);
    conn_->Start();
  }

  // Drops the connection abruptly (a crash, a cut network); counts a disconnect if it was open.
  void Drop() {
    if (conn_) {
      conn_->Abort();
      conn_.reset();
      if (phase_ == Phase::kRegistering || phase_ == Phase::kRunning) ++record_.disconnects;
    }
    phase_ = Phase::kIdle;
  }

  milliseconds ScheduleRetry(Clock::time_point now) {
    const auto delay = Backoff(attempt_++, fleet_.Uniform());
    next_connect_at_ = now + delay;
    return delay;
  }

  Fleet& fleet_;
  ServerPlan plan_;
  MediaModel model_;
  ServerRecord record_;
  Phase phase_ = Phase::kIdle;
  std::shared_ptr<WsConn> conn_;
  Clock::time_point next_connect_at_ = g_start;
  Clock::time_point next_report_at_ = g_start;
  Clock::time_point register_deadline_ = g_start;
  milliseconds interval_ = kDefaultInterval;
  int attempt_ = 0;
  std::uint32_t assigned_ = 0;
  bool was_down_ = false;
  bool announced_switch_ = false;
};

// ---- the admin API poller: GET /v1/servers/{id} for every server, once per interval ----

class AdminPoller {
 public:
  AdminPoller(asio::io_context& io, const Url& admin, std::string admin_text,
              tcp::resolver::results_type endpoints,
              std::vector<std::unique_ptr<SimServer>>& servers)
      : admin_text_(std::move(admin_text)),
        host_header_(HostHeader(admin.host, admin.port)),
        prefix_(admin.target == "/" ? "" : admin.target),
        endpoints_(std::move(endpoints)),
        stream_(io),
        timer_(io),
        servers_(servers) {
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  }

  void Start() { Round(); }

  void Stop() {
    stopped_ = true;
    timer_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void Round() {
    if (stopped_) return;
    round_start_ = Clock::now();
    next_ = 0;
    Next();
  }

  void Next() {
    if (stopped_) return;
    if (next_ >= servers_.size()) return WaitForNextRound();
    if (!connected_) return Connect();
    Request();
  }

  void WaitForNextRound() {
    std::optional<milliseconds> interval;
    for (const auto& s : servers_) {
      if (s->ever_registered())
        interval = std::min(interval.value_or(s->interval()), s->interval());
    }
    timer_.expires_at(round_start_ + interval.value_or(kDefaultInterval));
    timer_.async_wait([this](beast::error_code ec) {
      if (!ec) Round();
    });
  }

  void Connect() {
    stream_.expires_after(kHttpTimeout);
    stream_.async_connect(endpoints_, [this](beast::error_code ec, const tcp::endpoint&) {
      if (stopped_) return;
      if (ec) return Fail(ec, "connect");
      connected_ = true;
      Request();
    });
  }

  void Request() {
    request_ = {};
    request_.version(11);
    request_.method(http::verb::get);
    request_.target(prefix_ + "/v1/servers/" + PercentEncode(servers_[next_]->id()));
    request_.set(http::field::host, host_header_);
    request_.set(http::field::user_agent, "vrouter-sim-video-server");
    request_.keep_alive(true);
    stream_.expires_after(kHttpTimeout);
    http::async_write(stream_, request_, [this](beast::error_code ec, std::size_t) {
      if (stopped_) return;
      if (ec) return Fail(ec, "request");
      response_ = {};
      http::async_read(stream_, buffer_, response_, [this](beast::error_code ec, std::size_t) {
        if (stopped_) return;
        if (ec) return Fail(ec, "response");
        Handle();
      });
    });
  }

  void Handle() {
    SimServer& server = *servers_[next_];
    const unsigned status = response_.result_int();
    if (status == 200) {
      const auto assigned = ParseAssigned(response_.body());
      if (assigned) {
        server.SetAssigned(assigned);
        Recovered();
      } else {
        Problem("GET " + std::string(request_.target()) + ": 200 without an integer \"assigned\"");
      }
    } else if (status == 404) {
      server.SetAssigned(std::nullopt);  // not known to the router (yet): nobody assigned
      Recovered();
    } else {
      Problem("GET " + std::string(request_.target()) + ": HTTP " + std::to_string(status));
    }
    ++answered_on_connection_;
    if (!response_.keep_alive()) Disconnect();
    ++next_;
    Next();
  }

  void Fail(beast::error_code ec, const char* stage) {
    const bool reused = answered_on_connection_ > 0;
    Disconnect();
    if (reused) return Next();  // the router closed an idle keep-alive connection: reconnect
    Problem(std::string(stage) + " failed: " + ec.message());
    WaitForNextRound();  // abandon this round
  }

  void Disconnect() {
    connected_ = false;
    answered_on_connection_ = 0;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    buffer_.clear();
  }

  // Logged once until the next success, not once per request.
  void Problem(const std::string& what) {
    if (failing_) return;
    failing_ = true;
    Log("admin", "%s: %s (assigned counts keep their last value)", admin_text_.c_str(),
        what.c_str());
  }
  void Recovered() {
    if (!failing_ && ever_ok_) return;
    if (failing_) Log("admin", "admin API answering again");
    failing_ = false;
    ever_ok_ = true;
  }

  std::string admin_text_;
  std::string host_header_;
  std::string prefix_;
  tcp::resolver::results_type endpoints_;
  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  std::vector<std::unique_ptr<SimServer>>& servers_;
  http::request<http::empty_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  Clock::time_point round_start_;
  std::size_t next_ = 0;
  std::size_t answered_on_connection_ = 0;
  bool connected_ = false;
  bool failing_ = false;
  bool ever_ok_ = false;
  bool stopped_ = false;
};

// ---- the program ----

std::optional<tcp::resolver::results_type> Resolve(asio::io_context& io, const Url& url,
                                                   const char* flag) {
  tcp::resolver resolver(io);
  beast::error_code ec;
  auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec || results.empty()) {
    std::fprintf(stderr, "sim_video_server: %s: cannot resolve '%s': %s\n", flag, url.host.c_str(),
                 ec ? ec.message().c_str() : "no address");
    return std::nullopt;
  }
  return results;
}

int Run(const SimOptions& options) {
  std::string secret;
  {
    std::ifstream in(options.secret_file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "sim_video_server: --secret-file: cannot read '%s'\n",
                   options.secret_file.c_str());
      return 2;
    }
    std::ostringstream content;
    content << in.rdbuf();
    secret = TrimSecret(content.str());
    if (secret.empty()) {
      std::fprintf(stderr, "sim_video_server: --secret-file '%s' is empty\n",
                   options.secret_file.c_str());
      return 2;
    }
  }

  // Declared before the io_context so that it outlives the connections the io_context's
  // pending handlers still hold when it is destroyed.
  std::unique_ptr<ssl::context> tls;
  if (options.router.scheme == "wss") {
    auto made = MakeClientTls(options.ca_file);
    if (auto* err = made.error_message()) {
      std::fprintf(stderr, "sim_video_server: --ca %s\n", err->c_str());
      return 2;
    }
    tls = std::move(std::get<0>(made));
  }
  asio::io_context io(1);
  auto router_endpoints = Resolve(io, options.router, "--router");
  if (!router_endpoints) return 2;
  std::optional<tcp::resolver::results_type> admin_endpoints;
  if (options.admin) {
    admin_endpoints = Resolve(io, *options.admin, "--admin");
    if (!admin_endpoints) return 2;
  }

  Fleet fleet{io, options};
  fleet.tls = tls.get();
  fleet.target =
      ConnTarget{*router_endpoints, options.router.host,
                 HostHeader(options.router.host, options.router.port), options.RouterTarget()};
  fleet.secret = std::move(secret);

  std::vector<std::unique_ptr<SimServer>> servers;
  // First connections spread over up to 1 s (1 ms per server), so that a large fleet neither
  // connects nor reports in one burst.
  const double spread_ms = std::min<double>(1000, options.servers);
  for (const ServerPlan& plan : PlanServers(options)) {
    const auto delay =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(
            servers.empty() ? 0 : fleet.Uniform() * spread_ms));
    servers.push_back(std::make_unique<SimServer>(fleet, plan, g_start + delay));
  }
  std::unique_ptr<AdminPoller> poller;
  if (options.admin) {
    poller = std::make_unique<AdminPoller>(io, *options.admin, options.admin_text, *admin_endpoints,
                                           servers);
  } else {
    Log("sim", "no --admin: every server reports 0 assigned users");
  }
  char until[64] = "until SIGINT/SIGTERM";
  if (options.duration > 0) std::snprintf(until, sizeof until, "%g s", options.duration);
  Log("sim", "%zu server(s) -> %s (path %s), running %s", servers.size(),
      options.router_text.c_str(), options.RouterTarget().c_str(), until);

  std::string stopped_by;
  asio::steady_timer tick(io);
  asio::steady_timer close_deadline(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::size_t closing = 0;

  auto finish = [&] {
    close_deadline.cancel();
    signals.cancel();
    io.stop();
  };
  auto stop = [&](const std::string& why) {
    if (fleet.stopping) return;
    fleet.stopping = true;
    stopped_by = why;
    Log("sim", "stopping (%s): closing connections", why.c_str());
    tick.cancel();
    if (poller) poller->Stop();
    closing = servers.size();
    for (auto& s : servers) {
      s->Stop([&] {
        if (--closing == 0) finish();
      });
    }
    if (closing == 0) return finish();
    close_deadline.expires_after(kCloseTimeout);
    close_deadline.async_wait([&](beast::error_code ec) {
      if (ec) return;
      Log("sim", "%zu connection(s) did not close within %lld ms", closing,
          static_cast<long long>(kCloseTimeout.count()));
      finish();
    });
  };

  std::function<void(beast::error_code, int)> on_signal = [&](beast::error_code ec, int sig) {
    if (ec) return;
    if (fleet.stopping) {
      Log("sim", "second signal: stopping now");
      return finish();
    }
    Log("sim", "%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop("signal");
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  std::function<void(beast::error_code)> on_tick = [&](beast::error_code ec) {
    if (ec || fleet.stopping) return;
    const auto now = Clock::now();
    if (options.duration > 0 && Seconds(now) >= options.duration) return stop("duration");
    for (auto& s : servers) s->Tick(now);
    tick.expires_at(tick.expiry() + kTick);
    if (tick.expiry() < now) tick.expires_after(kTick);
    tick.async_wait(on_tick);
  };
  tick.expires_after(milliseconds(0));
  tick.async_wait(on_tick);
  if (poller) poller->Start();

  io.run();

  RunSummary summary;
  summary.router = options.router_text;
  summary.admin = options.admin_text;
  summary.elapsed_s = Seconds(Clock::now());
  summary.stopped_by = stopped_by;
  std::size_t meant = 0, never = 0;
  for (const auto& s : servers) {
    summary.servers.push_back(s->record());
    if (s->meant_to_connect()) {
      ++meant;
      if (!s->ever_registered()) ++never;
    }
  }
  const std::string json = SummaryJson(summary);
  std::cout << json << std::endl;
  if (!options.summary_file.empty()) {
    std::ofstream out(options.summary_file, std::ios::trunc);
    out << json << '\n';
    if (!out) {
      std::fprintf(stderr, "sim_video_server: --summary: cannot write '%s'\n",
                   options.summary_file.c_str());
    }
  }
  if (never > 0) {
    Log("sim",
        "%zu of %zu server(s) never registered with %s (is a router listening "
        "there, and does it accept this video-server key? see the lines above)",
        never, meant, options.router_text.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace vrouter::bench::sim

int main(int argc, char** argv) {
  using namespace vrouter::bench::sim;
  ParseOutcome parsed = ParseSimOptions(argc, argv);
  if (!parsed.options) {
    (parsed.exit_code == 0 ? std::cout : std::cerr)
        << (parsed.exit_code == 0 ? "" : "sim_video_server: ") << parsed.message << '\n';
    return parsed.exit_code;
  }
  return Run(*parsed.options);
}
