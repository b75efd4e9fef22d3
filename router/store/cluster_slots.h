// Redis Cluster's routing rules, as pure functions: the slot a key lives in, the redirections a
// node answers with (MOVED, ASK), and the slot map a node describes (CLUSTER SLOTS). No I/O: the
// cluster client (issue 18) routes with them, and bench/cluster_distribution measures how the
// store's keys spread over the shards.
//
// Why by hand: Debian 12's hiredis (0.14) has no cluster support and exports no CRC16, and
// hiredis-cluster is not packaged there; the rules are short and specified in the Redis Cluster
// specification (key distribution model, redirection and resharding).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/base/result.h"
#include "router/store/redis_client.h"

namespace vrouter::store::cluster {

inline constexpr std::uint16_t kSlots = 16384;

// CRC16 (XMODEM: polynomial 0x1021, initial 0) of `key`'s hash tag (the bytes between its first
// '{' and the first '}' after it, when there are any), else of the whole key, modulo 16384.
std::uint16_t KeySlot(std::string_view key);

struct Node {
  std::string host;  // as the cluster announces it (an address, or a name)
  std::uint16_t port = 0;
  bool operator==(const Node&) const = default;
};
std::string ToString(const Node& node);  // host:port, [v6]:port

enum class RedirectKind : std::uint8_t { kMoved, kAsk };
// "MOVED <slot> <host>:<port>" or "ASK ...". An empty host (":6380") means the node that
// answered: `to.host` is then empty and the caller keeps the host it asked.
struct Redirect {
  RedirectKind kind = RedirectKind::kMoved;
  std::uint16_t slot = 0;
  Node to;
  bool operator==(const Redirect&) const = default;
};
// The redirection an error reply carries, or nullopt (another error, or a malformed redirection:
// a slot out of range, a port that is not one).
std::optional<Redirect> ParseRedirect(std::string_view error);

// Which primary serves each slot.
struct SlotMap {
  std::vector<Node> primaries;  // each once, in the order the map first names them
  // Index into primaries per slot; kUnassigned where no node serves it.
  static constexpr std::int16_t kUnassigned = -1;
  std::array<std::int16_t, kSlots> owner{};

  const Node* OwnerOf(std::uint16_t slot) const {
    const std::int16_t i = owner[slot];
    return i == kUnassigned ? nullptr : &primaries[static_cast<std::size_t>(i)];
  }
  std::size_t unassigned() const;  // slots no node serves (the cluster is not fully covered)
};

enum class SlotMapError : std::uint8_t {
  kNotAnArray,  // the reply is not CLUSTER SLOTS' array of ranges
  kBadRange,    // a range that is not [start <= end < 16384], or a range without its primary
  kBadNode,     // a node that is not [host, port, ...] with a port in 1..65535
  kOverlap,     // two ranges claim one slot
};
std::string_view SlotMapErrorName(SlotMapError error);

// From CLUSTER SLOTS: [[start, end, [host, port, id, ...], [replica...]...], ...]. An empty host
// names the node that answered (`answered`). Slots no range covers stay unassigned (the caller
// decides whether a partial map will do).
base::Result<SlotMap, SlotMapError> ParseClusterSlots(const RedisReply& reply,
                                                      const Node& answered);

}  // namespace vrouter::store::cluster
