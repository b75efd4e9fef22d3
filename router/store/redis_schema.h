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
//   vr:adm:{<server>}   STRING placements on the video server in its admission window (expires)
//   vr:admr:{<server>}  ZSET  its placements of the last few seconds -> when (ms, Redis clock)
// Channels: vr:space:<space> (every change of the space, for local copies), vr:user:<user> (every
// change of the user, for watchers), vr:fleet (video-server reports, shared scoring evidence).
// On Redis Cluster the space and user channels are shard channels (PubSub::kSharded), named
// exactly as the space's and the user's keys (vr:{<space>}, vr:u:{<user>}), so each lives in its
// key's slot. A script SPUBLISHes the space's change itself; it cannot publish in the user's
// slot (a script touches one slot), so it hands the user's message back ("VRTELL <message>",
// kTellPrefix) and the replica SPUBLISHes it.
//
// A record is "epoch\tserver\treplica\tsession\tdetached_ms" (ids hold no control characters).
// A change message is "seq\tkind\tspace\tuser\t<record>\tfrom_server", kind one of:
//   a  assigned (new or rewritten; from_server = the previous server or empty)
//   o  owner changed (attach, detach, orphaned): no client-visible change
//   r  removed (leave, expiry): the record is the one that ended
//
// Everything read back is checked against the protocol's ranges before use, here and in the
// scripts alike (they must agree): epochs in 1..2^53-1, sequences, sessions and times in
// 0..2^53-1 (proto::kMaxSafeInteger), ids per proto::IsValidId (1..128 bytes, no control
// character). What fails is a Defect: never used, never sent to a client, and either repaired or
// isolated (see Defect). Redis is trusted to hold what vrouter wrote, not to hold only that.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/messages.h"
#include "router/assign/assignment.h"

