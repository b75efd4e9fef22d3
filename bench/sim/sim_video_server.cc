// sim_video_server: a simulated fleet of video servers (SFUs) that registers with a real vrouter
// on /v1/video-server (subprotocol vrouter.video.v1) and reports `stats` the way a real SFU
// would, with scripted failures, so that the router's health scoring can be exercised end to end.
//
// N servers run in one process, one WebSocket connection each, on one io_context and one thread.
// Each server:
//   * connects (ws or wss), sends `register` with a fresh token minted from --secret-file
//     (core::MintServerToken: sub = its id), and waits for `registered`;
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
//     --behavior sim-3=garbage@5 --duration 60 --summary /tmp/sim-summary.json
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
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
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

#include "bench/sim/media_model.h"
#include "bench/sim/sim_options.h"
#include "bench/sim/sim_support.h"
#include "proto/fleet_codec.h"
#include "proto/fleet_messages.h"
#include "router/core/token.h"

namespace vrouter::bench::sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kTick{20};
constexpr milliseconds kDefaultInterval{1000};
constexpr milliseconds kConnectTimeout{10000};  // TCP + TLS
constexpr milliseconds kHandshakeTimeout{10000};
constexpr milliseconds kIdleTimeout{30000};
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

std::string HostHeader(const Url& url) {
  const bool v6 = url.host.find(':') != std::string::npos;
  return (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);
}

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// ---- one WebSocket connection to the router ----

class ConnListener {
 public:
  virtual void OnOpen(beast::error_code ec, std::string_view stage) = 0;
  virtual void OnMessage(std::string text) = 0;
  // `code` is the router's close code, 1006 when the connection ended without one.
  virtual void OnClosed(beast::error_code ec, std::uint16_t code, std::string reason) = 0;

 protected:
  ~ConnListener() = default;
};

class WsConn {
 public:
  virtual ~WsConn() = default;
  virtual void Start() = 0;
  virtual void Send(std::string frame) = 0;
  // Drops the connection without a close frame (a crash); no callback follows.
  virtual void Abort() = 0;
  // Close frame 1001, then `done` (also on failure); no other callback follows.
  virtual void Close(std::function<void()> done) = 0;
};

struct ConnTarget {
  tcp::resolver::results_type endpoints;
  std::string host;         // for SNI and certificate checks
  std::string host_header;  // host:port
  std::string path;
  bool verify = false;
};

