// The messages of protocol vrouter.video.v1, spoken by video servers (SFUs) on
// /v1/video-server, as plain structs. proto/PROTOCOL.md ("Video-server protocol") is the
// specification; this header mirrors it field for field. No I/O, no JSON types: the codec
// (proto/video_server_codec.h) converts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "proto/messages.h"

namespace vrouter::proto {

inline constexpr std::string_view kVideoSubprotocol = "vrouter.video.v1";
inline constexpr std::string_view kVideoServerPath = "/v1/video-server";

// Largest capacity a server may declare (users). Far above any real SFU, low enough that sums
// over a fleet of thousands stay exact in a double.
inline constexpr std::uint32_t kMaxCapacity = 1'000'000;
// Public media URLs are at most this many bytes.
inline constexpr std::size_t kMaxUrlBytes = 1024;
// Region names: 1..64 bytes, same character rules as ids.
inline constexpr std::size_t kMaxRegionBytes = 64;

// ---- video server -> router ----

// First message on the connection. `token` is a JWT signed with the video-server key (never the
// client key) whose `sub` is this server's id; the router refuses a register for any other id.
struct Register {
  std::string token;
  std::string id;
  std::string url;             // public URL clients connect their media to (1..kMaxUrlBytes)
  std::string region;          // e.g. "eu-west"
  std::uint32_t capacity = 0;  // users it is sized for, 1..kMaxCapacity
};

// Sent every `report_interval_ms` (from `registered`). Counters are monotonic since the server
// process started; the router computes rates from consecutive reports and detects resets (a
// counter that goes down) and reordering (a `seq` not above the last one seen).
struct Stats {
  std::uint64_t seq = 0;          // increases by one per report; restarts at 0 with the process
  std::uint32_t peers = 0;        // peer connections open
  std::uint32_t media_peers = 0;  // of those, peers with media flowing right now
  std::uint64_t packets_in = 0;   // media packets received (monotonic)
  std::uint64_t packets_out = 0;  // media packets forwarded (monotonic)
  std::uint64_t bytes_in = 0;     // (monotonic)
  std::uint64_t bytes_out = 0;    // (monotonic)
  double cpu = 0;                 // busy share of the server's CPUs, 0..1
  // What the server should be forwarding (optional; servers that omit them are judged on packets
  // alone, as before): media streams it receives from publishers, and media streams it sends to
  // subscribers. A person alone in a room publishes and nobody subscribes: streams_out 0, so the
  // router expects no packets out and does not take the silence for a black hole.
  std::optional<std::uint32_t> streams_in;
  std::optional<std::uint32_t> streams_out;
  bool operator==(const Stats&) const = default;
};

using VideoServerMessage = std::variant<Register, Stats>;

// ---- router -> video server ----

// The router's view of a server, as pushed to it and shown by the admin API.
// "pending": declared but not yet reporting; "active": eligible for new users;
// "draining": an operator drained it; "ejected": failed a health rule; "stale": reports stopped
// recently; "gone": reports stopped long ago (its users are migrated).
struct Registered {
  std::string id;
  std::string replica;
  std::uint32_t report_interval_ms = 0;
  std::string state;
};
// Pushed whenever the router's view of this server changes, with the reason (e.g.
// "ejected" / "not_forwarding"), so a server's operator sees what the router decided.
struct StateChange {
  std::string state;
  std::string reason;
};

using RouterToVideoServerMessage = std::variant<Registered, StateChange, Error>;

}  // namespace vrouter::proto
