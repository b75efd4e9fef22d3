// A WebSocket/HTTP client for integration tests: real sockets, real TLS, every wait bounded.
// Blocking API on its own io_context, so tests read like transcripts.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "proto/codec.h"

namespace vrouter::testing {

using namespace std::chrono_literals;

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// One HTTP/1.1 request to 127.0.0.1:port. `headers` are added verbatim.
HttpResult HttpRequest(std::uint16_t port, std::string_view method, std::string_view target,
                       const std::map<std::string, std::string>& headers = {}, bool tls = false);

class TestClient {
 public:
  struct Options {
    bool tls = false;
    std::string subprotocol = "vrouter.v1";  // empty: offer none
    std::string path = "/v1/client";
  };
  // Connects and completes the WebSocket handshake; nullptr (with `error`) on failure.
  static std::unique_ptr<TestClient> Connect(std::uint16_t port, const Options& options,
                                             std::string* error = nullptr);
  static std::unique_ptr<TestClient> Connect(std::uint16_t port, bool tls = false) {
    return Connect(port, Options{tls, "vrouter.v1", "/v1/client"});
  }
  virtual ~TestClient() = default;

  virtual bool SendText(const std::string& text) = 0;
  virtual bool SendBinary(const std::string& data) = 0;
  virtual bool Ping() = 0;
  // Next text frame, or nullopt on timeout or close.
  virtual std::optional<std::string> Read(std::chrono::milliseconds timeout = 5s) = 0;
  // Waits until the server closes the connection; returns its close code (1006 if none was sent).
  virtual std::optional<std::uint16_t> WaitClosed(std::chrono::milliseconds timeout = 5s) = 0;
  virtual std::string negotiated_subprotocol() const = 0;

  bool Send(const proto::ClientMessage& message) { return SendText(proto::Encode(message)); }
  // Next frame decoded; a decode failure or timeout fails the calling test.
  std::optional<proto::ServerMessage> ReadMessage(std::chrono::milliseconds timeout = 5s);
  // Reads until a frame of type T arrives (skipping others), or times out.
  template <class T>
  std::optional<T> Expect(std::chrono::milliseconds timeout = 5s) {
    auto m = ReadMessage(timeout);
    if (!m || !std::holds_alternative<T>(*m)) return std::nullopt;
    return std::get<T>(*m);
  }
};

}  // namespace vrouter::testing
