// The one codec of protocol vrouter.v1: text frames <-> typed messages. Socket-free and
// allocation-light; used by the router, the tests, the load harness and the fuzzer alike.
//
// Decoding never throws and never trusts input: anything that is not exactly a v1 message becomes
// a DecodeError with a typed code, a human message, and the request id when one could be read.
// Unknown fields are ignored (forward compatibility); PROTOCOL.md says so.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "proto/decode_error.h"
#include "proto/messages.h"

namespace vrouter::proto {

using ClientDecodeResult = std::variant<ClientMessage, DecodeError>;
using ServerDecodeResult = std::variant<ServerMessage, DecodeError>;

// Frames that are valid v1 messages are read in place (proto/client_view.h); anything else is
// decided by the DOM decoder below, so both return exactly the same results.
ClientDecodeResult DecodeClientMessage(std::string_view text);
// The reference decoder: Boost.JSON's DOM, then the field rules of json_util.h. Slower (it builds
// a json::value of the whole frame); kept as the one place the errors are worded, and for the
// tests and the fuzzer that check the in-place reader against it.
ClientDecodeResult DecodeClientMessageDom(std::string_view text);
ServerDecodeResult DecodeServerMessage(std::string_view text);

std::string Encode(const ClientMessage& message);
std::string Encode(const ServerMessage& message);
// Appends the frame of `message` to `out` (a reused buffer: nothing is allocated once it is big
// enough).
void EncodeTo(const ServerMessage& message, std::string& out);

// The answer to a lookup or a watch, written from views of where the users are, so that the
// router answers without copying each location into a UserLocation first. The same bytes as
// Encode(LookupResult{...}) / Encode(WatchResult{...}) with the same fields.
struct ServerRefView {
  std::string_view id;
  std::string_view url;
  std::string_view region;
};
struct UserLocationView {
  std::string_view user;
  std::optional<ServerRefView> server;  // empty: not connected (`epoch` is 0)
  std::uint64_t epoch = 0;
};
enum class LocationsType : std::uint8_t { kLookupResult, kWatchResult };
void EncodeLocationsTo(LocationsType type, const RequestId& id,
                       std::span<const UserLocationView> results, std::string& out);

}  // namespace vrouter::proto
