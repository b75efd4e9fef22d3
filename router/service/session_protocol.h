// What runs inside a WebSocket session, independent of the socket: ClientProtocol on /v1/client,
// VideoServerProtocol on /v1/video-server. The session (ws_session.cc) feeds it text frames and
// gives it a way to send and to close; tests drive protocols directly with a fake transport.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "router/assign/watch_hub.h"

namespace vrouter::service {

class SessionTransport {
 public:
  virtual ~SessionTransport() = default;
  virtual void Send(assign::Frame frame) = 0;
  // Closes after frames already sent are flushed.
  virtual void Close(std::uint16_t code, std::string_view reason) = 0;
  // Runs `fn` on the session's thread: inline when called there, posted otherwise. Store
  // completions come back through it (the caller keeps the session alive until `fn` has run).
  virtual void Dispatch(std::function<void()> fn) = 0;
  // The peer proved who it is (welcome or registered was sent): the session lifts the limits it
  // keeps on anonymous peers.
  virtual void Authenticated() {}
};

class SessionProtocol {
 public:
  virtual ~SessionProtocol() = default;
  virtual void OnText(std::string_view text) = 0;
  // The connection is gone (closed by either side, or dropped).
  virtual void OnClosed() = 0;
  // True once the peer proved who it is (`hello` or `register`); until then the hello timer runs.
  virtual bool authenticated() const = 0;
};

}  // namespace vrouter::service
