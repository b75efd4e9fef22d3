// The WebSocket opening handshake (RFC 6455 4.2) as a pure function: the upgrade request's fields
// and what the replica knows (full or draining, the Origin allow-list, the per-address limit) in,
// an acceptance or a typed refusal out, and the bytes of either answer. The session
// (router/net/ws_session.cc) reads the request off the socket, gathers the replica's state, asks
// CheckUpgrade, and writes what EncodeAccepted or EncodeRefusal return. The order in which the
// refusals are decided is PROTOCOL.md 2.2's table, and lives only here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace vrouter::edge {

// Who is on the other end, from the upgrade path.
enum class WsPeer : std::uint8_t { kClient, kVideoServer };

// The fields of an upgrade request the check reads (raw header values; empty when absent).
struct UpgradeRequest {
  std::string_view method;      // "GET"
  unsigned http_version = 11;   // 11 for HTTP/1.1
  std::string_view target;      // path and query
  std::string_view host;        // Host
  std::string_view connection;  // Connection: a token list that must hold "upgrade"
  std::string_view upgrade;     // Upgrade: a token list that must hold "websocket"
  std::string_view version;     // Sec-WebSocket-Version
  std::string_view key;         // Sec-WebSocket-Key
  // Sec-WebSocket-Protocol (the offer); nullopt when the header is absent. A header that is
  // present but empty (or blank) offers no protocol, so it does not list ours either.
  std::optional<std::string_view> subprotocols;
  std::string_view origin;  // Origin (browsers send it); empty when absent
};

// What the replica's shared state says, for the admission checks (the session gathers it).
struct UpgradeAdmission {
  bool full_or_draining = false;  // draining, or more connections open than --max-connections
  // Origins browsers may connect from; empty: any. No Origin always passes.
  std::span<const std::string> allowed_origins;
  // Takes one of the peer address's connection slots; false when the address already holds its
  // maximum. Called last, and only when nothing else refuses, so a refused upgrade never holds a
  // slot. Empty: no per-address limit.
  std::function<bool()> take_address_slot;
};

// Why an upgrade is refused; each maps to one HTTP status and one plain-text body. Declared in
// the order CheckUpgrade decides them: the first that applies is the answer.
enum class UpgradeRefusal : std::uint8_t {
  kUnknownPath,          // 404: neither /v1/client nor /v1/video-server
  kNotWebSocket,         // 426: not a GET/HTTP 1.1 upgrade to websocket
  kMissingHost,          // 400
  kUnsupportedVersion,   // 426, naming version 13
  kBadKey,               // 400: missing or malformed Sec-WebSocket-Key
  kNoClientSubprotocol,  // 400: an offer on /v1/client without vrouter.v1
  kNoVideoSubprotocol,   // 400: an offer on /v1/video-server without vrouter.video.v1
  kOriginNotAllowed,     // 403: an Origin not in the allow-list (admission)
  kFullOrDraining,       // 503 + Retry-After (admission)
  kTooManyFromAddress,   // 429 + Retry-After: the peer's address at its limit (admission)
};

// What an accepted upgrade answers.
struct UpgradeAccepted {
  WsPeer peer = WsPeer::kClient;
  std::string accept_key;        // Sec-WebSocket-Accept
  std::string_view subprotocol;  // echoed when offered; empty when the client offered none
};

using UpgradeCheck = std::variant<UpgradeAccepted, UpgradeRefusal>;

// Every check, in the order of UpgradeRefusal, the same on both paths (a video server is anyone
// until it registers): first what the client must fix (path, upgrade, Host, version, key,
// subprotocol, Origin), then capacity (the replica, then the peer's address). A retry-later refusal
// (503, 429) thus means the same request is accepted once there is room: a client is never told to
// retry a request that cannot succeed, and the overload metrics count only requests the replica
// would otherwise have taken.
UpgradeCheck CheckUpgrade(const UpgradeRequest& request, const UpgradeAdmission& admission = {});

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
