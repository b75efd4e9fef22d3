// The messages of protocol vrouter.v1 as plain structs. proto/PROTOCOL.md is the specification;
// this header mirrors it field for field. No I/O, no JSON types: the codec converts.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "proto/error_code.h"

namespace vrouter::proto {

inline constexpr std::string_view kSubprotocol = "vrouter.v1";
inline constexpr std::string_view kClientPath = "/v1/client";

// Largest integer a JavaScript client can hold exactly (2^53 - 1): request ids and epochs stay
// below.
inline constexpr std::uint64_t kMaxSafeInteger = (std::uint64_t{1} << 53) - 1;
// User, space and server ids: 1..kMaxIdBytes bytes of UTF-8 without control characters.
inline constexpr std::size_t kMaxIdBytes = 128;

// Optional request id: the client picks it, the router echoes it on the answer or error.
using RequestId = std::optional<std::uint64_t>;

// ---- client -> router ----

struct Hello {
  RequestId id;
  std::string token;  // JWT naming the user (`sub`) and the space (`space`)
};
struct Join {
  RequestId id;
};
struct Resume {
  RequestId id;
  std::string server;  // the video server the client was on
  std::uint64_t epoch = 0;
};
struct Lookup {
  RequestId id;
  std::vector<std::string> users;
};
struct Watch {
  RequestId id;
  std::vector<std::string> users;
};
struct Unwatch {
  RequestId id;
  std::vector<std::string> users;
};
enum class FailureReason : std::uint8_t {
  kNoMedia,
  kIceFailed,
  kDtlsFailed,
  kConnectFailed,
  kOther
};
inline constexpr int kFailureReasonCount = static_cast<int>(FailureReason::kOther) + 1;
std::string_view FailureReasonName(FailureReason reason);
struct Report {
  RequestId id;
  std::string server;
  FailureReason reason = FailureReason::kOther;
  std::string detail;  // free text for logs, at most 256 bytes
};
struct Leave {
  RequestId id;
};

using ClientMessage = std::variant<Hello, Join, Resume, Lookup, Watch, Unwatch, Report, Leave>;

// The index of alternative T of variant V: kClientTypeIndex<Hello> ==
// ClientMessage{Hello{}}.index() (per-type tables such as rate limits and metrics are indexed that
// way).
template <typename T, typename V>
struct VariantIndex;
template <typename T, typename... Ts>
struct VariantIndex<T, std::variant<Ts...>> {
  static constexpr std::size_t value = [] {
    constexpr bool kSame[] = {std::is_same_v<T, Ts>...};
    std::size_t i = 0;
    while (i < sizeof...(Ts) && !kSame[i]) ++i;
    return i;
  }();
  static_assert(value < sizeof...(Ts), "not an alternative of the variant");
};
template <typename T>
inline constexpr std::size_t kClientTypeIndex = VariantIndex<T, ClientMessage>::value;

// ---- router -> client ----

struct ServerRef {
  std::string id;
  std::string url;
  std::string region;
  bool operator==(const ServerRef&) const = default;
};
struct Limits {
  std::uint32_t max_message_bytes = 0;
  std::uint32_t max_batch = 0;
  std::uint32_t max_watches = 0;
  bool operator==(const Limits&) const = default;
};
struct Welcome {
  RequestId id;
  std::string replica;
  std::string session;
  std::string user;
  std::string space;
  Limits limits;
};
struct Assigned {
  RequestId id;
  ServerRef server;
  std::uint64_t epoch = 0;
  bool resumed = false;  // true when the client keeps the server it asked to resume on
};
// Where a user is: `server` empty means not connected (and `epoch` is 0).
struct UserLocation {
  std::string user;
  std::optional<ServerRef> server;
  std::uint64_t epoch = 0;
  bool operator==(const UserLocation&) const = default;
};
struct LookupResult {
  RequestId id;
  std::vector<UserLocation> results;
};
struct WatchResult {
  RequestId id;
  std::vector<UserLocation>
      results;  // current state, so no change between lookup and watch is lost
};
struct Ack {
  RequestId id;
};
struct Moved {
  std::string user;
  ServerRef server;
  std::uint64_t epoch = 0;
  std::optional<std::string> from;  // previous server id; empty when the user just arrived
};
struct Left {
  std::string user;
  std::uint64_t epoch = 0;  // the assignment that ended
};
struct Migrate {
  ServerRef server;
  std::uint64_t epoch = 0;
  std::string reason;  // "drain" | "ejected" | "gone"
};
struct GoAway {
  std::string reason;  // "shutdown"
  std::uint32_t reconnect_after_ms = 0;
};
struct Error {
  RequestId id;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

using ServerMessage = std::variant<Welcome, Assigned, LookupResult, WatchResult, Ack, Moved, Left,
                                   Migrate, GoAway, Error>;

// Wire names (`type` field), indexed like the variants: kClientTypeNames[msg.index()].
inline constexpr std::string_view kClientTypeNames[] = {"hello", "join",    "resume", "lookup",
                                                        "watch", "unwatch", "report", "leave"};
inline constexpr std::string_view kServerTypeNames[] = {
    "welcome", "assigned", "lookup_result", "watch_result", "ack",
    "moved",   "left",     "migrate",       "goaway",       "error"};
static_assert(std::size(kClientTypeNames) == std::variant_size_v<ClientMessage>);
static_assert(std::size(kServerTypeNames) == std::variant_size_v<ServerMessage>);

}  // namespace vrouter::proto