namespace vrouter::store::redis {

std::string SpaceKey(std::string_view space);
std::string UserKey(std::string_view user);
// How changes travel: classic pub/sub (one Redis, with or without Sentinel: every subscriber
// hears every PUBLISH) or sharded pub/sub (Redis Cluster, Redis >= 7: a change travels only
// inside the shard that holds its slot).
enum class PubSub : std::uint8_t { kClassic, kSharded };
std::string SpaceChannel(std::string_view space, PubSub mode);
std::string UserChannel(std::string_view user, PubSub mode);
// The space (user) a space (user) channel of `mode` carries; nullopt: not such a channel.
std::optional<std::string_view> SpaceOfChannel(std::string_view channel, PubSub mode);
std::optional<std::string_view> UserOfChannel(std::string_view channel, PubSub mode);
std::string ReplicaSpacesKey(std::string_view replica);
std::string ReplicaLoadKey(std::string_view replica);
std::string ReapLockKey(std::string_view replica);
std::string HelloUserKey(std::string_view user);
std::string HelloAddressKey(std::string_view address);
std::string AdmissionKey(std::string_view server);
std::string AdmissionRecentKey(std::string_view server);
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
// nullopt: not a valid record (a Defect::kRecord when a value was there).
std::optional<Record> DecodeRecord(std::string_view text);
// A stored number (a space's change sequence, a load count): decimal digits, 0..2^53-1.
std::optional<std::uint64_t> DecodeNumber(std::string_view text);

struct ChangeMessage {
  enum class Kind : char { kAssigned = 'a', kOwner = 'o', kRemoved = 'r' };
  std::uint64_t seq = 0;
  Kind kind = Kind::kAssigned;
  std::string space, user;
  Record record;
  std::string from_server;  // kAssigned: the previous server, empty when there was none
};
// nullopt: not a valid change message (dropped by the receiver, never applied).
std::optional<ChangeMessage> DecodeChange(std::string_view text);
std::string EncodeChange(const ChangeMessage& m);  // what the scripts publish (for tests)

// The assignment a record describes. `since` is the local time of receipt (steady clocks are
// per process; Redis-clock times are kept in the record).
assign::Assignment ToAssignment(std::string_view user, std::string_view space, const Record& r,
                                base::SteadyTime since);

// What can be wrong with the data found in Redis, and what is done about it (each is logged with
// the key and counted in vrouter_store_corrupt_records_total{kind}):
enum class Defect : std::uint8_t {
  // A user's record that is not a valid record: treated as absent (lookups do not find the user;
  // the next write of the user, e.g. a join, overwrites it).
  kRecord,
  // A space's change sequence that is not a number in range: the next write of the space resets
  // it to Redis's clock in microseconds, above any count it could have reached, so every local
  // copy sees a gap and reloads the space (no change is missed).
  kSequence,
  // A space key that is not a hash (WRONGTYPE): isolated. Writes in that space fail with
  // StoreError::kCorrupt, reads find nobody there; the key is never deleted (it is not ours to
  // delete: an operator repairs it). Other spaces are unaffected.
  kWrongType,
  // A user's pointer (vr:u:) that does not name a valid space: treated as absent.
  kPointer,
  // Anything else: a replica's load count, a space list entry: skipped.
  kOther,
};
inline constexpr std::size_t kDefectCount = static_cast<std::size_t>(Defect::kOther) + 1;
std::string_view DefectName(Defect d);
std::optional<Defect> DefectFromName(std::string_view name);

// A script's error reply for a space key of the wrong type: "VRCORRUPT wrong_type <key>".
inline constexpr std::string_view kCorruptReplyPrefix = "VRCORRUPT";
// A script that met bad data appends a status reply "VRDEFECTS <defect>[,<defect>...]" to its
// (array) reply; the replica strips it, counts and logs each defect.
inline constexpr std::string_view kDefectsPrefix = "VRDEFECTS ";

// Lua sources. Every key a script touches is one of its KEYS, and a script's KEYS share one hash
// tag, so each runs atomically on the shard that owns it (RedisScriptsTest and the
// RedisClusterNode contract tests check both). The space scripts below take KEYS[1] =
// SpaceKey(space).
// Each refuses a space key of the wrong type (kCorruptReplyPrefix) and repairs a bad sequence.
//   put     ARGV: user expected_epoch min_epoch server replica session space
//           -> {1, record, seq, from_server} written | {0, current record or false} conflict
//           (an invalid current record counts as none: it is overwritten)
//   attach  ARGV: user replica session space -> {1, record} | {0}
//   detach  ARGV: user replica session space -> {1} | {0}
//   remove  ARGV: user replica session space -> {1, record} | {0}
//   expire  ARGV: space grace_ms user... -> the users removed (detached longer than grace_ms)
//   orphan  ARGV: space dead_replica user... -> {count} (attached to dead_replica: now detached)
extern const std::string_view kPutScript;
extern const std::string_view kAttachScript;
extern const std::string_view kDetachScript;
extern const std::string_view kRemoveScript;
extern const std::string_view kExpireScript;
extern const std::string_view kOrphanScript;
// A space script's text for `mode`: as above for kClassic; for kSharded it SPUBLISHes the space's
// change and appends each change its watchers must hear to its answer, after the script's own
// elements and before any VRDEFECTS, as a status "VRTELL <change message>".
std::string SpaceScriptFor(std::string_view script, PubSub mode);
inline constexpr std::string_view kTellPrefix = "VRTELL ";
// Lease: KEYS[1] = vr:replicas (refused with kCorruptReplyPrefix when not a sorted set),
// ARGV replica ttl_ms forget_ms
//   -> {now_ms, dead_count, dead replica..., live replica...}
extern const std::string_view kLeaseScript;
// KEYS[1] = UserKey(user), ARGV space: deletes the pointer if it still names the space.
extern const std::string_view kPointerDeleteScript;
// KEYS[1] = ReplicaLoadKey(replica), ARGV ttl_ms (server count)...: this replica's live users per
// server, replaced whole (a dead replica's key expires with it).
extern const std::string_view kOwnLoadScript;
// KEYS[1] = a hello counter. ARGV: window_ms -> the count in the window, this hello included.
extern const std::string_view kHelloCountScript;
// KEYS[1] = a server's admission counter, KEYS[2] = its recent placements (same hash tag). ARGV:
// cap, window_ms, room, horizon_ms -> {admitted (0/1), count in the window (this placement
// included when admitted), ms until a refused placement may be asked again (else: left in the
// window)}.
extern const std::string_view kAdmitScript;

}  // namespace vrouter::store::redis
