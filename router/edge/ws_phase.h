// The life of a WebSocket connection on the server side, as one explicit phase and the
// transitions allowed between phases. The session (router/net/ws_session.cc) moves through them
// with Enter(); a transition not in this table is a bug, caught in debug builds.
//
//   kHandshake --> kOpen --> kClosing --> kCloseSent --> kTornDown
//       |            |           |             |             |
//       +-> kRefused |           |             |             |
//       |      |     |           |             |             |
//       v      v     v           v             v             v
//     kAborted (socket closed without a closing handshake) ------> kFinished
//
// Every phase may also end in kFinished directly (the peer's FIN or an error while reading).
//   kHandshake  PROXY header, TLS handshake, upgrade request, our 101 being written
//   kRefused    an HTTP refusal (4xx/5xx) is being written; the socket is shut down after it
//   kOpen       frames flow both ways
//   kClosing    our close frame is queued behind the frames before it; nothing more is acted on
//   kCloseSent  our close frame is out; waiting for the peer's close (unless it came first)
//   kTornDown   both closes are done: close_notify and our FIN sent, reading until the peer's FIN
//   kAborted    the socket was closed at once (deadline, slow consumer, write error)
//   kFinished   the session is over: the protocol was told, the socket is closed
#pragma once

#include <cstdint>
#include <string_view>

namespace vrouter::edge {

enum class WsPhase : std::uint8_t {
  kHandshake,
  kRefused,
  kOpen,
  kClosing,
  kCloseSent,
  kTornDown,
  kAborted,
  kFinished,
};

constexpr bool IsAllowedTransition(WsPhase from, WsPhase to) {
  using enum WsPhase;
  if (to == kFinished) return from != kFinished;
  if (to == kAborted) return from != kAborted && from != kFinished;
  switch (from) {
    case kHandshake:
      return to == kOpen || to == kRefused;
    case kOpen:
      return to == kClosing;
    case kClosing:
      return to == kCloseSent;
    case kCloseSent:
      return to == kTornDown;
    case kRefused:
    case kTornDown:
    case kAborted:
    case kFinished:
      return false;
  }
  return false;
}

// No frame is acted on and none is queued from kClosing on.
constexpr bool IsClosingOrDone(WsPhase phase) { return phase >= WsPhase::kClosing; }
// The socket is closed or about to be: nothing is read or written any more.
constexpr bool IsAbortedOrFinished(WsPhase phase) { return phase >= WsPhase::kAborted; }

constexpr std::string_view WsPhaseName(WsPhase phase) {
  constexpr std::string_view kNames[] = {"handshake",  "refused",   "open",    "closing",
                                         "close_sent", "torn_down", "aborted", "finished"};
  return kNames[static_cast<int>(phase)];
}

}  // namespace vrouter::edge
