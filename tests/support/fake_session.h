// A session without a socket: records what a protocol sends, pushes and closes, so protocol
// logic (ClientProtocol, VideoServerProtocol) is tested without I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "router/service/session_protocol.h"
#include "router/service/session_registry.h"

namespace vrouter::testing {

class FakeSession : public service::SessionTransport, public service::SessionHandle {
 public:
  void Send(assign::Frame f) override { sent.push_back(*f); }
  void Close(std::uint16_t code, std::string_view) override { closed = code; }
  void Dispatch(std::function<void()> fn) override { fn(); }
  void Authenticated() override { ++authenticated; }
  void Push(assign::Frame f) override { pushed.push_back(*f); }
  void CloseAsync(std::uint16_t code, std::string reason, std::chrono::milliseconds) override {
    closed_async = code;
    closed_async_reason = std::move(reason);
  }
  std::vector<std::string> sent, pushed;
  std::optional<std::uint16_t> closed, closed_async;
  int authenticated = 0;  // times the protocol said the peer proved who it is
  std::string closed_async_reason;
};

}  // namespace vrouter::testing
