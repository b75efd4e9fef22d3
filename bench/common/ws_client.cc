#include "bench/common/ws_client.h"

#include <openssl/evp.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/error.hpp>
#include <cstring>
#include <random>
#include <type_traits>
#include <utility>

#include "router/base/result.h"
#include "router/edge/ws_frame.h"
#include "router/net/nonblocking_io.h"
#include "router/net/tls_stream.h"

namespace vrouter::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using edge::WsOpcode;
using net::FromSyscall;
using net::FromTlsStep;
using net::IoResult;
using tcp = asio::ip::tcp;

// The router's answers are small; anything near this is a broken stream.
constexpr std::size_t kMaxMessageBytes = std::size_t{16} * 1024 * 1024;
constexpr int kMaxReadsPerWake = 16;

// Masking keys and handshake keys: not a security boundary here (RFC 6455 wants them
// unpredictable to proxies; the harness talks to its own router on loopback).
std::uint32_t RandomWord() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<std::uint32_t>(rng());
}

std::string RandomWebSocketKey() {
  std::array<unsigned char, 16> raw{};
  for (std::size_t i = 0; i < raw.size(); i += 4) {
    const std::uint32_t word = RandomWord();
    std::memcpy(raw.data() + i, &word, 4);
  }
  std::array<unsigned char, 25> encoded{};  // 4 * ceil(16 / 3) + NUL
  EVP_EncodeBlock(encoded.data(), raw.data(), static_cast<int>(raw.size()));
  return std::string(reinterpret_cast<const char*>(encoded.data()), 24);
}

// Appends one unfragmented, masked client frame (RFC 6455 5.2-5.3) to `out`.
void AppendClientFrame(WsOpcode opcode, std::string_view payload, std::string& out) {
  const std::size_t n = payload.size();
  out.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode)));
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  }
  const std::uint32_t key32 = RandomWord();
  std::array<char, 4> key{};
  std::memcpy(key.data(), &key32, 4);
  out.append(key.data(), 4);
  const std::size_t at = out.size();
  out.append(payload);
  for (std::size_t i = 0; i < n; ++i) out[at + i] = static_cast<char>(out[at + i] ^ key[i % 4]);
}

