// Why this file is longer than ~600 lines: it is one state machine (WsSession, with its phases in
// edge/ws_phase.h) whose handshake, liveness, reading, writing and closing share the socket, the
// send queue and the deadline timer; splitting it would spread that shared state over files. The
// pure parts live in router/edge (framing, the upgrade check, the phases) and are tested there.
#include "router/net/ws_session.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cassert>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <type_traits>
#include <variant>

#include "proto/codec.h"
#include "proto/messages.h"
#include "proto/video_server_messages.h"
#include "router/base/fifo_queue.h"
#include "router/base/log.h"
#include "router/base/wake_clock.h"
#include "router/edge/forwarded_for.h"
#include "router/edge/proxy_protocol.h"
#include "router/edge/ws_frame.h"
#include "router/edge/ws_phase.h"
#include "router/edge/ws_upgrade.h"
#include "router/net/handler_slot.h"
#include "router/net/liveness_sweep.h"
#include "router/net/nonblocking_io.h"
#include "router/net/readiness_loop.h"
#include "router/net/tls_stream.h"
#include "router/service/client_protocol.h"
#include "router/service/video_server_protocol.h"

namespace vrouter::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using edge::WsOpcode;
using edge::WsPhase;

namespace {

// A bare socket (net::Socket) bound to its io_context's executor type (not any_io_executor, not
// Beast's tcp_stream): every operation would otherwise copy a type-erased executor. Deadlines are
// the session's own timer (below), not per operation. wss is TlsStream (OpenSSL on that socket,
// no per-connection record buffers; tls_stream.h).
using PlainStream = Socket;
using SteadyClock = std::chrono::steady_clock;
// The session's timer on the same concrete executor: no type-erased executor in the timer or in
// each of its waits (88 bytes each instead of 136).
using SessionTimer = asio::basic_waitable_timer<SteadyClock, asio::wait_traits<SteadyClock>,
                                                asio::io_context::executor_type>;

// Upgrade requests are a few hundred bytes; 8 KiB of headers is generous and bounds a slowloris.
constexpr std::uint32_t kMaxUpgradeHeaderBytes = 8 * 1024;

// Until the peer authenticates (hello, register) it is anyone: its frames stay small (a hello or a
// register with a large token is ~2 KiB) and it gets a few tries, not a message stream.
constexpr std::size_t kMaxMessageBytesBeforeAuth = std::size_t{16} * 1024;
constexpr std::uint32_t kMaxMessagesBeforeAuth = 8;

// Reads per wake-up before the session yields to the others on its thread (a flooding peer must
// not starve them); it carries on from a posted continuation.
constexpr int kMaxReadsPerWake = 16;
// Frames per gathered write (two pieces each: header and payload).
constexpr std::size_t kMaxFramesPerWrite = 32;
// What one TLS write takes: a record's payload, so that it is one record and one send.
constexpr std::size_t kTlsWriteBytes = std::size_t{16} * 1024;

// Room for the operation of an open wss session's pending read wait (Asio's operation, the
// handler and its shared_ptr to the session). Measured with Boost 1.74 and GCC 12: 104 bytes. The
// integration tests fail if the slot is too small (handler_slot_overflows).
constexpr std::size_t kReadWaitBytes = 112;

// Jittered Retry-After for 503 and 429, so a refused storm does not come back in lockstep.
int RetryAfterSeconds() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return std::uniform_int_distribution<int>(2, 10)(rng);
}

// A frame on its way out: a shared payload (null for an empty ping) and its opcode.
struct OutFrame {
  assign::Frame payload;
  WsOpcode opcode = WsOpcode::kText;
  std::size_t size() const { return payload ? payload->size() : 0; }
};

// The unsent bytes at the front of the send queue as pieces for one gathered write, headers
// encoded into `headers`.
struct GatheredWrite {
  std::array<std::array<char, edge::kMaxServerFrameHeader>, kMaxFramesPerWrite> headers{};
  std::array<iovec, 2 * kMaxFramesPerWrite> pieces;
  std::size_t count = 0;
  std::size_t bytes = 0;

  // Adds frames from the front of `queue`, skipping the `skip` bytes already sent, up to
  // `max_bytes` in all.
  void From(const base::FifoQueue<OutFrame>& queue, std::size_t skip, std::size_t max_bytes) {
    for (std::size_t i = 0; i < queue.size() && i < kMaxFramesPerWrite && bytes < max_bytes; ++i) {
      const OutFrame& frame = queue[i];
      const std::size_t header =
          edge::EncodeServerFrameHeader(frame.opcode, frame.size(), headers[i]);
      Add(headers[i].data(), header, skip, max_bytes);
      if (frame.payload) Add(frame.payload->data(), frame.payload->size(), skip, max_bytes);
    }
  }

 private:
  void Add(const char* data, std::size_t size, std::size_t& skip, std::size_t max_bytes) {
    const std::size_t skipped = std::min(skip, size);
    skip -= skipped;
    const std::size_t take = std::min(size - skipped, max_bytes - bytes);
    if (take == 0) return;
    pieces[count++] = iovec{const_cast<char*>(data + skipped), take};
    bytes += take;
  }
};

