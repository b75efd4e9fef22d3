#include "router/net/ws_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <optional>
#include <random>

#include "proto/fleet_messages.h"
#include "proto/messages.h"
#include "router/core/forwarded_for.h"
#include "router/core/frame_queue.h"
#include "router/core/log.h"
#include "router/core/proxy_protocol.h"
#include "router/net/client_protocol.h"
#include "router/net/tls_stream.h"
#include "router/net/video_server_protocol.h"

namespace vrouter::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// A bare socket (net::Socket) bound to its io_context's executor type (not any_io_executor, not
// Beast's tcp_stream): every read and write would otherwise copy a type-erased executor and re-arm
// tcp_stream's timer. Deadlines are the session's own timer (below), not per operation. wss is
// TlsStream (OpenSSL on that socket, no per-connection record buffers; tls_stream.h).
using PlainStream = Socket;
using SteadyClock = std::chrono::steady_clock;

// Upgrade requests are a few hundred bytes; 8 KiB of headers is generous and bounds a slowloris.
constexpr std::uint32_t kMaxUpgradeHeaderBytes = 8 * 1024;

// Jittered Retry-After for 503s, so a refused storm does not come back in lockstep.
int RetryAfterSeconds() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return std::uniform_int_distribution<int>(2, 10)(rng);
}

// Who is on the other end, from the upgrade path.
enum class Peer { kClient, kVideoServer };

// True when the Sec-WebSocket-Protocol offer is absent or includes `wanted`.
bool OffersSubprotocol(std::string_view offer, std::string_view wanted, bool& present) {
  present = !offer.empty();
  if (!present) return true;
  while (!offer.empty()) {
    const auto comma = offer.find(',');
    std::string_view token = offer.substr(0, comma);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token == wanted) return true;
    if (comma == std::string_view::npos) break;
    offer.remove_prefix(comma + 1);
  }
  return false;
}

