// The codec of protocol vrouter.video.v1, spoken by video servers on /v1/video-server: text frames
// <-> the typed messages of proto/video_server_messages.h. Same guarantees as the client codec
// (proto/codec.h), and the same strictness, from the same helpers:
//
// Decoding never throws and never trusts input: anything that is not exactly a video.v1 message
// becomes a DecodeError with a typed code and a human message. Integers must be integer literals
// (1.0 and 1e3 are refused), counters stay within 2^53-1 (servers and tools may be written in
// JavaScript), uint32 fields within 2^32-1. Unknown fields are ignored (forward compatibility);
// client-protocol types are `unknown_type` here.
//
// This protocol has no request ids: the top-level `id` of `register` is the server's id. A
// DecodeError for a `stats` whose `seq` could be read carries that seq in `id`, so the router's
// `error` answer names the report it refuses. Encoding does not validate: encode only messages
// the decoder would accept.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "proto/codec.h"
#include "proto/video_server_messages.h"

namespace vrouter::proto {

using VideoServerDecodeResult = std::variant<VideoServerMessage, DecodeError>;
using RouterToVideoServerDecodeResult = std::variant<RouterToVideoServerMessage, DecodeError>;

// Video server -> router: what the router decodes.
VideoServerDecodeResult DecodeVideoServerMessage(std::string_view text);
// Router -> video server: what a (simulated) video server decodes. `error` decodes exactly as on
// the client protocol (DecodeServerMessage).
RouterToVideoServerDecodeResult DecodeRouterToVideoServerMessage(std::string_view text);

std::string Encode(const VideoServerMessage& message);
// `Error` is written exactly as Encode(ServerMessage(error)) writes it on the client protocol.
std::string Encode(const RouterToVideoServerMessage& message);

// Wire names (`type` field), indexed like the variants: kVideoServerTypeNames[msg.index()].
inline constexpr std::string_view kVideoServerTypeNames[] = {"register", "stats"};
inline constexpr std::string_view kRouterToVideoServerTypeNames[] = {"registered", "state",
                                                                     "error"};
static_assert(std::size(kVideoServerTypeNames) == std::variant_size_v<VideoServerMessage>);
static_assert(std::size(kRouterToVideoServerTypeNames) ==
              std::variant_size_v<RouterToVideoServerMessage>);

}  // namespace vrouter::proto