// One connection over a bare socket (ws) or the router's TLS stream in its client role (wss),
// framed like the router frames its side (edge::WsFrameReader, readiness waits, non-blocking
// reads into a buffer per thread, writes without waiting while the socket takes them). A
// generator holds tens of thousands of these and drives one lookup per message: Beast's
// websocket::stream cost it a composed operation per message and more CPU per lookup than the
// router it measures, on the same 2 cores. Beast still reads the HTTP answer to the upgrade.
template <bool kTls>
class Conn final : public WsConn,
                   public edge::WsFrameSink,
                   public std::enable_shared_from_this<Conn<kTls>> {
 public:
  using Stream = std::conditional_t<kTls, net::TlsStream, net::Socket>;

  template <class... Args>
  Conn(const ConnTarget& target, ConnListener* listener, const WsClientOptions& options,
       asio::io_context& io, Args&&... args)
      : target_(target),
        options_(options),
        listener_(listener),
        stream_(std::forward<Args>(args)...),
        timer_(io),
        reader_(kMaxMessageBytes, edge::WsFramesFrom::kServer) {}

  void Start() override {
    times_.started = WsClock::now();
    ArmOpeningDeadline(options_.connect_timeout);
    asio::async_connect(
        Socket(), target_.endpoints,
        [self = this->shared_from_this()](boost::system::error_code ec, const tcp::endpoint&) {
          if (ec) return self->Opened(self->TimedOutOr(ec), OpenStage::kConnect);
          self->times_.tcp_connected = WsClock::now();
          boost::system::error_code ignored;
          self->Socket().set_option(tcp::no_delay(true), ignored);
          if constexpr (kTls) {
            self->TlsHandshake();
          } else {
            self->Upgrade();
          }
        });
  }

  void Send(std::string frame) override {
    if (!open_ || closing_) return;
    AppendClientFrame(WsOpcode::kText, frame, out_);
    if (!in_batch_) Flush();
  }

  void Abort() override {
    listener_ = nullptr;
    open_ = false;
    Shut();
  }

  void Close(std::uint16_t code, std::function<void()> done) override {
    listener_ = nullptr;
    if (!open_ || closing_) {
      Abort();
      done();
      return;
    }
    closing_ = true;
    close_done_ = std::move(done);
    // The router answers with its close frame, then ends TCP; give it a handshake's time.
    ArmDeadline(options_.handshake_timeout, [](Conn& c) { c.FinishClose(); });
    AppendClientFrame(WsOpcode::kClose, edge::EncodeClosePayload(code, ""), out_);
    if (!in_batch_) Flush();
  }

  const OpenTimes& times() const override { return times_; }

 private:
  net::Socket& Socket() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  // ======== Opening: TCP, TLS, then the HTTP upgrade ========

  // Until open, one deadline at a time (connect and TLS, then the upgrade) closes the socket:
  // the pending operation fails and is reported as the timeout it is.
  void ArmOpeningDeadline(std::chrono::milliseconds after) {
    ArmDeadline(after, [](Conn& c) {
      c.timed_out_ = true;
      boost::system::error_code ignored;
      c.Socket().close(ignored);
    });
  }

  template <class OnExpiry>
  void ArmDeadline(std::chrono::milliseconds after, OnExpiry on_expiry) {
    timer_.expires_after(after);
    timer_.async_wait([self = this->shared_from_this(), on_expiry](boost::system::error_code ec) {
      if (!ec) on_expiry(*self);
    });
  }

  boost::system::error_code TimedOutOr(boost::system::error_code ec) const {
    return timed_out_ ? boost::system::error_code(beast::error::timeout) : ec;
  }

  void TlsHandshake() {
    if constexpr (kTls) {
      if (!stream_.ExpectServer(target_.host)) {
        return Opened(make_error_code(boost::system::errc::invalid_argument), OpenStage::kTls);
      }
      stream_.async_handshake([self = this->shared_from_this()](boost::system::error_code ec) {
        if (ec) return self->Opened(self->TimedOutOr(ec), OpenStage::kTls);
        self->Upgrade();
      });
    }
  }

  void Upgrade() {
    ArmOpeningDeadline(options_.handshake_timeout);
    key_ = RandomWebSocketKey();
    request_ = "GET " + target_.path + " HTTP/1.1\r\nHost: " + target_.host_header +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key_ +
               "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + options_.subprotocol +
               "\r\nUser-Agent: " + options_.user_agent + "\r\n\r\n";
    asio::async_write(stream_, asio::buffer(request_),
                      [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return self->Opened(self->TimedOutOr(ec), OpenStage::kWebSocket);
                        self->ReadUpgradeAnswer();
                      });
  }

  void ReadUpgradeAnswer() {
    parser_ = std::make_unique<http::response_parser<http::string_body>>();
    parser_->body_limit(std::uint64_t{64} * 1024);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->Opened(self->TimedOutOr(ec), OpenStage::kWebSocket);
                       self->OnUpgradeAnswer();
                     });
  }

  void OnUpgradeAnswer() {
    const auto answer = parser_->release();
    parser_.reset();
    request_ = {};
    if (answer.result() != http::status::switching_protocols) {
      http_status_ = static_cast<int>(answer.result_int());
      return Opened(beast::websocket::error::upgrade_declined, OpenStage::kWebSocket);
    }
    const auto bad = make_error_code(boost::system::errc::protocol_error);
    if (answer[http::field::sec_websocket_accept] != edge::WebSocketAcceptKey(key_)) {
      detail_ = "wrong Sec-WebSocket-Accept";
      return Opened(bad, OpenStage::kWebSocket);
    }
    if (const auto sub = answer[http::field::sec_websocket_protocol]; sub != options_.subprotocol) {
      detail_ = "router chose subprotocol '" + std::string(sub) + "'";
      return Opened(bad, OpenStage::kWebSocket);
    }
    timer_.cancel();
    boost::system::error_code ignored;
    Socket().non_blocking(true, ignored);
    open_ = true;
    times_.opened = last_heard_ = WsClock::now();
    Opened({}, OpenStage::kOpen);
    if (!open_) return;  // the listener closed it at once
    if (options_.idle_timeout.count() > 0) ScheduleLivenessCheck();
    // Frames that came in with the answer.
    if (buffer_.size() > 0) {
      auto data = buffer_.data();
      Parse(static_cast<char*>(data.data()), data.size());
    }
    buffer_ = {};
    if (Socket().is_open()) OnReadable({});
  }

  void Opened(boost::system::error_code ec, OpenStage stage) {
    if (ec) {
      timer_.cancel();
      Shut();
    }
    if (listener_ == nullptr) return;
    OpenResult result{ec, stage, http_status_, std::move(detail_)};
    auto* l = listener_;
    if (ec) listener_ = nullptr;
    l->OnOpen(result);
  }

  // ======== Liveness: a router that vanished (half-open TCP) is noticed ========

  void ScheduleLivenessCheck() {
    ArmDeadline(options_.idle_timeout / 2, [](Conn& c) { c.CheckLiveness(); });
  }

  void CheckLiveness() {
    if (!open_ || closing_) return;
    const auto silent = WsClock::now() - last_heard_;
    if (silent >= options_.idle_timeout) return Ended(beast::error::timeout, 1006, "");
    if (silent >= options_.idle_timeout / 2) {
      AppendClientFrame(WsOpcode::kPing, "", out_);
      Flush();
    }
    ScheduleLivenessCheck();
  }

  // ======== Reading ========

  void OnReadable(boost::system::error_code ec) {
    if (!Socket().is_open()) return;
    if (ec) return Ended(ec, 1006, "");
    thread_local std::array<char, std::size_t{64} * 1024> buffer;
    if constexpr (kTls) stream_.connection().BeginReadRound();
    for (int round = 0;; ++round) {
      if (round == kMaxReadsPerWake) {
        return asio::post(Socket().get_executor(),
                          [self = this->shared_from_this()] { self->OnReadable({}); });
      }
      const IoResult r = ReadNow(buffer.data(), buffer.size());
      if (r.error) return Ended(r.error, 1006, "");
      if (r.wait) return WaitReadable(*r.wait);
      Parse(buffer.data(), r.bytes);
      if (!Socket().is_open()) return;
      if (r.drained) return WaitReadable(net::Socket::wait_read);
    }
  }

  void WaitReadable(net::Socket::wait_type what) {
    Socket().async_wait(what, [self = this->shared_from_this()](boost::system::error_code ec) {
      self->OnReadable(ec);
    });
  }

  IoResult ReadNow(char* data, std::size_t size) {
    IoResult r;
    if constexpr (kTls) {
      net::TlsConnection& tls = stream_.connection();
      r = FromTlsStep(tls.Read(data, size));
      r.drained = r.bytes > 0 && tls.ReadDrained();
    } else {
      r = FromSyscall(net::Socket::wait_read,
                      [&] { return ::recv(Socket().native_handle(), data, size, 0); });
      if (r.bytes == 0 && !r.wait && !r.error) r.error = asio::error::eof;
      r.drained = r.bytes > 0 && r.bytes < size;
    }
    return r;
  }

  // Parses what was read; the answers it causes (pongs, a close echo) go out in one write.
  void Parse(char* data, std::size_t size) {
    in_batch_ = true;
    const auto error = reader_.Consume(data, size, *this);
    in_batch_ = false;
    if (error) {
      return Ended(make_error_code(boost::system::errc::protocol_error), error->close_code,
                   std::string(error->reason));
    }
    Flush();
  }

  // ---- edge::WsFrameSink: the router's frames ----

  void OnMessage(WsOpcode /*kind*/, std::string_view payload) override {
    last_heard_ = WsClock::now();
    if (listener_ != nullptr && open_) listener_->OnMessage(std::string(payload));
  }

  void OnPing(std::string_view payload) override {
    last_heard_ = WsClock::now();
    if (open_ && !closing_) AppendClientFrame(WsOpcode::kPong, payload, out_);
  }

  void OnPong(std::string_view /*payload*/) override { last_heard_ = WsClock::now(); }

  void OnClose(std::uint16_t code, std::string_view reason) override {
    if (closing_) return FinishClose();  // the answer to ours
    // The router closes: echo its code, then the connection ends for the listener.
    AppendClientFrame(WsOpcode::kClose,
                      edge::EncodeClosePayload(code == edge::ws_close::kNoStatus ? 1000 : code, ""),
                      out_);
    in_batch_ = false;
    Flush();
    Ended(beast::websocket::error::closed, code, std::string(reason));
  }

  // ======== Writing ========

  // Writes what is queued until the socket is full, then waits for it to drain.
  void Flush() {
    if (write_waiting_ || !Socket().is_open()) return;
    while (written_ < out_.size()) {
      const char* data = out_.data() + written_;
      const std::size_t size = out_.size() - written_;
      IoResult r;
      if constexpr (kTls) {
        r = FromTlsStep(stream_.connection().Write(data, size));
      } else {
        r = FromSyscall(net::Socket::wait_write,
                        [&] { return ::send(Socket().native_handle(), data, size, MSG_NOSIGNAL); });
      }
      if (r.error) {
        // Send() and Close() call this for the listener: it hears of the failure from a
        // handler of its own, not inside its own call.
        write_waiting_ = true;  // nothing more is written
        return asio::post(Socket().get_executor(), [self = this->shared_from_this(), ec = r.error] {
          self->Ended(ec, 1006, "");
        });
      }
      if (r.wait) {
        write_waiting_ = true;
        return Socket().async_wait(*r.wait,
                                   [self = this->shared_from_this()](boost::system::error_code ec) {
                                     self->write_waiting_ = false;
                                     if (ec) return self->Ended(ec, 1006, "");
                                     self->Flush();
                                   });
      }
      written_ += r.bytes;
    }
    out_.clear();
    written_ = 0;
  }

  // ======== The end ========

  // The connection ended (the router closed it, or a failure): the listener hears it once.
  void Ended(boost::system::error_code ec, std::uint16_t code, std::string reason) {
    if (closing_) return FinishClose();
    open_ = false;
    Shut();
    if (listener_ == nullptr) return;
    auto* l = listener_;
    listener_ = nullptr;
    l->OnClosed(ec, code, std::move(reason));
  }

  // Our close is answered (or the router ended the connection, or the deadline passed).
  void FinishClose() {
    open_ = false;
    Shut();
    if (auto done = std::move(close_done_)) done();
  }

  void Shut() {
    timer_.cancel();
    boost::system::error_code ignored;
    Socket().close(ignored);  // pending waits complete with operation_aborted
  }

  const ConnTarget& target_;  // owned by the tool, outlives every connection
  const WsClientOptions& options_;
  ConnListener* listener_;
  Stream stream_;
  asio::steady_timer timer_;  // opening deadlines, then liveness checks or the closing deadline
  edge::WsFrameReader reader_;
  // The opening handshake only.
  std::string key_;
  std::string request_;
  std::unique_ptr<http::response_parser<http::string_body>> parser_;
  beast::flat_buffer buffer_;
  // Frames not yet written; `written_` of them are.
  std::string out_;
  std::size_t written_ = 0;
  std::string detail_;
  std::function<void()> close_done_;  // set by Close()
  OpenTimes times_;
  WsClock::time_point last_heard_{};
  int http_status_ = 0;
  bool open_ = false;
  bool closing_ = false;  // our close frame is queued
  bool in_batch_ = false;
  bool write_waiting_ = false;
  bool timed_out_ = false;  // an opening deadline closed the socket
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
    return std::make_shared<Conn<true>>(target, listener, options, io,
                                        net::Socket(io.get_executor()), tls->native_handle(),
                                        net::TlsRole::kClient);
  }
  return std::make_shared<Conn<false>>(target, listener, options, io, io.get_executor());
}

std::string HostHeader(std::string_view host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string h(host);
  return (v6 ? "[" + h + "]" : h) + ":" + std::to_string(port);
}

base::Result<std::unique_ptr<ssl::context>> MakeClientTls(const std::string& ca_file) {
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
  if (ec) return base::Fail("'" + ca_file + "': " + ec.message());
  tls->set_verify_mode(ssl::verify_peer);
  return tls;
}

}  // namespace vrouter::bench