template <class NextLayer>
class WsSession final : public service::SessionHandle,
                        public service::SessionTransport,
                        private edge::WsFrameSink,
                        private ReadinessWaiter,
                        private LivenessWatched,
                        public std::enable_shared_from_this<WsSession<NextLayer>> {
  static constexpr bool kTls = std::is_same_v<NextLayer, TlsStream>;

 public:
  WsSession(Socket socket, service::Service& service, telemetry::Transport transport,
            asio::ssl::context* tls, const edge::IpAddress& peer)
      : stream_(MakeStream(std::move(socket), tls)),
        service_(service),
        transport_(transport),
        session_id_(service.next_session_id.fetch_add(1, std::memory_order_relaxed)),
        reader_(
            std::min<std::size_t>(service.limits.max_message_bytes, kMaxMessageBytesBeforeAuth)),
        client_ip_(peer) {
    // The handshake slot was reserved by the listener (Service::ReserveHandshake).
    service_.open_connections.fetch_add(1, std::memory_order_relaxed);
    service_.metrics.handshakes_in_flight->Increment();
  }

  ~WsSession() override {
    if (loop_fd_ >= 0) ::close(loop_fd_);
    EndHandshake();
    ReleaseIpSlot();
    service_.open_connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void Run() {
    // PROXY header, TLS handshake, upgrade request and our answer within handshake_timeout
    // (slowloris).
    Timer().expires_after(service_.limits.handshake_timeout);
    Timer().async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec && self->phase_ <= WsPhase::kRefused) self->Abort();  // not open in time
    });
    // Only a trusted balancer may say who the client is; anyone else is the client itself (and
    // a PROXY header it sends is garbage to TLS and HTTP: the handshake fails).
    if (service_.proxy_protocol && service_.trusted_proxies.Contains(client_ip_)) {
      return ReadProxyHeader();
    }
    // A trusted balancer's connections carry many clients: it is not one address.
    if (!service_.trusted_proxies.Contains(client_ip_) && !TakeAddressHandshakeSlot()) return;
    StartHandshake();
  }

  // ---- SessionHandle: any thread ----
  void Push(assign::Frame frame) override {
    asio::post(stream_.get_executor(),
               [self = this->shared_from_this(), frame = std::move(frame)]() mutable {
                 self->Send(std::move(frame));
               });
  }
  void CloseAsync(std::uint16_t code, std::string reason,
                  std::chrono::milliseconds delay) override {
    asio::post(stream_.get_executor(),
               [self = this->shared_from_this(), code, reason = std::move(reason), delay] {
                 // Closing already: its deadlines stay (a delay would replace them).
                 if (edge::IsClosingOrDone(self->phase_)) return;
                 if (delay.count() <= 0) return self->Close(code, reason);
                 // Replaces the liveness checks: the connection is on its way out.
                 self->StopLivenessChecks();
                 self->Timer().expires_after(delay);
                 self->Timer().async_wait([self, code, reason](boost::system::error_code ec) {
                   if (!ec) self->Close(code, reason);
                 });
               });
  }

  // ---- SessionTransport: session thread ----
  void Send(assign::Frame frame) override {
    if (edge::IsClosingOrDone(phase_)) return;
    if (!Fits(frame->size())) return;
    Enqueue({std::move(frame), WsOpcode::kText});
  }

  void Dispatch(std::function<void()> fn) override {
    asio::dispatch(stream_.get_executor(),
                   [self = this->shared_from_this(), fn = std::move(fn)] { fn(); });
  }

  // Queues the close frame behind the frames already queued; nothing is sent after it.
  void Close(std::uint16_t code, std::string_view reason) override {
    if (phase_ != WsPhase::kOpen) return;
    if (code == proto::close_code::kMessageTooBig || code == proto::close_code::kPolicyViolation ||
        code == proto::close_code::kUnsupportedData || code == proto::close_code::kProtocolError ||
        code == proto::close_code::kInvalidPayload) {
      log::Debug("protocol_close", {{"session", session_id_},
                                    {"code", code},
                                    {"reason", reason},
                                    {"ip", client_ip_.ToString()}});
    }
    QueueClose(code, reason);
  }

 private:
  static NextLayer MakeStream(Socket socket, asio::ssl::context* tls) {
    if constexpr (kTls) {
      return NextLayer(std::move(socket), tls->native_handle());
    } else {
      (void)tls;
      return NextLayer(std::move(socket));
    }
  }

  Socket& socket() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  // The descriptor to read and write: the readiness loop's once open (ws), else the socket's.
  int fd() {
    if (loop_fd_ >= 0) return loop_fd_;
    return socket().native_handle();
  }

  int transport_index() const { return static_cast<int>(transport_); }

  // The session's own timer, for the rare deadlines (the handshake, a delayed close, the steps of
  // closing): made when first needed, dropped at open. Liveness is the thread's sweep.
  SessionTimer& Timer() {
    if (!timer_) timer_ = std::make_unique<SessionTimer>(stream_.get_executor());
    return *timer_;
  }
  void CancelTimer() {
    if (timer_) timer_->cancel();
  }

  // ======== The opening handshake ========

  void HandshakeFailed(std::string_view stage, boost::system::error_code ec) {
    // The deadline timer holds the session: cancel it, or a peer that left mid-handshake would
    // keep its descriptor and its place under --max-connections until the deadline.
    CancelTimer();
    Abort();
    service_.metrics.handshakes_failed[transport_index()]->Increment();
    log::Debug("handshake_failed",
               {{"stage", stage}, {"error", ec.message()}, {"ip", client_ip_.ToString()}});
  }

  // The handshake is over (opened, refused or failed): it no longer counts against
  // --max-handshakes.
  void EndHandshake() {
    if (holds_address_handshake_slot_) {
      holds_address_handshake_slot_ = false;
      service_.handshakes_per_ip.Release(handshake_->ip);
    }
    if (!holds_handshake_slot_) return;
    holds_handshake_slot_ = false;
    service_.ReleaseHandshake();
    service_.metrics.handshakes_in_flight->Decrement();
  }

  // Counts this handshake against --max-handshakes-per-ip from the moment it is known who the
  // peer is (at accept, or once a trusted balancer's PROXY header says), before anything is read:
  // sockets from one address that never send a request must not hold every handshake slot. Over
  // the limit the connection is closed at once (false); nothing has been read, so there is no
  // request to answer.
  bool TakeAddressHandshakeSlot() {
    const std::uint32_t limit = service_.limits.max_handshakes_per_ip;
    if (limit == 0) return true;
    if (!service_.handshakes_per_ip.TryAcquire(client_ip_, limit)) {
      service_.metrics.rejected_handshakes_per_ip->Increment();
      log::Debug("handshakes_per_ip_limit", {{"ip", client_ip_.ToString()}});
      CancelTimer();
      Abort();
      return false;
    }
    holds_address_handshake_slot_ = true;
    handshake_->ip = client_ip_;  // X-Forwarded-For may still change client_ip_
    return true;
  }

  void ReleaseIpSlot() {
    if (!holds_ip_slot_) return;
    holds_ip_slot_ = false;
    service_.per_ip.Release(client_ip_);
  }

  // PROXY protocol v1/v2 from a trusted balancer: read until a whole header is in, take the
  // client address from it, and hand whatever followed it to TLS or HTTP.
  void ReadProxyHeader() {
    socket().async_read_some(
        handshake_->buffer.prepare(512),
        [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
          if (ec) return self->HandshakeFailed("proxy_header", ec);
          self->handshake_->buffer.commit(n);
          const auto data = self->handshake_->buffer.cdata();
          const auto result =
              edge::ParseProxyHeader({static_cast<const std::uint8_t*>(data.data()), data.size()});
          switch (result.status) {
            case edge::ProxyParseStatus::kNeedMore:
              if (data.size() >= edge::kMaxProxyHeaderBytes) {
                return self->ProxyHeaderRefused("header longer than the PROXY protocol allows");
              }
              return self->ReadProxyHeader();
            case edge::ProxyParseStatus::kError:
              return self->ProxyHeaderRefused(result.error);
            case edge::ProxyParseStatus::kOk:
              // LOCAL: the balancer's own health check; the connection is who it is.
              if (!result.header.local && result.header.source) {
                self->client_ip_ = *result.header.source;
              }
              self->handshake_->buffer.consume(result.header.length);
              // A LOCAL header (the balancer's health check) or a source that is itself a
              // trusted proxy is not one client address: as in Run(), no per-address slot.
              if (!self->service_.trusted_proxies.Contains(self->client_ip_) &&
                  !self->TakeAddressHandshakeSlot()) {
                return;
              }
              return self->StartHandshake();
          }
        });
  }

  void ProxyHeaderRefused(const std::string& why) {
    service_.metrics.rejected_proxy->Increment();
    log::Debug("proxy_header_refused", {{"ip", client_ip_.ToString()}, {"error", why}});
    Abort();
  }

  void StartHandshake() {
    if constexpr (kTls) {
      // Bytes read with the PROXY header belong to the ClientHello.
      beast::flat_buffer& buffer = handshake_->buffer;
      if (buffer.size() > 0) {
        const auto data = buffer.cdata();
        stream_.Prepend({static_cast<const char*>(data.data()), data.size()});
        buffer.clear();
        buffer.shrink_to_fit();
      }
      stream_.async_handshake([self = this->shared_from_this()](boost::system::error_code ec) {
        if (ec) return self->HandshakeFailed("tls_handshake", ec);
        self->ReadUpgrade();
      });
    } else {
      ReadUpgrade();  // bytes after a PROXY header are the start of the request, in the buffer
    }
  }

  void ReadUpgrade() {
    auto& parser = handshake_->parser.emplace();
    parser.header_limit(kMaxUpgradeHeaderBytes);
    parser.body_limit(0);
    http::async_read(stream_, handshake_->buffer, parser,
                     [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->HandshakeFailed("http_read", ec);
                       self->OnUpgradeRequest();
                     });
  }

  // Every check and its order are edge::CheckUpgrade's (pure); the session gathers the replica's
  // state for it, counts the refusal and writes the answer.
  void OnUpgradeRequest() {
    const auto& req = handshake_->parser->get();
    const auto subprotocols = req.find(http::field::sec_websocket_protocol);
    const edge::UpgradeRequest request{
        .method = req.method_string(),
        .http_version = req.version(),
        .target = req.target(),
        .host = req[http::field::host],
        .connection = req[http::field::connection],
        .upgrade = req[http::field::upgrade],
        .version = req[http::field::sec_websocket_version],
        .key = req[http::field::sec_websocket_key],
        .subprotocols = subprotocols == req.end()
                            ? std::nullopt
                            : std::optional<std::string_view>(subprotocols->value()),
        .origin = req[http::field::origin],
    };
    ResolveForwardedFor(req);
    edge::UpgradeAdmission admission{
        .full_or_draining = service_.draining.load(std::memory_order_relaxed) ||
                            service_.open_connections.load(std::memory_order_relaxed) >
                                service_.limits.max_connections,
        .allowed_origins = service_.allowed_origins,
        .take_address_slot = {},
    };
    if (service_.limits.max_connections_per_ip > 0) {
      admission.take_address_slot = [this] { return TakeAddressSlot(); };
    }
    const edge::UpgradeCheck check = edge::CheckUpgrade(request, admission);
    if (const auto* refusal = std::get_if<edge::UpgradeRefusal>(&check)) {
      CountAdmissionRefusal(*refusal, request.origin);
      return Refuse(*refusal);
    }
    const auto& accepted = std::get<edge::UpgradeAccepted>(check);
    peer_ = accepted.peer;
    auto answer = std::make_shared<std::string>(edge::EncodeAccepted(accepted));
    asio::async_write(
        stream_, asio::buffer(*answer),
        [self = this->shared_from_this(), answer](boost::system::error_code ec, std::size_t) {
          if (ec) return self->HandshakeFailed("ws_accept", ec);
          self->OnOpen();
        });
  }

  // A peer behind a trusted proxy: the address the proxy says it serves.
  void ResolveForwardedFor(const http::request<http::empty_body>& req) {
    if (service_.trusted_proxies.empty() || !service_.trusted_proxies.Contains(client_ip_)) return;
    std::string forwarded;
    const auto [first, last] = req.equal_range("X-Forwarded-For");
    for (auto it = first; it != last; ++it) {
      if (!forwarded.empty()) forwarded += ',';
      forwarded += it->value();
    }
    if (!forwarded.empty()) {
      client_ip_ = edge::ClientFromForwardedFor(forwarded, client_ip_, service_.trusted_proxies)
                       .value_or(client_ip_);
    }
  }

  // The per-address limit (either path: a video server is anyone until it registers):
  // CheckUpgrade calls it last, when nothing else refuses.
  bool TakeAddressSlot() {
    if (!service_.per_ip.TryAcquire(client_ip_, service_.limits.max_connections_per_ip)) {
      return false;
    }
    holds_ip_slot_ = true;
    return true;
  }

  void CountAdmissionRefusal(edge::UpgradeRefusal refusal, std::string_view origin) {
    switch (refusal) {
      case edge::UpgradeRefusal::kFullOrDraining:
        service_.metrics.rejected_overload->Increment();
        break;
      case edge::UpgradeRefusal::kOriginNotAllowed:
        service_.metrics.rejected_origin->Increment();
        log::Debug("origin_refused", {{"ip", client_ip_.ToString()}, {"origin", origin}});
        break;
      case edge::UpgradeRefusal::kTooManyFromAddress:
        service_.metrics.rejected_per_ip->Increment();
        log::Debug("per_ip_limit", {{"ip", client_ip_.ToString()}});
        break;
      default:
        break;
    }
  }

  // Writes the refusal, then closes the connection: a refused request gives back its place under
  // --max-connections, its per-address slots and its descriptor as soon as the answer is out (or
  // at the handshake deadline, if the peer does not read it).
  void Refuse(edge::UpgradeRefusal refusal) {
    Enter(WsPhase::kRefused);
    ReleaseIpSlot();
    auto answer = std::make_shared<std::string>(edge::EncodeRefusal(refusal, RetryAfterSeconds()));
    asio::async_write(
        stream_, asio::buffer(*answer),
        [self = this->shared_from_this(), answer](boost::system::error_code, std::size_t) {
          boost::system::error_code ignored;
          self->socket().shutdown(tcp::socket::shutdown_send, ignored);
          // Bytes the peer sent after its request would turn the close into a reset, which can
          // destroy the answer before the peer reads it: read what is there and drop it.
          thread_local std::array<char, 4096> sink;
          for (int i = 0; i < 16 && ::recv(self->socket().native_handle(), sink.data(), sink.size(),
                                           MSG_DONTWAIT) > 0;
               ++i) {
          }
          self->CancelTimer();
          self->Abort();
        });
    if (!edge::IsRetryLater(refusal)) {
      service_.metrics.handshakes_failed[transport_index()]->Increment();
    }
    EndHandshake();
  }

  void OnOpen() {
    EndHandshake();
    // The session holds no read buffer from here on: what the handshake read is freed with it
    // once the frames that came behind the upgrade request are parsed.
    const std::unique_ptr<Handshake> handshake = std::move(handshake_);
    // The handshake deadline goes (its wait completes as cancelled) before anything below can
    // start closing, whose steps make a timer of their own.
    timer_.reset();
    Enter(WsPhase::kOpen);
    if constexpr (!kTls) WatchInLoop();
    service_.metrics.handshakes_ok[transport_index()]->Increment();
    auto self = this->shared_from_this();
    if (peer_ == edge::WsPeer::kClient) {
      service_.metrics.connections[transport_index()]->Increment();
      protocol_ = std::make_unique<service::ClientProtocol>(
          service_, *this, std::weak_ptr<service::SessionHandle>(self), session_id_,
          service_.RegionOf(client_ip_), client_ip_.ToString());
      service_.sessions.Add(session_id_, self);
      if (service_.draining.load(std::memory_order_relaxed)) {
        // Admitted just before the drain began and opened after its goaways went out: told
        // now, so it reconnects elsewhere instead of waiting for the end of the window.
        const proto::ServerMessage goaway = proto::GoAway{"shutdown", 0};
        service_.metrics.messages_sent[goaway.index()]->Increment();
        Send(std::make_shared<const std::string>(proto::Encode(goaway)));
        Close(proto::close_code::kGoingAway, "shutdown");
      }
    } else {
      protocol_ = std::make_unique<service::VideoServerProtocol>(
          service_, *this, std::weak_ptr<service::SessionHandle>(self), session_id_);
    }
    opened_at_ = last_heard_ = SteadyClock::now();
    if (!edge::IsClosingOrDone(phase_)) {  // not told to go at once (the drain above)
      WatchLiveness(static_cast<asio::io_context&>(stream_.get_executor().context()),
                    std::min(service_.limits.hello_timeout, service_.limits.idle_timeout / 2) / 4);
    }
    // Frames the client sent right behind its upgrade request came in with it.
    if (handshake->buffer.size() > 0) {
      const auto data = handshake->buffer.data();
      in_batch_ = true;
      const auto error = reader_.Consume(static_cast<char*>(data.data()), data.size(), *this);
      in_batch_ = false;
      if (error) OnProtocolError(*error);
    }
    if (phase_ == WsPhase::kAborted) return Finish(asio::error::operation_aborted);
    Flush();
    if (phase_ == WsPhase::kAborted) return Finish(asio::error::operation_aborted);
    // Read before waiting: data that came while the answer was written raised no readiness event
    // the session was waiting for.
    OnReadable({});
  }

  // ======== Liveness ========

  // Hello deadline, then the idle timeout: a connection silent for idle_timeout / 2 is pinged, one
  // silent for idle_timeout (a half-open TCP connection, a vanished peer) is dropped. Asked by the
  // thread's sweep (liveness_sweep.h) every quarter of the shortest of those intervals (at most
  // 1 s), whatever the traffic.
  void CheckLiveness(base::SteadyTime now) override {
    if (edge::IsClosingOrDone(phase_)) return StopLivenessChecks();  // closing has its deadlines
    const auto idle = service_.limits.idle_timeout;
    if (!protocol_->authenticated() && now - opened_at_ >= service_.limits.hello_timeout) {
      return Close(proto::close_code::kHelloTimeout, "hello_timeout");
    }
    const auto silent = now - last_heard_;
    if (silent >= idle) return Abort();
    if (silent >= idle / 2 && !pinged_) {
      pinged_ = true;
      Enqueue({nullptr, WsOpcode::kPing});  // in line with the frames
    }
  }

  // Any frame from the peer (a message, a pong, a ping) proves it alive and answers our ping.
  void Heard() {
    last_heard_ = base::WakeClock::Now();
    pinged_ = false;
  }

  // ======== Reading: wait for readiness, then read into a buffer per thread ========

  void WaitReadable(Socket::wait_type what) {
    if (loop_fd_ >= 0) {
      want_read_ = true;  // the next edge (OnReady); the socket was read until empty
      return;
    }
    auto on_readable = [self = this->shared_from_this()](boost::system::error_code ec) {
      self->OnReadable(ec);
    };
    if constexpr (kTls) {
      socket().async_wait(what, InSlot(read_slot_, std::move(on_readable)));
    } else {  // only if the readiness loop refused the descriptor
      socket().async_wait(what, std::move(on_readable));
    }
  }

  // Reads what is there without blocking and parses it. A connection holds no read buffer while
  // it waits: the bytes land in one per thread, and the reader copies only a frame they cut.
  void OnReadable(boost::system::error_code ec) {
    if (phase_ == WsPhase::kFinished) return;
    if (ec) return Finish(ec);
    thread_local std::array<char, std::size_t{64} * 1024> buffer;
    if constexpr (kTls) stream_.connection().BeginReadRound();
    for (int round = 0;; ++round) {
      if (round == kMaxReadsPerWake) {
        Flush();
        if (phase_ == WsPhase::kAborted) return Finish(asio::error::operation_aborted);
        return asio::post(stream_.get_executor(),
                          [self = this->shared_from_this()] { self->OnReadable({}); });
      }
      const IoResult r = ReadNow(buffer.data(), buffer.size());
      if (r.error) return Finish(r.error);
      if (r.wait) {
        Flush();
        if (phase_ == WsPhase::kAborted) return Finish(asio::error::operation_aborted);
        return WaitReadable(*r.wait);
      }
      in_batch_ = true;
      const auto error = reader_.Consume(buffer.data(), r.bytes, *this);
      in_batch_ = false;
      if (error) OnProtocolError(*error);
      if (phase_ == WsPhase::kAborted) return Finish(asio::error::operation_aborted);
      if (r.drained) {
        Flush();
        if (phase_ == WsPhase::kAborted) return Finish(asio::error::operation_aborted);
        return WaitReadable(Socket::wait_read);
      }
    }
  }

  IoResult ReadNow(char* data, std::size_t size) {
    IoResult r;
    if constexpr (kTls) {
      TlsConnection& tls = stream_.connection();
      r = FromTlsStep(tls.Read(data, size));
      r.drained = r.bytes > 0 && tls.ReadDrained();
    } else {
      r = FromSyscall(Socket::wait_read, [&] { return RecvUncancellable(fd(), data, size); });
      if (r.bytes == 0 && !r.wait && !r.error) r.error = asio::error::eof;
      // A short read: the socket was empty, so the next arrival raises an event.
      r.drained = r.bytes > 0 && r.bytes < size;
    }
    return r;
  }

  // ---- edge::WsFrameSink: what the reader parsed ----

  void OnMessage(WsOpcode kind, std::string_view payload) override {
    Heard();
    // Closing: nothing more is acted on; the peer's close is awaited.
    if (edge::IsClosingOrDone(phase_)) return;
    if (kind != WsOpcode::kText) {
      service_.metrics.protocol_closes->Increment();
      return Close(proto::close_code::kUnsupportedData, "binary frames are not supported");
    }
    if (!authenticated_ && ++messages_before_auth_ > kMaxMessagesBeforeAuth) {
      service_.metrics.rejected_before_auth->Increment();
      return Close(proto::close_code::kPolicyViolation, "too many messages before authentication");
    }
    protocol_->OnText(payload);
  }

  // The peer proved who it is: full-size frames from here on; a video server no longer counts
  // against its address (a client does: --max-connections-per-ip is about people behind one IP).
  void Authenticated() override {
    authenticated_ = true;
    reader_.set_max_message_bytes(service_.limits.max_message_bytes);
    if (peer_ == edge::WsPeer::kVideoServer) ReleaseIpSlot();
  }

  void OnPing(std::string_view payload) override {
    Heard();
    if (edge::IsClosingOrDone(phase_)) return;
    // Browsers never flood pings; a peer that does is burning our CPU on pongs.
    const auto now = SteadyClock::now();
    if (now - ping_window_start_ >= std::chrono::seconds(1)) {
      ping_window_start_ = now;
      pings_in_window_ = 0;
    }
    if (++pings_in_window_ > service_.limits.max_pings_per_second) {
      service_.metrics.protocol_closes->Increment();
      return Close(proto::close_code::kPolicyViolation, "ping_flood");
    }
    if (!Fits(payload.size())) return;  // a peer that pings and never reads
    Enqueue({payload.empty() ? nullptr : std::make_shared<const std::string>(payload),
             WsOpcode::kPong});
  }

  void OnPong(std::string_view /*payload*/) override { Heard(); }

  void OnClose(std::uint16_t code, std::string_view /*reason*/) override {
    Heard();
    peer_closed_ = true;
    if (CloseIsOut()) return Teardown();  // the answer to ours
    // Echo the peer's code (RFC 6455 5.5.1); the connection ends once our close is out.
    if (phase_ == WsPhase::kOpen) {
      QueueClose(code == edge::ws_close::kNoStatus ? proto::close_code::kNormal : code, "");
    }
  }

  void OnProtocolError(const edge::WsReadError& error) {
    // The stream cannot be parsed past this point: close with the reason and stop reading.
    if (edge::IsClosingOrDone(phase_)) {
      if (CloseIsOut()) Teardown();  // our close is out; no answer will be readable
      return;
    }
    service_.metrics.protocol_closes->Increment();
    Close(error.close_code, error.reason);
  }

  // ======== Writing: gathered, without waiting while the socket takes it ========

  // One frame always fits an empty queue (a big lookup answer is not a slow consumer); memory
  // stays bounded by the limit plus one frame. Over it, the peer does not read fast enough: it
  // is dropped (false).
  bool Fits(std::size_t size) {
    if (queued_bytes_ == 0 || queued_bytes_ + size <= service_.limits.max_send_queue_bytes) {
      return true;
    }
    service_.metrics.slow_consumer_closes->Increment();
    log::Info(
        "slow_consumer_closed",
        {{"session", session_id_}, {"queued_bytes", queued_bytes_}, {"ip", client_ip_.ToString()}});
    Abort();
    return false;
  }

  void QueueClose(std::uint16_t code, std::string_view reason) {
    Enter(WsPhase::kClosing);
    // The close frame may wait behind a peer that does not read: bound it like the handshake
    // (OnCloseSent and Teardown re-arm the deadline for the steps after it).
    ArmClosingDeadline();
    Enqueue({std::make_shared<const std::string>(edge::EncodeClosePayload(code, reason)),
             WsOpcode::kClose});
  }

  void Enqueue(OutFrame frame) {
    queued_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    if (!in_batch_) Flush();
  }

  // Writes the queue until it is empty or the socket is full; then waits for it to drain. Frames
  // queued while reading a batch go out together, in one write.
  void Flush() {
    if (write_waiting_ || edge::IsAbortedOrFinished(phase_)) return;
    while (!queue_.empty()) {
      const IoResult r = WriteNow();
      if (r.error) return Abort();
      if (r.wait) {
        write_waiting_ = true;
        if (loop_fd_ >= 0) return;  // the next writable edge (OnReady)
        return socket().async_wait(*r.wait,
                                   [self = this->shared_from_this()](boost::system::error_code ec) {
                                     self->write_waiting_ = false;
                                     if (ec) return self->Abort();
                                     self->Flush();
                                   });
      }
      if (Advance(r.bytes)) return OnCloseSent();
    }
  }

  IoResult WriteNow() {
    GatheredWrite gathered;
    IoResult r;
    if constexpr (kTls) {
      // One record per write: the pieces copied together (redone on a retry, which OpenSSL
      // wants with the same bytes, not the same address).
      gathered.From(queue_, front_written_, kTlsWriteBytes);
      thread_local std::array<char, kTlsWriteBytes> record;
      std::size_t n = 0;
      for (std::size_t i = 0; i < gathered.count; ++i) {
        std::memcpy(record.data() + n, gathered.pieces[i].iov_base, gathered.pieces[i].iov_len);
        n += gathered.pieces[i].iov_len;
      }
      r = FromTlsStep(stream_.connection().Write(record.data(), n));
    } else {
      gathered.From(queue_, front_written_, std::numeric_limits<std::size_t>::max());
      msghdr message{};
      message.msg_iov = gathered.pieces.data();
      message.msg_iovlen = gathered.count;
      r = FromSyscall(Socket::wait_write,
                      [&] { return SendmsgUncancellable(fd(), &message, MSG_NOSIGNAL); });
    }
    return r;
  }

  // Takes `bytes` just written off the queue. True when that finished the close frame.
  bool Advance(std::size_t bytes) {
    bool close_done = false;
    while (bytes > 0 && !queue_.empty()) {
      const OutFrame& front = queue_.front();
      std::array<char, edge::kMaxServerFrameHeader> header{};
      const std::size_t total =
          edge::EncodeServerFrameHeader(front.opcode, front.size(), header) + front.size();
      const std::size_t take = std::min(bytes, total - front_written_);
      front_written_ += take;
      bytes -= take;
      if (front_written_ < total) break;
      close_done = close_done || front.opcode == WsOpcode::kClose;
      queued_bytes_ -= front.size();
      front_written_ = 0;
      queue_.pop_front();
    }
    return close_done;
  }

  // ======== Closing ========

  // Our close frame is out (the closing handshake waits for, or has, the peer's).
  bool CloseIsOut() const { return phase_ == WsPhase::kCloseSent || phase_ == WsPhase::kTornDown; }

  void Enter(WsPhase next) {
    assert(edge::IsAllowedTransition(phase_, next) && "WsSession: transition not in ws_phase.h");
    phase_ = next;
  }

  // Each step of closing (our close frame out, the peer's answer, the peer's FIN) gets as long as
  // a handshake; a peer that stalls a step is dropped.
  void ArmClosingDeadline() {
    StopLivenessChecks();
    Timer().expires_after(service_.limits.handshake_timeout);
    Timer().async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Abort();
    });
  }

  void OnCloseSent() {
    Enter(WsPhase::kCloseSent);
    // The answer to the peer's close, or the stream cannot be read any more: nothing to wait for.
    if (peer_closed_ || reader_.done()) return Teardown();
    ArmClosingDeadline();  // for the peer's answer
  }

  // Both closes are out (or the stream is broken): close_notify, then our FIN. The server closes
  // TCP first (RFC 6455 7.1.1), but the descriptor stays until the peer's FIN, with what it still
  // sends read and dropped: closing with unread bytes would send a reset, and a reset can destroy
  // our close frame in the peer's receive buffer before it reads it.
  void Teardown() {
    if (phase_ != WsPhase::kCloseSent) return;
    Enter(WsPhase::kTornDown);
    ArmClosingDeadline();
    SendFin();
  }

  // close_notify first (waiting for room if the socket is full: a FIN before it would read as a
  // truncated TLS stream), then our FIN. A TLS session that cannot send it (failed, or wanting
  // to read first, which TLS 1.3 without renegotiation does not do) gets the FIN alone.
  void SendFin() {
    if (edge::IsAbortedOrFinished(phase_)) return;
    if constexpr (kTls) {
      const IoResult r = FromTlsStep(stream_.connection().Shutdown());
      if (r.wait == Socket::wait_write) {
        return socket().async_wait(Socket::wait_write,
                                   [self = this->shared_from_this()](boost::system::error_code ec) {
                                     if (!ec) self->SendFin();
                                   });
      }
    }
    if (loop_fd_ >= 0) {
      ::shutdown(loop_fd_, SHUT_WR);
      return;
    }
    boost::system::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Tear the connection down now, without a close handshake (write path stuck or broken).
  void Abort() {
    if (edge::IsAbortedOrFinished(phase_)) return;
    Enter(WsPhase::kAborted);
    queue_.clear();
    queued_bytes_ = 0;
    if (loop_fd_ >= 0) {
      CloseWatched();
      // As a closed socket's pending read wait completes with operation_aborted (a write wait
      // has nothing left to write: the loop no longer tells this session anything):
      if (want_read_) {
        want_read_ = false;
        asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
          self->OnReadable(asio::error::operation_aborted);
        });
      }
      return;
    }
    boost::system::error_code ignored;
    socket().close(ignored);  // pending waits complete with operation_aborted
  }

  void Finish(boost::system::error_code ec) {
    if (phase_ == WsPhase::kFinished) return;
    Enter(WsPhase::kFinished);
    CancelTimer();
    StopLivenessChecks();
    if (ec && ec != asio::error::operation_aborted && ec != asio::error::eof &&
        ec != asio::error::connection_reset && ec != asio::error::broken_pipe) {
      log::Debug("session_error", {{"session", session_id_}, {"error", ec.message()}});
    }
    if (protocol_) {  // it was open
      protocol_->OnClosed();
      if (peer_ == edge::WsPeer::kClient) {
        service_.metrics.connections[transport_index()]->Decrement();
        service_.sessions.Remove(session_id_);
      }
    }
    queue_.clear();
    CloseWatched();
    boost::system::error_code ignored;
    socket().close(ignored);
  }

  // ======== The readiness loop (ws once open) ========

  // Hands the open ws connection's descriptor from Asio's reactor to the thread's readiness loop
  // (readiness_loop.h): no re-registration per wait, no per-wait operation. Called at open,
  // before anything is written (no wait of the socket's is pending).
  void WatchInLoop() {
    const int fd = socket().native_handle();
    auto& loop =
        ReadinessLoop::Of(static_cast<asio::io_context&>(stream_.get_executor().context()));
    if (!loop.Add(fd, this, this->shared_from_this())) {
      // The kernel refused (memory, max_user_watches): this connection stays on Asio's reactor.
      log::Warn("readiness_loop_refused", {{"session", session_id_}, {"errno", errno}});
      return;
    }
    boost::system::error_code ec;
    socket().release(ec);  // out of Asio's reactor; nothing of the socket's is pending
    if (ec) {
      loop.Remove(fd);
      return;
    }
    loop_ = &loop;
    loop_fd_ = fd;
  }

  void CloseWatched() {
    if (loop_fd_ < 0) return;
    loop_->Remove(loop_fd_);
    ::close(loop_fd_);
    loop_fd_ = -1;
  }

  // ---- ReadinessWaiter: the session's thread ----

  void OnReady(std::uint32_t events) override {
    if (loop_fd_ < 0) return;  // closed in this batch: its keepalive goes after it
    if (write_waiting_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
      write_waiting_ = false;
      Flush();
    }
    if (want_read_ && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) != 0) {
      want_read_ = false;
      OnReadable({});
    }
  }

  void OnLoopShutdown() override {
    if (loop_fd_ >= 0) ::close(loop_fd_);
    loop_fd_ = -1;
    want_read_ = false;
  }

  NextLayer stream_;
  // What only the opening handshake needs, on the heap until open: an open session holds none.
  struct Handshake {
    beast::flat_buffer buffer;  // the PROXY header and upgrade request
    std::optional<http::request_parser<http::empty_body>> parser;
    edge::IpAddress ip;  // the address holding the per-address handshake slot
  };
  std::unique_ptr<Handshake> handshake_ = std::make_unique<Handshake>();
  // Handshake deadline, delayed closes (goaway), the closing handshake's deadlines; none while
  // open (Timer()).
  std::unique_ptr<SessionTimer> timer_;
  // The wait an idle open wss session always has pending (readable) lives here, not in a block of
  // its own (handler_slot.h); an open ws session waits for readability in the readiness loop
  // instead, with no operation.
  [[no_unique_address]] std::conditional_t<kTls, HandlerSlot<kReadWaitBytes>, std::monostate>
      read_slot_;
  // ws once open: the descriptor, taken from the socket and watched by the thread's readiness
  // loop, and whether the session waits to read there (-1 and false otherwise; a write waits
  // there when write_waiting_).
  ReadinessLoop* loop_ = nullptr;
  int loop_fd_ = -1;
  bool want_read_ = false;
  service::Service& service_;
  const telemetry::Transport transport_;
  const std::uint64_t session_id_;
  edge::WsPeer peer_ = edge::WsPeer::kClient;
  WsPhase phase_ = WsPhase::kHandshake;
  std::unique_ptr<service::SessionProtocol> protocol_;
  edge::WsFrameReader reader_;

  base::FifoQueue<OutFrame> queue_;
  std::size_t queued_bytes_ = 0;
  std::size_t front_written_ = 0;  // bytes of the queue's front frame (header and payload) sent
  bool in_batch_ = false;          // parsing a read: frames queued now are flushed after it
  bool write_waiting_ = false;     // the socket was full; a writability wait is pending
  bool peer_closed_ = false;       // the peer's close frame came in
  SteadyClock::time_point opened_at_{};
  SteadyClock::time_point last_heard_{};       // last frame or control frame from the peer
  bool pinged_ = false;                        // a keep-alive ping is out, nothing heard since
  bool holds_handshake_slot_ = true;           // counts in Service::handshakes_in_flight
  bool holds_ip_slot_ = false;                 // counts in Service::per_ip
  bool holds_address_handshake_slot_ = false;  // counts in Service::handshakes_per_ip
  bool authenticated_ = false;                 // hello or register succeeded
  std::uint32_t messages_before_auth_ = 0;
  edge::IpAddress client_ip_;  // the peer, or who a trusted proxy says it serves
  SteadyClock::time_point ping_window_start_{};
  std::uint32_t pings_in_window_ = 0;
};

}  // namespace

