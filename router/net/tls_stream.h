// A TLS stream for Beast's websocket::stream and http::async_read/write: the AsyncStream interface
// over TlsConnection (OpenSSL on the socket's descriptor), waiting for the socket's readiness
// between OpenSSL's non-blocking steps. The router's server side; the load generator's and
// simulated video servers' client side.
//
// Only for a socket whose io_context runs on one thread (the router's: one io_context per
// thread). A readiness wait is registered right after OpenSSL saw EAGAIN, on the same thread that
// will process the next readiness event, so no event can slip in between.
#pragma once

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "router/net/tls_connection.h"

namespace vrouter::net {

namespace tls_detail {

// One OpenSSL operation to completion: run a step; on want-read or want-write wait for the socket
// and run it again. A step that finishes at once completes through a post (a handler never runs
// inside its initiating function).
template <class StepFn, bool kWithBytes>
class Op {
 public:
  Op(Socket& socket, StepFn step) : socket_(socket), step_(std::move(step)) {}

  template <class Self>
  void operator()(Self& self, boost::system::error_code wait_error = {}) {
    if (!result_) {
      if (wait_error) {
        result_ = TlsStep{TlsStep::Kind::kFailed, 0, wait_error};  // the socket was closed
      } else {
        const TlsStep step = step_();
        if (step.kind == TlsStep::Kind::kWantRead || step.kind == TlsStep::Kind::kWantWrite) {
          waited_ = true;
          return socket_.async_wait(
              step.kind == TlsStep::Kind::kWantRead ? Socket::wait_read : Socket::wait_write,
              std::move(self));
        }
        result_ = step;
      }
      if (!waited_) {
        waited_ = true;
        return boost::asio::post(socket_.get_executor(), std::move(self));
      }
    }
    if constexpr (kWithBytes) {
      self.complete(result_->error, result_->bytes);
    } else {
      self.complete(result_->error);
    }
  }

 private:
  Socket& socket_;
  StepFn step_;
  std::optional<TlsStep> result_;
  bool waited_ = false;
};

// The whole of a write's buffers as one record when they are small and several (a WebSocket
// frame header and its payload): one record and one send instead of two. The copy is per thread,
// redone on each retry (OpenSSL wants the same bytes again, not the same address).
std::pair<const void*, std::size_t> Gather(const boost::asio::const_buffer* first,
                                           const boost::asio::const_buffer* last);

}  // namespace tls_detail

class TlsStream {
 public:
  using executor_type = Socket::executor_type;
  using next_layer_type = Socket;
  using lowest_layer_type = Socket;

  // `socket` is connected (server) or connected later by the owner (client).
  TlsStream(Socket socket, ssl_ctx_st* context, TlsRole role = TlsRole::kServer)
      : socket_(std::move(socket)), tls_(std::make_shared<TlsConnection>(context, socket_, role)) {}
  // Operations hold the TlsConnection, not the stream: one whose readiness wait already
  // completed runs after the stream is gone (a Beast idle ping holds only a weak_ptr), and must
  // then find the socket detached rather than freed.
  ~TlsStream() { tls_->Detach(); }
  // TlsConnection points at socket_.
  TlsStream(TlsStream&&) = delete;
  TlsStream& operator=(TlsStream&&) = delete;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  Socket& next_layer() noexcept { return socket_; }
  const Socket& next_layer() const noexcept { return socket_; }

  // For a reader that waits for readiness itself and reads without blocking (ws_session.cc).
  TlsConnection& connection() noexcept { return *tls_; }

  // Client: see TlsConnection::ExpectServer.
  bool ExpectServer(const std::string& host) { return tls_->ExpectServer(host); }

  // Bytes read before the handshake that belong to it (after a PROXY protocol header).
  void Prepend(std::string_view bytes) { tls_->Prepend(bytes); }

  template <class Token>
  auto async_handshake(Token&& token) {
    // OpenSSL reads and writes the descriptor itself: it must never block the io thread.
    boost::system::error_code ignored;  // a closed socket: the first step fails
    socket_.non_blocking(true, ignored);
    return Start<false>([tls = tls_] { return tls->Handshake(); }, std::forward<Token>(token));
  }

  // Sends close_notify; does not wait for the peer's (the WebSocket close came first).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return Start<false>([tls = tls_] { return tls->Shutdown(); }, std::forward<Token>(token));
  }

  // One attempt at close_notify, without waiting for the socket.
  TlsStep ShutdownNow() { return tls_->Shutdown(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    boost::asio::mutable_buffer first;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      if (boost::asio::mutable_buffer b(*it); b.size() > 0) {
        first = b;
        break;
      }
    }
    return Start<true>(
        [tls = tls_, first]() -> TlsStep {
          if (first.size() == 0) return {};
          return tls->Read(first.data(), first.size());
        },
        std::forward<Token>(token));
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    // At most a few buffers in practice (Beast: header, payload); kept as an array, not a vector.
    constexpr std::size_t kMaxBuffers = 8;
    struct Pieces {
      std::array<boost::asio::const_buffer, kMaxBuffers> b;
      std::size_t n = 0;
    } pieces;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && pieces.n < kMaxBuffers; ++it) {
      if (boost::asio::const_buffer b(*it); b.size() > 0) pieces.b[pieces.n++] = b;
    }
    return Start<true>(
        [tls = tls_, pieces]() -> TlsStep {
          if (pieces.n == 0) return {};
          const auto [data, size] = tls_detail::Gather(pieces.b.data(), pieces.b.data() + pieces.n);
          return tls->Write(data, size);
        },
        std::forward<Token>(token));
  }

 private:
  template <bool kWithBytes, class StepFn, class Token>
  auto Start(StepFn step, Token&& token) {  // Token as the caller gave it (an lvalue is copied)
    using Signature = std::conditional_t<kWithBytes, void(boost::system::error_code, std::size_t),
                                         void(boost::system::error_code)>;
    return boost::asio::async_compose<Token, Signature>(
        tls_detail::Op<StepFn, kWithBytes>(socket_, std::move(step)), token, socket_);
  }

  Socket socket_;
  std::shared_ptr<TlsConnection> tls_;
};

namespace tls_detail {

// close_notify, then the TCP teardown Beast does for a plain socket.
class TeardownOp {
 public:
  TeardownOp(boost::beast::role_type role, TlsStream& stream) : role_(role), stream_(stream) {}
  template <class Self>
  void operator()(Self& self, boost::system::error_code ec = {}) {
    switch (state_++) {
      case 0:
        return stream_.async_shutdown(std::move(self));
      case 1:
        return boost::beast::websocket::async_teardown(role_, stream_.next_layer(),
                                                       std::move(self));
      default:
        return self.complete(ec);
    }
  }

 private:
  boost::beast::role_type role_;
  TlsStream& stream_;
  int state_ = 0;
};

}  // namespace tls_detail

// Found by Beast's websocket::stream through argument-dependent lookup.
template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, TlsStream& stream, TeardownHandler&& handler) {
  boost::asio::async_compose<TeardownHandler, void(boost::system::error_code)>(
      tls_detail::TeardownOp(role, stream), handler, stream.next_layer());
}

// The synchronous close path (unused by the router; Beast's interface requires it).
void teardown(boost::beast::role_type role, TlsStream& stream, boost::system::error_code& ec);

}  // namespace vrouter::net
