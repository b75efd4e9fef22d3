// The WebSocket opening handshake (RFC 6455 4.2) as a pure function: the upgrade request's fields
// in, an acceptance or a typed refusal out, and the bytes of either answer. The session
// (router/net/ws_session.cc) reads the request off the socket, asks CheckUpgrade, applies the
// replica's own admission (full, draining, Origin, per-address limit: they need shared state),
// and writes what EncodeAccepted or EncodeRefusal return.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace vrouter::edge {

// Who is on the other end, from the upgrade path.
enum class WsPeer : std::uint8_t { kClient, kVideoServer };

// The fields of an upgrade request the check reads (raw header values; empty when absent).
struct UpgradeRequest {
  std::string_view method;        // "GET"
  unsigned http_version = 11;     // 11 for HTTP/1.1
  std::string_view target;        // path and query
  std::string_view host;          // Host
  std::string_view connection;    // Connection: a token list that must hold "upgrade"
  std::string_view upgrade;       // Upgrade: a token list that must hold "websocket"
  std::string_view version;       // Sec-WebSocket-Version
  std::string_view key;           // Sec-WebSocket-Key
  std::string_view subprotocols;  // Sec-WebSocket-Protocol (the offer)
};

// Why an upgrade is refused; each maps to one HTTP status and one plain-text body.
enum class UpgradeRefusal : std::uint8_t {
  kUnknownPath,          // 404: neither /v1/client nor /v1/video-server
  kNotWebSocket,         // 426: not a GET/HTTP 1.1 upgrade to websocket
  kMissingHost,          // 400
  kUnsupportedVersion,   // 426, naming version 13
  kBadKey,               // 400: missing or malformed Sec-WebSocket-Key
  kNoClientSubprotocol,  // 400: an offer on /v1/client without vrouter.v1
  kNoVideoSubprotocol,   // 400: an offer on /v1/video-server without vrouter.video.v1
  kFullOrDraining,       // 503 + Retry-After (admission)
  kOriginNotAllowed,     // 403 (admission)
  kTooManyFromAddress,   // 429 + Retry-After (admission)
};

// What an accepted upgrade answers.
struct UpgradeAccepted {
  WsPeer peer = WsPeer::kClient;
  std::string accept_key;        // Sec-WebSocket-Accept
  std::string_view subprotocol;  // echoed when offered; empty when the client offered none
};

using UpgradeCheck = std::variant<UpgradeAccepted, UpgradeRefusal>;

// The RFC and protocol checks, in the order they are answered: path, upgrade, Host, version, key,
// subprotocol. Admission (UpgradeRefusal::kFullOrDraining and after) is the caller's.
UpgradeCheck CheckUpgrade(const UpgradeRequest& request);

int HttpStatus(UpgradeRefusal refusal);
std::string_view RefusalBody(UpgradeRefusal refusal);
// 503 and 429: the client should come back later (a Retry-After is sent).
bool IsRetryLater(UpgradeRefusal refusal);

// The 101 answer. No extension is agreed (an offer of permessage-deflate goes unanswered), so
// frames with reserved bits set are protocol errors.
std::string EncodeAccepted(const UpgradeAccepted& accepted);
// The refusal, closing the connection; `retry_after_seconds` is used for retry-later refusals
// only (jittered by the caller, so a refused storm does not come back in lockstep).
std::string EncodeRefusal(UpgradeRefusal refusal, int retry_after_seconds);

// True when a comma-separated header value holds `token`; `case_insensitive` for Connection and
// Upgrade (RFC 7230 tokens), not for subprotocol names.
bool HasToken(std::string_view list, std::string_view token, bool case_insensitive);

}  // namespace vrouter::edge
