// Typed error codes and WebSocket close codes of protocol vrouter.v1 (see proto/PROTOCOL.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vrouter::proto {

// Sent in `error` frames as the snake_case name (ErrorCodeName). Never renumber or rename: clients
// switch on the names. `retryable` in PROTOCOL.md says whether the same request may succeed later.
enum class ErrorCode : std::uint8_t {
  kInvalidJson,           // frame is not valid JSON (or nested too deep)
  kInvalidMessage,        // JSON is valid but a field is missing, has the wrong type or bad value
  kUnknownType,           // `type` names no message of this protocol version
  kNotAuthenticated,      // a request arrived before a successful `hello`
  kAlreadyAuthenticated,  // a second `hello` on the same connection
  kAuthNotConfigured,     // this replica has no token key: it cannot admit anyone
  kTokenMalformed,        // the token is not a well-formed JWT
  kTokenBadSignature,     // the signature does not verify (forged, or signed with another key)
  kTokenExpired,          // `exp` is in the past
  kTokenNotYetValid,      // `nbf` is in the future
  kTokenInvalidClaims,    // `sub`, `space` or `exp` missing or malformed, or alg is not allowed
  kNotJoined,             // the request needs a prior `join` (or `resume`)
  kNoVideoServer,         // no eligible video server right now (retryable)
  kBatchTooLarge,         // more user ids in one request than `limits.max_batch`
  kTooManyWatches,        // the session would watch more than `limits.max_watches` users
  kUnknownServer,         // a `report` names a video server this router does not know
  kUnavailable,           // the router cannot do this safely right now (retryable)
  kShuttingDown,          // the replica is draining; reconnect to another one (retryable)
  kForbidden,             // the credential does not allow this (e.g. another server's id)
  kNotRegistered,         // video server: `stats` before a successful `register`
  kAlreadyRegistered,     // video server: a second `register` on the same connection
  kRateLimited,           // too many messages of this type per second (retryable after a pause)
  kInternal,              // a bug: the request was not applied
};

inline constexpr int kErrorCodeCount = static_cast<int>(ErrorCode::kInternal) + 1;

std::string_view ErrorCodeName(ErrorCode code);
std::optional<ErrorCode> ErrorCodeFromName(std::string_view name);
bool IsRetryable(ErrorCode code);

// WebSocket close codes the router sends. 1000-1015 are RFC 6455; 4000-4999 are ours.
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;         // `leave` then client closed, or drain done
inline constexpr std::uint16_t kGoingAway = 1001;      // replica shutting down (after `goaway`)
inline constexpr std::uint16_t kProtocolError = 1002;  // WebSocket protocol violation
inline constexpr std::uint16_t kUnsupportedData = 1003;  // binary frame: v1 is text JSON only
inline constexpr std::uint16_t kInvalidPayload = 1007;   // text frame or close reason not UTF-8
inline constexpr std::uint16_t kPolicyViolation = 1008;  // control-frame (ping) flood
inline constexpr std::uint16_t kMessageTooBig = 1009;    // frame above limits.max_message_bytes
inline constexpr std::uint16_t kInternalError = 1011;    // unexpected server error
inline constexpr std::uint16_t kTryAgainLater = 1013;    // overloaded
inline constexpr std::uint16_t kSessionReplaced = 4000;  // a newer `hello` for this user won
inline constexpr std::uint16_t kAuthFailed = 4001;       // `hello` refused (error frame first)
inline constexpr std::uint16_t kHelloTimeout = 4002;     // no `hello` within the hello timeout
inline constexpr std::uint16_t kSlowConsumer = 4003;     // reserved: a slow consumer is cut off
                                                      // without a close frame (its queue is full)
}  // namespace close_code

// The reasons that go with the router's own close codes (PROTOCOL.md 9.1), for logs.
namespace close_reason {
// 4000, on both protocols: a newer session of the same user (or video server) took over.
inline constexpr std::string_view kSessionReplaced = "session_replaced";
}  // namespace close_reason

}  // namespace vrouter::proto