template <class Next>
class Conn final : public WsConn, public std::enable_shared_from_this<Conn<Next>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Next, beast::tcp_stream>;

  template <class... Args>
  Conn(const ConnTarget& target, ConnListener* listener, Args&&... args)
      : target_(target), listener_(listener), ws_(std::forward<Args>(args)...) {}

  void Start() override {
    beast::get_lowest_layer(ws_).expires_after(kConnectTimeout);
    beast::get_lowest_layer(ws_).async_connect(
        target_.endpoints,
        [self = this->shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return self->Opened(ec, "connect");
          if constexpr (kTls) {
            self->TlsHandshake();
          } else {
            self->WsHandshake();
          }
        });
  }

  void Send(std::string frame) override {
    if (!open_) return;
    outbox_.push_back(std::move(frame));
    if (!writing_) WriteNext();
  }

  void Abort() override {
    listener_ = nullptr;
    open_ = false;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
  }

  void Close(std::function<void()> done) override {
    listener_ = nullptr;
    if (!open_) {
      Abort();
      done();
      return;
    }
    open_ = false;  // no more frames; a write in flight finishes first (one write at a time)
    close_done_ = std::move(done);
    if (!writing_) SendClose();
  }

 private:
  void TlsHandshake() {
    if constexpr (kTls) {
      auto& tls = ws_.next_layer();
      if (!IsIpLiteral(target_.host)) {
        SSL_set_tlsext_host_name(tls.native_handle(), target_.host.c_str());
      }
      if (target_.verify) tls.set_verify_callback(ssl::host_name_verification(target_.host));
      tls.async_handshake(ssl::stream_base::client,
                          [self = this->shared_from_this()](beast::error_code ec) {
                            if (ec) return self->Opened(ec, "TLS handshake");
                            self->WsHandshake();
                          });
    }
  }

  void WsHandshake() {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts =
        websocket::stream_base::timeout::suggested(beast::role_type::client);
    timeouts.handshake_timeout = kHandshakeTimeout;
    // A router that vanished without closing (half-open TCP) is noticed: ping at half of it.
    timeouts.idle_timeout = kIdleTimeout;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(http::field::sec_websocket_protocol, proto::kVideoSubprotocol);
      req.set(http::field::user_agent, "vrouter-sim-video-server");
    }));
    ws_.async_handshake(
        response_, target_.host_header, target_.path,
        [self = this->shared_from_this()](beast::error_code ec) {
          if (ec) {
            if (ec == websocket::error::upgrade_declined) {
              self->detail_ = "HTTP " + std::to_string(self->response_.result_int());
            }
            return self->Opened(ec, "WebSocket handshake");
          }
          const auto sub = self->response_[http::field::sec_websocket_protocol];
          if (sub != proto::kVideoSubprotocol) {
            self->detail_ = "router chose subprotocol '" + std::string(sub) + "'";
            return self->Opened(make_error_code(boost::system::errc::protocol_error),
                                "WebSocket handshake");
          }
          self->open_ = true;
          self->Opened({}, "open");
          self->ReadNext();
        });
  }

  void Opened(beast::error_code ec, std::string_view stage) {
    if (listener_ == nullptr) return;
    std::string s(stage);
    if (!detail_.empty()) s += " (" + detail_ + ")";
    auto* l = listener_;
    if (ec) listener_ = nullptr;
    l->OnOpen(ec, s);
  }

  void ReadNext() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->Closed(ec);
      std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (self->listener_ != nullptr) self->listener_->OnMessage(std::move(text));
      if (self->listener_ != nullptr) self->ReadNext();
    });
  }

  void SendClose() {
    ws_.async_close(websocket::close_reason(websocket::close_code::going_away, "sim stopping"),
                    [self = this->shared_from_this()](beast::error_code) {
                      beast::get_lowest_layer(self->ws_).close();
                      if (auto done = std::move(self->close_done_)) done();
                    });
  }

  void WriteNext() {
    if (outbox_.empty() || !open_) {
      writing_ = false;
      if (close_done_) SendClose();
      return;
    }
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(outbox_.front()),
                    [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                      self->outbox_.pop_front();
                      if (ec) {
                        self->writing_ = false;
                        if (auto done = std::move(self->close_done_)) {
                          beast::get_lowest_layer(self->ws_).close();
                          done();
                        }
                        return self->Closed(ec);
                      }
                      self->WriteNext();
                    });
  }

  // The first failure of a read or write ends the connection for the listener.
  void Closed(beast::error_code ec) {
    open_ = false;
    if (listener_ == nullptr) return;
    auto* l = listener_;
    listener_ = nullptr;
    const auto& reason = ws_.reason();
    const auto code =
        reason.code == 0 ? std::uint16_t{1006} : static_cast<std::uint16_t>(reason.code);
    beast::get_lowest_layer(ws_).close();
    l->OnClosed(ec, code, std::string(reason.reason.c_str()));
  }

  ConnTarget target_;
  ConnListener* listener_;
  websocket::stream<Next> ws_;
  websocket::response_type response_;
  beast::flat_buffer buffer_;
  std::deque<std::string> outbox_;
  std::string detail_;
  std::function<void()> close_done_;  // set by Close()
  bool open_ = false;
  bool writing_ = false;
};

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

  std::shared_ptr<WsConn> MakeConn(ConnListener* listener) {
    if (tls != nullptr) {
      return std::make_shared<Conn<beast::ssl_stream<beast::tcp_stream>>>(target, listener, io,
                                                                          *tls);
    }
    return std::make_shared<Conn<beast::tcp_stream>>(target, listener, io);
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
    conn->Close(std::move(done));
  }

  const ServerRecord& record() const { return record_; }

  // ConnListener
  void OnOpen(beast::error_code ec, std::string_view stage) override {
    const auto now = Clock::now();
    if (ec) {
      conn_.reset();
      phase_ = Phase::kIdle;
      const auto delay = ScheduleRetry(now);
      Log(id(), "%.*s failed: %s; retrying in %lld ms", static_cast<int>(stage.size()),
          stage.data(), ec.message().c_str(), static_cast<long long>(delay.count()));
      return;
    }
    ++record_.connects;
    Log(id(), "connected to %s", fleet_.options.router_text.c_str());
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    proto::Register reg;
    reg.token =
        core::MintServerToken(id(), fleet_.secret, unix_now, unix_now + fleet_.options.token_ttl_s);
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
        host_header_(HostHeader(admin)),
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
  std::optional<ssl::context> tls;
  if (options.router.scheme == "wss") {
    tls.emplace(ssl::context::tls_client);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (options.ca_file.empty()) {
      tls->set_verify_mode(ssl::verify_none);
    } else {
      beast::error_code ec;
      tls->load_verify_file(options.ca_file, ec);
      if (ec) {
        std::fprintf(stderr, "sim_video_server: --ca '%s': %s\n", options.ca_file.c_str(),
                     ec.message().c_str());
        return 2;
      }
      tls->set_verify_mode(ssl::verify_peer);
    }
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
  fleet.tls = tls ? &*tls : nullptr;
  fleet.target = ConnTarget{*router_endpoints, options.router.host, HostHeader(options.router),
                            options.RouterTarget(), !options.ca_file.empty()};
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