template <class NextLayer>
class WsSession final : public SessionHandle,
                        public SessionTransport,
                        public std::enable_shared_from_this<WsSession<NextLayer>> {
 public:
  WsSession(Socket socket, Service& service, core::Transport transport, asio::ssl::context* tls,
            const core::IpAddress& peer)
      : ws_(MakeStream(std::move(socket), tls)),
        timer_(ws_.get_executor()),
        service_(service),
        transport_(transport),
        session_id_(service.next_session_id.fetch_add(1, std::memory_order_relaxed)),
        client_ip_(peer) {
    // The handshake slot was reserved by the listener (Service::ReserveHandshake).
    service_.open_connections.fetch_add(1, std::memory_order_relaxed);
    service_.metrics.handshakes_in_flight->Increment();
  }

  ~WsSession() override {
    EndHandshake();
    if (ip_counted_) service_.per_ip.Release(client_ip_);
    service_.open_connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void Run() {
    // PROXY header, TLS handshake and upgrade request within handshake_timeout (slowloris);
    // Beast's own handshake timeout then covers the WebSocket accept and, later, the closing
    // handshake.
    timer_.expires_after(service_.limits.handshake_timeout);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec && !self->open_) self->Abort();
    });
    // Only a trusted balancer may say who the client is; anyone else is the client itself (and
    // a PROXY header it sends is garbage to TLS and HTTP: the handshake fails).
    if (service_.proxy_protocol && service_.trusted_proxies.Contains(client_ip_)) {
      return ReadProxyHeader();
    }
    StartHandshake();
  }

  // ---- SessionHandle: any thread ----
  void Push(core::Frame frame) override {
    asio::post(ws_.get_executor(),
               [self = this->shared_from_this(), frame = std::move(frame)]() mutable {
                 self->Send(std::move(frame));
               });
  }
  void CloseAsync(std::uint16_t code, std::string reason,
                  std::chrono::milliseconds delay) override {
    asio::post(ws_.get_executor(),
               [self = this->shared_from_this(), code, reason = std::move(reason), delay] {
                 if (self->finished_) return;
                 if (delay.count() <= 0) return self->Close(code, reason);
                 // Replaces the liveness checks: the connection is on its way out.
                 self->timer_.expires_after(delay);
                 self->timer_.async_wait([self, code, reason](beast::error_code ec) {
                   if (!ec) self->Close(code, reason);
                 });
               });
  }

  // ---- SessionTransport: session thread ----
  void Send(core::Frame frame) override {
    if (closing_ || finished_) return;
    // One frame always fits an empty queue (a big lookup answer is not a slow consumer); memory
    // stays bounded by the limit plus one frame.
    if (queued_bytes_ > 0 && queued_bytes_ + frame->size() > service_.limits.max_send_queue_bytes) {
      // The client does not read fast enough. Memory stays bounded: drop the connection.
      service_.metrics.slow_consumer_closes->Increment();
      log::Info("slow_consumer_closed", {{"session", session_id_},
                                         {"queued_bytes", queued_bytes_},
                                         {"ip", client_ip_.ToString()}});
      return Abort();
    }
    Enqueue(std::move(frame));
  }

  void Dispatch(std::function<void()> fn) override {
    asio::dispatch(ws_.get_executor(),
                   [self = this->shared_from_this(), fn = std::move(fn)] { fn(); });
  }

  void Close(std::uint16_t code, std::string_view reason) override {
    if (closing_ || finished_ || pending_close_) return;
    pending_close_.emplace(code, std::string(reason));
    if (!writing_) SendClose();
  }

 private:
  static websocket::stream<NextLayer> MakeStream(Socket socket, asio::ssl::context* tls) {
    if constexpr (std::is_same_v<NextLayer, TlsStream>) {
      return websocket::stream<NextLayer>(std::move(socket), tls->native_handle());
    } else {
      (void)tls;
      return websocket::stream<NextLayer>(std::move(socket));
    }
  }

  int transport_index() const { return static_cast<int>(transport_); }

  void HandshakeFailed(std::string_view stage, beast::error_code ec) {
    // The deadline timer holds the session: cancel it, or a peer that left mid-handshake would
    // keep its descriptor and its place under --max-connections until the deadline.
    timer_.cancel();
    Abort();
    service_.metrics.handshakes_failed[transport_index()]->Increment();
    log::Debug("handshake_failed",
               {{"stage", stage}, {"error", ec.message()}, {"ip", client_ip_.ToString()}});
  }

  // The handshake is over (opened, refused or failed): it no longer counts against
  // --max-handshakes.
  void EndHandshake() {
    if (!in_handshake_) return;
    in_handshake_ = false;
    service_.ReleaseHandshake();
    service_.metrics.handshakes_in_flight->Decrement();
  }

  // PROXY protocol v1/v2 from a trusted balancer: read until a whole header is in, take the
  // client address from it, and hand whatever followed it to TLS or HTTP.
  void ReadProxyHeader() {
    beast::get_lowest_layer(ws_).async_read_some(
        buffer_.prepare(512),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec) return self->HandshakeFailed("proxy_header", ec);
          self->buffer_.commit(n);
          const auto data = self->buffer_.cdata();
          const auto result =
              core::ParseProxyHeader({static_cast<const std::uint8_t*>(data.data()), data.size()});
          switch (result.status) {
            case core::ProxyParseStatus::kNeedMore:
              if (data.size() >= core::kMaxProxyHeaderBytes) {
                return self->ProxyHeaderRefused("header longer than the PROXY protocol allows");
              }
              return self->ReadProxyHeader();
            case core::ProxyParseStatus::kError:
              return self->ProxyHeaderRefused(result.error);
            case core::ProxyParseStatus::kOk:
              // LOCAL: the balancer's own health check; the connection is who it is.
              if (!result.header.local && result.header.source) {
                self->client_ip_ = *result.header.source;
              }
              self->buffer_.consume(result.header.length);
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
    if constexpr (std::is_same_v<NextLayer, TlsStream>) {
      // Bytes read with the PROXY header belong to the ClientHello.
      if (buffer_.size() > 0) {
        const auto data = buffer_.cdata();
        ws_.next_layer().Prepend({static_cast<const char*>(data.data()), data.size()});
        buffer_.clear();
        buffer_.shrink_to_fit();
      }
      ws_.next_layer().async_handshake([self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->HandshakeFailed("tls_handshake", ec);
        self->ReadUpgrade();
      });
    } else {
      ReadUpgrade();  // bytes after a PROXY header are the start of the request, in buffer_
    }
  }

  void ReadUpgrade() {
    parser_ = std::make_unique<http::request_parser<http::empty_body>>();
    parser_->header_limit(kMaxUpgradeHeaderBytes);
    parser_->body_limit(0);
    http::async_read(ws_.next_layer(), buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->HandshakeFailed("http_read", ec);
                       self->OnUpgradeRequest();
                     });
  }

  void OnUpgradeRequest() {
    const auto& req = parser_->get();
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    bool offered = false;
    if (target == proto::kClientPath) {
      peer_ = Peer::kClient;
    } else if (target == proto::kVideoServerPath) {
      peer_ = Peer::kVideoServer;
    } else {
      return Refuse(http::status::not_found,
                    "unknown path; clients connect to /v1/client, video servers to "
                    "/v1/video-server\n");
    }
    if (!websocket::is_upgrade(req)) {
      return Refuse(http::status::upgrade_required, "this endpoint speaks WebSocket only\n");
    }
    const std::string_view subprotocol =
        peer_ == Peer::kClient ? proto::kSubprotocol : proto::kVideoSubprotocol;
    if (!OffersSubprotocol(req[http::field::sec_websocket_protocol], subprotocol, offered)) {
      return Refuse(http::status::bad_request,
                    "subprotocol " + std::string(subprotocol) + " required\n");
    }
    if (service_.draining.load(std::memory_order_relaxed) ||
        service_.open_connections.load(std::memory_order_relaxed) >
            service_.limits.max_connections) {
      service_.metrics.rejected_overload->Increment();
      return Refuse(http::status::service_unavailable, "replica full or draining; retry later\n");
    }
    if (peer_ == Peer::kClient && !AdmitClient(req)) return;
    // No idle timeout in Beast: it would re-arm a timer on every read. CheckLiveness does it.
    websocket::stream_base::timeout timeouts{service_.limits.handshake_timeout,
                                             websocket::stream_base::none(),
                                             /*keep_alive_pings=*/false};
    ws_.set_option(timeouts);
    ws_.read_message_max(service_.limits.max_message_bytes);
    ws_.auto_fragment(false);
    ws_.text(true);
    ws_.set_option(
        websocket::stream_base::decorator([offered, subprotocol](websocket::response_type& res) {
          res.set(http::field::server, "vrouter");
          if (offered) res.set(http::field::sec_websocket_protocol, subprotocol);
        }));
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
      Heard();
      if (kind == websocket::frame_type::ping) OnPing();
    });
    ws_.async_accept(parser_->release(), [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->HandshakeFailed("ws_accept", ec);
      self->OnOpen();
    });
  }

  // Client IP behind trusted proxies, browser origin, per-IP limit. False after a refusal.
  bool AdmitClient(const http::request<http::empty_body>& req) {
    if (!service_.trusted_proxies.empty() && service_.trusted_proxies.Contains(client_ip_)) {
      std::string forwarded;
      const auto [first, last] = req.equal_range("X-Forwarded-For");
      for (auto it = first; it != last; ++it) {
        if (!forwarded.empty()) forwarded += ',';
        forwarded += it->value();
      }
      if (!forwarded.empty()) {
        client_ip_ = core::ClientFromForwardedFor(forwarded, client_ip_, service_.trusted_proxies)
                         .value_or(client_ip_);
      }
    }
    const auto& origins = service_.allowed_origins;
    const std::string_view origin = req[http::field::origin];
    if (!origins.empty() && !origin.empty() &&
        std::find(origins.begin(), origins.end(), origin) == origins.end()) {
      // A page on another site trying to use this user's browser (cross-site WebSocket
      // hijacking); non-browser clients send no Origin.
      service_.metrics.rejected_origin->Increment();
      log::Debug("origin_refused", {{"ip", client_ip_.ToString()}, {"origin", origin}});
      Refuse(http::status::forbidden, "origin not allowed\n");
      return false;
    }
    if (service_.limits.max_connections_per_ip > 0) {
      if (!service_.per_ip.TryAcquire(client_ip_, service_.limits.max_connections_per_ip)) {
        service_.metrics.rejected_per_ip->Increment();
        log::Debug("per_ip_limit", {{"ip", client_ip_.ToString()}});
        Refuse(http::status::too_many_requests, "too many connections from this address\n");
        return false;
      }
      ip_counted_ = true;
    }
    return true;
  }

  void Refuse(http::status status, std::string body) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "vrouter");
    res->set(http::field::content_type, "text/plain");
    const bool retry_later =
        status == http::status::service_unavailable || status == http::status::too_many_requests;
    if (retry_later) res->set(http::field::retry_after, std::to_string(RetryAfterSeconds()));
    if (status == http::status::upgrade_required) res->set(http::field::upgrade, "websocket");
    res->keep_alive(false);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(ws_.next_layer(), *res,
                      [self = this->shared_from_this(), res](beast::error_code, std::size_t) {
                        beast::error_code ignored;
                        beast::get_lowest_layer(self->ws_).shutdown(tcp::socket::shutdown_both,
                                                                    ignored);
                      });
    if (!retry_later) service_.metrics.handshakes_failed[transport_index()]->Increment();
    EndHandshake();
  }

  void OnOpen() {
    EndHandshake();
    parser_.reset();
    buffer_.clear();
    buffer_.shrink_to_fit();
    open_ = true;
    service_.metrics.handshakes_ok[transport_index()]->Increment();
    auto self = this->shared_from_this();
    if (peer_ == Peer::kClient) {
      service_.metrics.connections[transport_index()]->Increment();
      protocol_ =
          std::make_unique<ClientProtocol>(service_, *this, std::weak_ptr<SessionHandle>(self),
                                           session_id_, service_.RegionOf(client_ip_));
      service_.sessions.Add(session_id_, self);
    } else {
      protocol_ = std::make_unique<VideoServerProtocol>(
          service_, *this, std::weak_ptr<SessionHandle>(self), session_id_);
    }
    opened_at_ = last_heard_ = SteadyClock::now();
    ScheduleLivenessCheck(
        opened_at_ + std::min(service_.limits.hello_timeout, service_.limits.idle_timeout / 2));
    Read();
  }

  // Hello deadline, then the idle timeout: a connection silent for idle_timeout / 2 is pinged, one
  // silent for idle_timeout (a half-open TCP connection, a vanished peer) is dropped. One timer
  // wake-up per half idle period, whatever the traffic.
  void ScheduleLivenessCheck(SteadyClock::time_point at) {
    timer_.expires_at(at);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec) self->CheckLiveness();
    });
  }

  void CheckLiveness() {
    if (finished_ || closing_ || pending_close_) return;
    const auto now = SteadyClock::now();
    const auto idle = service_.limits.idle_timeout;
    if (!protocol_->authenticated() && now - opened_at_ >= service_.limits.hello_timeout) {
      return Close(proto::close_code::kHelloTimeout, "hello_timeout");
    }
    const auto silent = now - last_heard_;
    if (silent >= idle) return Abort();
    if (silent >= idle / 2 && !pinged_) {
      pinged_ = true;
      Enqueue(nullptr);  // a ping, in line with the frames
    }
    auto next = last_heard_ + (pinged_ ? idle : idle / 2);
    if (!protocol_->authenticated()) {
      next = std::min(next, opened_at_ + service_.limits.hello_timeout);
    }
    ScheduleLivenessCheck(std::max(next, now + std::chrono::milliseconds(1)));
  }

  // Anything from the peer (a frame, a pong, a ping) proves it alive and answers our ping.
  void Heard() {
    last_heard_ = SteadyClock::now();
    pinged_ = false;
  }

  void OnPing() {
    // Browsers never flood pings; a peer that does is burning our CPU on pongs.
    const auto now = std::chrono::steady_clock::now();
    if (now - ping_window_start_ >= std::chrono::seconds(1)) {
      ping_window_start_ = now;
      pings_in_window_ = 0;
    }
    if (++pings_in_window_ > service_.limits.max_pings_per_second) {
      if (!pending_close_) service_.metrics.protocol_closes->Increment();
      Close(proto::close_code::kPolicyViolation, "ping_flood");
    }
  }

  void Read() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return Finish(ec);
    Heard();
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      service_.metrics.protocol_closes->Increment();
      Close(proto::close_code::kUnsupportedData, "binary frames are not supported");
    } else if (!closing_ && !pending_close_) {
      const auto data = buffer_.cdata();
      protocol_->OnText(std::string_view(static_cast<const char*>(data.data()), data.size()));
      buffer_.consume(buffer_.size());
    } else {
      buffer_.consume(buffer_.size());  // closing: drain until the peer's close frame
    }
    if (!finished_) Read();
  }

  // A null frame is a ping.
  void Enqueue(core::Frame frame) {
    if (frame) queued_bytes_ += frame->size();
    queue_.push_back(std::move(frame));
    if (!writing_) Write();
  }

  void Write() {
    writing_ = true;
    if (!queue_.front()) {
      ws_.async_ping(
          {}, [self = this->shared_from_this()](beast::error_code ec) { self->OnWrite(ec); });
      return;
    }
    ws_.async_write(asio::buffer(*queue_.front()),
                    [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                      self->OnWrite(ec);
                    });
  }

  void OnWrite(beast::error_code ec) {
    writing_ = false;
    if (ec) return Abort();
    if (queue_.front()) queued_bytes_ -= queue_.front()->size();
    queue_.pop_front();
    if (finished_) return;
    if (!queue_.empty()) return Write();
    if (pending_close_) SendClose();
  }

  void SendClose() {
    closing_ = true;
    if (pending_close_->first == proto::close_code::kMessageTooBig ||
        pending_close_->first == proto::close_code::kPolicyViolation ||
        pending_close_->first == proto::close_code::kUnsupportedData) {
      log::Debug("protocol_close", {{"session", session_id_}, {"code", pending_close_->first}});
    }
    websocket::close_reason reason(static_cast<websocket::close_code>(pending_close_->first),
                                   pending_close_->second);
    ws_.async_close(reason, [self = this->shared_from_this()](beast::error_code) {
      // The pending read completes with `closed` (or a timeout) and finishes the session.
    });
  }

  // Tear the connection down now, without a close handshake (write path stuck or broken).
  void Abort() {
    if (aborted_) return;
    aborted_ = true;
    closing_ = true;
    queue_.clear();
    queued_bytes_ = 0;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).close(ignored);
  }

  void Finish(beast::error_code ec) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    if (ec != websocket::error::closed && ec != asio::error::operation_aborted &&
        ec != beast::error::timeout && ec != asio::error::eof &&
        ec != asio::error::connection_reset) {
      if (ec == websocket::error::message_too_big) {
        service_.metrics.protocol_closes->Increment();  // Beast already sent close 1009
      } else {
        log::Debug("session_error", {{"session", session_id_}, {"error", ec.message()}});
      }
    }
    if (open_) {
      protocol_->OnClosed();
      if (peer_ == Peer::kClient) {
        service_.metrics.connections[transport_index()]->Decrement();
        service_.sessions.Remove(session_id_);
      }
    }
    if (!aborted_ && !closing_) {
      // Read failed without a close handshake (reset, timeout): make sure the socket goes.
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).close(ignored);
    }
  }

  websocket::stream<NextLayer> ws_;
  beast::flat_buffer buffer_;
  std::unique_ptr<http::request_parser<http::empty_body>> parser_;  // during the handshake
  // Handshake deadline, then hello deadline and idle checks, then delayed closes (goaway).
  asio::steady_timer timer_;
  Service& service_;
  const core::Transport transport_;
  const std::uint64_t session_id_;
  Peer peer_ = Peer::kClient;
  std::unique_ptr<SessionProtocol> protocol_;

  core::FifoQueue<core::Frame> queue_;
  std::size_t queued_bytes_ = 0;
  std::optional<std::pair<std::uint16_t, std::string>> pending_close_;
  bool writing_ = false;
  bool closing_ = false;
  bool aborted_ = false;
  bool finished_ = false;
  bool open_ = false;
  SteadyClock::time_point opened_at_{};
  SteadyClock::time_point last_heard_{};  // last frame or control frame from the peer
  bool pinged_ = false;                   // a keep-alive ping is out, nothing heard since
  bool in_handshake_ = true;              // counts in Service::handshakes_in_flight
  bool ip_counted_ = false;               // counts in Service::per_ip
  core::IpAddress client_ip_;             // the peer, or who a trusted proxy says it serves
  std::chrono::steady_clock::time_point ping_window_start_{};
  std::uint32_t pings_in_window_ = 0;
};

}  // namespace

void StartWsSession(tcp::socket socket, Service& service, core::Transport transport,
                    const std::shared_ptr<asio::ssl::context>& tls) {
  // Listeners accept on their thread's io_context: rebind the descriptor to its concrete executor.
  const auto* executor = socket.get_executor().target<asio::io_context::executor_type>();
  boost::system::error_code ec;
  const auto protocol = socket.local_endpoint(ec).protocol();
  const auto remote = ec ? asio::ip::address() : socket.remote_endpoint(ec).address();
  // Not accepted on an io_context (cannot happen), or already reset by the peer.
  if (executor == nullptr || ec) return service.ReleaseHandshake();
  const core::IpAddress peer = remote.is_v4()
                                   ? core::IpAddress::FromV4Bytes(remote.to_v4().to_bytes())
                                   : core::IpAddress::FromV6Bytes(remote.to_v6().to_bytes());
  Socket bound(*executor);
  bound.assign(protocol, socket.release(ec), ec);
  if (ec) return service.ReleaseHandshake();
  // Small request/answer frames: no Nagle delay behind a delayed ACK (it stalled TLS
  // handshakes ~40 ms and every answer written while a previous one was unacknowledged).
  bound.set_option(tcp::no_delay(true), ec);
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
