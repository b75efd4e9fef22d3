// Authentication of what replicas tell each other on the fleet channel (vr:fleet, fleet_gossip.h).
// Write access to Redis's pub/sub alone must not inject video servers, reports or drains, so each
// message is sealed with HMAC-SHA256 under the replicas' shared key (--replica-key), and carries
// its sending time and a per-sender sequence number so that a captured message cannot be
// replayed: it is refused outside a window around the receiver's clock, and at or below the last
// sequence number accepted from its sender. Pure: no I/O, the time is injected; unit-tested.
//
// Wire form (one pub/sub message):
//   v1 \t <sent_ms> \t <sender> \t <seq> \t <mac> \t <gossip>
// sent_ms: the sender's estimate of Redis's clock (every replica measures the same clock, so host
// clocks need not agree); sender: random per process start (a restarted replica starts a new
// sequence); seq: 1, 2, ... per sender; mac: 64 lowercase hex digits of
// HMAC-SHA256(key, "vrouter.fleet.v1\n" + everything before "\t<mac>" + "\n" + gossip).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "router/base/result.h"

namespace vrouter::store {

// The shortest replica key accepted (e.g. `openssl rand -hex 32` gives 64 characters).
inline constexpr std::size_t kMinReplicaKeyBytes = 16;
// How far a message's sending time may be from the receiver's clock (either way).
inline constexpr std::chrono::milliseconds kGossipWindow{30000};

enum class GossipAuthError : std::uint8_t {
  kUnsigned,  // not in the sealed form (a replica without a key, or a forgery)
  kBadMac,    // the MAC does not verify with this replica's key
  kStale,     // sent outside the window around the receiver's clock
  kReplayed,  // a sequence number at or below one already accepted from the sender
};
inline constexpr std::size_t kGossipAuthErrorCount =
    static_cast<std::size_t>(GossipAuthError::kReplayed) + 1;
std::string_view GossipAuthErrorName(GossipAuthError error);

class GossipSealer {
 public:
  // `sender`: unique per process start (ids hold no tab).
  GossipSealer(std::string key, std::string sender);
  std::string Seal(std::string_view gossip, std::int64_t now_ms);

 private:
  std::string key_;
  std::string sender_;
  std::uint64_t seq_ = 0;
};

class GossipOpener {
 public:
  explicit GossipOpener(std::string key, std::chrono::milliseconds window = kGossipWindow);
  // The gossip inside `message` if it verifies, is within the window of `now_ms` and is newer than
  // anything accepted from its sender. Not thread-safe (it remembers senders).
  base::Result<std::string_view, GossipAuthError> Open(std::string_view message,
                                                       std::int64_t now_ms);

 private:
  struct Seen {
    std::uint64_t seq = 0;
    std::int64_t sent_ms = 0;
  };
  std::string key_;
  std::int64_t window_ms_;
  // Senders whose messages verified, forgotten once silent longer than the window (their old
  // messages are stale by then). Only holders of the key add to it.
  absl::flat_hash_map<std::string, Seen> senders_;
  std::int64_t pruned_at_ms_ = 0;
};

}  // namespace vrouter::store
