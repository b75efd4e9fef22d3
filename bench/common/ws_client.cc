#include "bench/common/ws_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <type_traits>
#include <utility>

#include "router/net/tls_stream.h"

namespace vrouter::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// ws over Beast's tcp_stream (its timer bounds the connect); wss over the router's own TLS stream
// in its client role (OpenSSL on the socket, no per-connection record buffers: the generator
// holds tens of thousands of them), with a timer of its own for the connect and TLS handshake.
template <class Next>
class Conn final : public WsConn, public std::enable_shared_from_this<Conn<Next>> {
 public:
  static constexpr bool kTls = std::is_same_v<Next, net::TlsStream>;

  template <class... Args>
  Conn(const ConnTarget& target, ConnListener* listener, const WsClientOptions& options,
       asio::io_context& io, Args&&... args)
      : target_(target),
        options_(options),
        listener_(listener),
        ws_(std::forward<Args>(args)...),
        timer_(io) {}

  void Start() override {
    times_.started = WsClock::now();
    auto connected = [self = this->shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) {
        self->timer_.cancel();
        return self->Opened(self->TimedOutOr(ec), OpenStage::kConnect);
      }
      self->times_.tcp_connected = WsClock::now();
      beast::error_code ignored;
      self->Socket().set_option(tcp::no_delay(true), ignored);
      if constexpr (kTls) {
        self->TlsHandshake();
      } else {
        self->WsHandshake();
      }
    };
    if constexpr (kTls) {
      timer_.expires_after(options_.connect_timeout);
      timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
        if (ec || self->tls_done_) return;  // cancelled, or too late to matter
        self->timed_out_ = true;
        beast::error_code ignored;
        self->Socket().close(ignored);  // the pending connect or handshake fails
      });
      asio::async_connect(Socket(), target_.endpoints, std::move(connected));
    } else {
      beast::get_lowest_layer(ws_).expires_after(options_.connect_timeout);
      beast::get_lowest_layer(ws_).async_connect(target_.endpoints, std::move(connected));
    }
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
    Socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().close(ignored);
  }

  void Close(std::uint16_t code, std::function<void()> done) override {
    listener_ = nullptr;
    if (!open_) {
      Abort();
      done();
      return;
    }
    open_ = false;  // no more frames; a write in flight finishes first (one write at a time)
    close_code_ = code;
    close_done_ = std::move(done);
    if (!writing_) SendClose();
  }

  const OpenTimes& times() const override { return times_; }

 private:
  // wss: a failure caused by the connect/TLS deadline is reported as the timeout it is.
  beast::error_code TimedOutOr(beast::error_code ec) const {
    return timed_out_ ? beast::error_code(beast::error::timeout) : ec;
  }

  auto& Socket() {
    if constexpr (kTls) {
      return ws_.next_layer().next_layer();
    } else {
      return beast::get_lowest_layer(ws_).socket();
    }
  }

  void TlsHandshake() {
    if constexpr (kTls) {
      auto& tls = ws_.next_layer();
      if (!tls.ExpectServer(target_.host)) {
        timer_.cancel();
        return Opened(make_error_code(boost::system::errc::invalid_argument), OpenStage::kTls);
      }
      tls.async_handshake([self = this->shared_from_this()](beast::error_code ec) {
        self->tls_done_ = !ec;
        if (ec) {
          self->timer_.cancel();
          return self->Opened(self->TimedOutOr(ec), OpenStage::kTls);
        }
        self->WsHandshake();
      });
    }
  }

  void WsHandshake() {
    if constexpr (kTls) {
      timer_.cancel();  // Beast's handshake timeout takes over
    } else {
      beast::get_lowest_layer(ws_).expires_never();
    }
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options_.handshake_timeout;
    if (options_.idle_timeout.count() > 0) {
      // A router that vanished without closing (half-open TCP) is noticed: ping at half of it.
      timeouts.idle_timeout = options_.idle_timeout;
      timeouts.keep_alive_pings = true;
    } else {
      timeouts.idle_timeout = websocket::stream_base::none();
      timeouts.keep_alive_pings = false;
    }
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [subprotocol = options_.subprotocol,
         agent = options_.user_agent](websocket::request_type& req) {
          req.set(http::field::sec_websocket_protocol, subprotocol);
          req.set(http::field::user_agent, agent);
        }));
    response_ = std::make_unique<websocket::response_type>();
    ws_.async_handshake(*response_, target_.host_header, target_.path,
                        [self = this->shared_from_this()](beast::error_code ec) {
                          auto response = std::move(self->response_);
                          if (ec) {
                            if (ec == websocket::error::upgrade_declined) {
                              self->http_status_ = response->result_int();
                            }
                            return self->Opened(ec, OpenStage::kWebSocket);
                          }
                          const auto sub = (*response)[http::field::sec_websocket_protocol];
                          if (sub != self->options_.subprotocol) {
                            self->detail_ = "router chose subprotocol '" + std::string(sub) + "'";
                            return self->Opened(
                                make_error_code(boost::system::errc::protocol_error),
                                OpenStage::kWebSocket);
                          }
                          self->open_ = true;
                          self->times_.opened = WsClock::now();
                          self->Opened({}, OpenStage::kOpen);
                          self->ReadNext();
                        });
  }

  void Opened(beast::error_code ec, OpenStage stage) {
    if (listener_ == nullptr) return;
    OpenResult result{ec, stage, http_status_, std::move(detail_)};
    auto* l = listener_;
    if (ec) listener_ = nullptr;
    l->OnOpen(result);
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
    ws_.async_close(websocket::close_reason(close_code_),
                    [self = this->shared_from_this()](beast::error_code) {
                      beast::error_code ignored;
                      self->Socket().close(ignored);
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
                          beast::error_code ignored;
                          self->Socket().close(ignored);
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
    beast::error_code ignored;
    Socket().close(ignored);
    l->OnClosed(ec, code, std::string(reason.reason.c_str()));
  }

  const ConnTarget& target_;  // owned by the tool, outlives every connection
  const WsClientOptions& options_;
  ConnListener* listener_;
  websocket::stream<Next> ws_;
  asio::steady_timer timer_;                            // wss: connect and TLS handshake deadline
  std::unique_ptr<websocket::response_type> response_;  // during the handshake only
  beast::flat_buffer buffer_;
  std::deque<std::string> outbox_;
  std::string detail_;
  std::function<void()> close_done_;  // set by Close()
  OpenTimes times_;
  int http_status_ = 0;
  std::uint16_t close_code_ = 1000;
  bool open_ = false;
  bool writing_ = false;
  bool timed_out_ = false;  // wss: the connect/TLS deadline closed the socket
  bool tls_done_ = false;   // wss: past the TLS handshake, the deadline no longer applies
};

}  // namespace

