// One client WebSocket connection (ws or wss) to the router, for the benchmark tools: the
// simulated video servers (bench/sim) and the load generator (bench/load). Callbacks, not
// coroutines, so that tens of thousands of connections in one process cost only their buffers.
// The framing is the router's own (router/edge/ws_frame.h, reading the router's frames); Beast
// only reads the HTTP answer to the upgrade, in ws_client.cc: this header needs Asio's TCP types.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "router/base/result.h"

namespace boost::asio::ssl {
class context;
}

namespace vrouter::bench {

using WsClock = std::chrono::steady_clock;

// How far an opening connection got: the stage that failed, or kOpen.
enum class OpenStage { kConnect, kTls, kWebSocket, kOpen };

struct OpenResult {
  boost::system::error_code ec;  // empty when open
  OpenStage stage = OpenStage::kOpen;
  int http_status = 0;  // the router's answer to the upgrade when it declined (503, 401, ...)
  std::string detail;   // e.g. "router chose subprotocol 'x'"

  // "connect failed: Connection refused", "WebSocket handshake (HTTP 503) failed: ...", "open".
  std::string Describe() const;
};

// Times of one connection's opening, on WsClock; unset until reached.
struct OpenTimes {
  WsClock::time_point started;
  std::optional<WsClock::time_point> tcp_connected;
  std::optional<WsClock::time_point> opened;
};

class ConnListener {
 public:
  virtual void OnOpen(const OpenResult& result) = 0;
  virtual void OnMessage(std::string text) = 0;
  // `code` is the router's close code, 1006 when the connection ended without one.
  virtual void OnClosed(boost::system::error_code ec, std::uint16_t code, std::string reason) = 0;

 protected:
  ~ConnListener() = default;
};

class WsConn {
 public:
  virtual ~WsConn() = default;
  virtual void Start() = 0;
  // Writes a text frame now if the socket takes it, else queues it; frames go out in order. A
  // failure is reported through OnClosed from a handler, never inside Send.
  virtual void Send(std::string frame) = 0;
  // Drops the connection without a close frame (a crash); no callback follows.
  virtual void Abort() = 0;
  // Close frame with `code`, then `done` (also on failure); no other callback follows.
  virtual void Close(std::uint16_t code, std::function<void()> done) = 0;
  virtual const OpenTimes& times() const = 0;
};

struct ConnTarget {
  boost::asio::ip::tcp::resolver::results_type endpoints;
  std::string host;  // for SNI, and checked against the certificate when the context verifies
  std::string host_header;  // host:port
  std::string path;
};

struct WsClientOptions {
  std::string subprotocol;  // offered, and required in the answer
  std::string user_agent;
  std::chrono::milliseconds connect_timeout{10000};    // TCP + TLS
  std::chrono::milliseconds handshake_timeout{10000};  // HTTP upgrade
  // Silence after which the connection is considered dead (pings at half of it); 0: never.
  std::chrono::milliseconds idle_timeout{0};
};

// `tls` is null for ws. The listener must outlive the connection or be detached by Close/Abort.
std::shared_ptr<WsConn> MakeWsConn(boost::asio::io_context& io, const ConnTarget& target,
                                   ConnListener* listener, boost::asio::ssl::context* tls,
                                   const WsClientOptions& options);

// host:port for the Host header, IPv6 literals in brackets.
std::string HostHeader(std::string_view host, std::uint16_t port);

// A TLS 1.2+ client context verifying against `ca_file`, or not verifying when it is empty.
// An error message on failure (unreadable CA file).
base::Result<std::unique_ptr<boost::asio::ssl::context>> MakeClientTls(const std::string& ca_file);

}  // namespace vrouter::bench
