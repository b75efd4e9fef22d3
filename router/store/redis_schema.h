// How the replicated state is laid out in Redis, and the scripts that change it. Pure: no I/O,
// so the encoding is unit-tested and fuzzed without a server.
//
// Keys (every key of a space shares the space as its Redis Cluster hash tag):
//   vr:{<space>}        HASH  user -> record; the empty field "" holds the space's change sequence
//   vr:u:{<user>}       STRING the space the user was last written in (lookups outside held spaces)
//   vr:replicas         ZSET  replica -> lease deadline (ms, Redis clock)
//   vr:reap:{<replica>} STRING which live replica is taking a dead one's spaces in hand
//   vr:rs:{<replica>}   SET   spaces the replica has served (reaped after it dies)
//   vr:rl:{<replica>}   HASH  video server -> live users of the replica (expires with its lease)
//   vr:h:{<user>}       STRING hellos of the user in the current window (expires with it)
//   vr:ha:{<address>}   STRING hellos from the client address in the current window
// Channels: vr:space:<space> (every change of the space, for local copies), vr:user:<user> (every
// change of the user, for watchers), vr:fleet (video-server reports, shared scoring evidence).
//
// A record is "epoch\tserver\treplica\tsession\tdetached_ms" (ids hold no control characters).
// A change message is "seq\tkind\tspace\tuser\t<record>\tfrom_server", kind one of:
//   a  assigned (new or rewritten; from_server = the previous server or empty)
//   o  owner changed (attach, detach, orphaned): no client-visible change
//   r  removed (leave, expiry): the record is the one that ended
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "router/assign/assignment.h"

namespace vrouter::store::redis {

std::string SpaceKey(std::string_view space);
std::string UserKey(std::string_view user);
std::string SpaceChannel(std::string_view space);
std::string UserChannel(std::string_view user);
std::string ReplicaSpacesKey(std::string_view replica);
std::string ReplicaLoadKey(std::string_view replica);
std::string ReapLockKey(std::string_view replica);
std::string HelloUserKey(std::string_view user);
std::string HelloAddressKey(std::string_view address);
inline constexpr std::string_view kReplicasKey = "vr:replicas";
inline constexpr std::string_view kFleetChannel = "vr:fleet";
inline constexpr std::string_view kSpaceChannelPrefix = "vr:space:";
inline constexpr std::string_view kUserChannelPrefix = "vr:user:";

struct Record {
  std::uint64_t epoch = 0;
  std::string server;
  std::string replica;
  std::uint64_t session = 0;     // 0: detached
  std::int64_t detached_ms = 0;  // Redis clock, when detached
  bool operator==(const Record&) const = default;
};
std::string EncodeRecord(const Record& r);
std::optional<Record> DecodeRecord(std::string_view text);

struct ChangeMessage {
  enum class Kind : char { kAssigned = 'a', kOwner = 'o', kRemoved = 'r' };
  std::uint64_t seq = 0;
  Kind kind = Kind::kAssigned;
  std::string space, user;
  Record record;
  std::string from_server;  // kAssigned: the previous server, empty when there was none
};
std::optional<ChangeMessage> DecodeChange(std::string_view text);
std::string EncodeChange(const ChangeMessage& m);  // what the scripts publish (for tests)

// The assignment a record describes. `since` is the local time of receipt (steady clocks are
// per process; Redis-clock times are kept in the record).
assign::Assignment ToAssignment(std::string_view user, std::string_view space, const Record& r,
                                base::SteadyTime since);

// Lua sources. Every script touches exactly one key, KEYS[1] = SpaceKey(space), so each runs
// atomically on the shard that owns the space.
//   put     ARGV: user expected_epoch min_epoch server replica session space
//           -> {1, record, seq, from_server} written | {0, current record or false} conflict
//   attach  ARGV: user replica session space -> {1, record} | {0}
//   detach  ARGV: user replica session space -> 1 | 0
//   remove  ARGV: user replica session space -> {1, record} | {0}
//   expire  ARGV: space grace_ms user... -> removed count (detached longer than grace_ms)
//   orphan  ARGV: space dead_replica user... -> count (attached to dead_replica: now detached)
extern const std::string_view kPutScript;
extern const std::string_view kAttachScript;
extern const std::string_view kDetachScript;
extern const std::string_view kRemoveScript;
extern const std::string_view kExpireScript;
extern const std::string_view kOrphanScript;
// Lease: KEYS[1] = vr:replicas, ARGV replica ttl_ms forget_ms
//   -> {now_ms, dead_count, dead replica..., live replica...}
extern const std::string_view kLeaseScript;
// KEYS[1] = UserKey(user), ARGV space: deletes the pointer if it still names the space.
extern const std::string_view kPointerDeleteScript;
// KEYS[1] = ReplicaLoadKey(replica), ARGV ttl_ms (server count)...: this replica's live users per
// server, replaced whole (a dead replica's key expires with it).
extern const std::string_view kOwnLoadScript;
// KEYS[1] = a hello counter. ARGV: window_ms -> the count in the window, this hello included.
extern const std::string_view kHelloCountScript;

}  // namespace vrouter::store::redis