std::string OpenResult::Describe() const {
  if (!ec) return "open";
  std::string s;
  switch (stage) {
    case OpenStage::kConnect:
      s = "connect";
      break;
    case OpenStage::kTls:
      s = "TLS handshake";
      break;
    case OpenStage::kWebSocket:
    case OpenStage::kOpen:
      s = "WebSocket handshake";
      break;
  }
  if (http_status != 0) s += " (HTTP " + std::to_string(http_status) + ")";
  if (!detail.empty()) s += " (" + detail + ")";
  return s + " failed: " + ec.message();
}

std::shared_ptr<WsConn> MakeWsConn(asio::io_context& io, const ConnTarget& target,
                                   ConnListener* listener, ssl::context* tls,
                                   const WsClientOptions& options) {
  if (tls != nullptr) {
    return std::make_shared<Conn<net::TlsStream>>(target, listener, options, io,
                                                  net::Socket(io.get_executor()),
                                                  tls->native_handle(), net::TlsRole::kClient);
  }
  return std::make_shared<Conn<beast::tcp_stream>>(target, listener, options, io, io);
}

std::string HostHeader(std::string_view host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string h(host);
  return (v6 ? "[" + h + "]" : h) + ":" + std::to_string(port);
}

std::variant<std::unique_ptr<ssl::context>, std::string> MakeClientTls(const std::string& ca_file) {
  auto tls = std::make_unique<ssl::context>(ssl::context::tls_client);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_options(tls->native_handle(), SSL_OP_NO_RENEGOTIATION);  // see router/net/tls.cc
  if (ca_file.empty()) {
    tls->set_verify_mode(ssl::verify_none);
    return tls;
  }
  beast::error_code ec;
  tls->load_verify_file(ca_file, ec);
  if (ec) return "'" + ca_file + "': " + ec.message();
  tls->set_verify_mode(ssl::verify_peer);
  return tls;
}

}  // namespace vrouter::bench
