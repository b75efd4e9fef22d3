// What replicas tell each other about the video-server fleet, on the store's fleet channel
// (redis_schema.h: vr:fleet): registrations, reports, disconnections, client failure reports and
// operator drains, so that every replica scores every server on the same evidence whichever
// replica the server (or the reporting client) is connected to. Pure: no I/O, unit-tested and
// fuzzed (tests/fuzz/fleet_gossip_fuzz.cc).
//
// Wire form (one pub/sub message; ids hold no control characters and the JSON is compact, so a
// tab never occurs inside a field):
//   <replica> \t reg     \t <server> \t <register JSON, credential replaced>
//   <replica> \t stats   \t <server> \t <register JSON> \t <stats JSON>
//   <replica> \t gone    \t <server>
//   <replica> \t report  \t <server> \t <user> [\t <client address>]
//   <replica> \t drain   \t <server>
//   <replica> \t undrain \t <server>
// The JSON payloads are vrouter.video.v1 messages (proto/video_server_codec.h), decoded with that
// codec's full strictness. Fields after the last one a kind defines are ignored, so a newer
// replica may append some during a rolling upgrade.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "proto/video_server_messages.h"
#include "router/base/result.h"
#include "router/fleet/directory.h"

namespace vrouter::store {

// A server registered with the sending replica. It reports there; it is known here.
struct GossipRegistered {
  fleet::VideoServer server;
  bool operator==(const GossipRegistered&) const = default;
};
// A server's report. The registration rides along so that a replica started after it learns it.
struct GossipStats {
  fleet::VideoServer server;
  proto::Stats stats;
  bool operator==(const GossipStats&) const = default;
};
// The server's reporting connection to the sending replica closed.
struct GossipGone {
  std::string server;
  bool operator==(const GossipGone&) const = default;
};
// A client of the sending replica reported that media through the server fails.
struct GossipFailureReport {
  std::string server;
  std::string user;
  std::string address;  // the reporting client's; empty from replicas that predate it
  bool operator==(const GossipFailureReport&) const = default;
};
// An operator drained (or undrained) the server through the sending replica.
struct GossipDrain {
  std::string server;
  bool drained = true;
  bool operator==(const GossipDrain&) const = default;
};

using GossipEvent =
    std::variant<GossipRegistered, GossipStats, GossipGone, GossipFailureReport, GossipDrain>;

struct FleetGossip {
  std::string replica;  // the sender (a replica ignores its own messages)
  GossipEvent event;
  bool operator==(const FleetGossip&) const = default;
};

enum class GossipError : std::uint8_t {
  kMalformed,        // not replica \t kind \t server, or an id that is not a valid id
  kUnknownKind,      // a kind this version does not know
  kMissingField,     // fewer fields than the kind needs
  kBadRegistration,  // the register JSON does not decode, or names another server
  kBadStats,         // the stats JSON does not decode
};
inline constexpr std::size_t kGossipErrorCount =
    static_cast<std::size_t>(GossipError::kBadStats) + 1;
std::string_view GossipErrorName(GossipError error);

std::string EncodeGossip(const FleetGossip& gossip);
base::Result<FleetGossip, GossipError> DecodeGossip(std::string_view text);

}  // namespace vrouter::store