void StartWsSession(tcp::socket socket, service::Service& service, telemetry::Transport transport,
                    const std::shared_ptr<asio::ssl::context>& tls) {
  // Listeners accept on their thread's io_context: rebind the descriptor to its concrete executor.
  const auto* executor = socket.get_executor().target<asio::io_context::executor_type>();
  boost::system::error_code ec;
  const auto protocol = socket.local_endpoint(ec).protocol();
  const auto remote = ec ? asio::ip::address() : socket.remote_endpoint(ec).address();
  // Not accepted on an io_context (cannot happen), or already reset by the peer.
  if (executor == nullptr || ec) return service.ReleaseHandshake();
  const edge::IpAddress peer = remote.is_v4()
                                   ? edge::IpAddress::FromV4Bytes(remote.to_v4().to_bytes())
                                   : edge::IpAddress::FromV6Bytes(remote.to_v6().to_bytes());
  Socket bound(*executor);
  bound.assign(protocol, socket.release(ec), ec);
  if (ec) return service.ReleaseHandshake();
  // Small request/answer frames: no Nagle delay behind a delayed ACK (it stalled TLS
  // handshakes ~40 ms and every answer written while a previous one was unacknowledged).
  bound.set_option(tcp::no_delay(true), ec);
  // The session reads and writes without blocking and waits for readiness itself.
  bound.non_blocking(true, ec);
  if (tls != nullptr) {
    // The SSL object holds its own reference to the context: a reload may drop `tls` afterwards.
    std::make_shared<WsSession<TlsStream>>(std::move(bound), service, transport, tls.get(), peer)
        ->Run();
  } else {
    std::make_shared<WsSession<PlainStream>>(std::move(bound), service, transport, nullptr, peer)
        ->Run();
  }
}

}  // namespace vrouter::net
