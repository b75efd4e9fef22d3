// The Redis layout and encodings (router/store/redis_schema.h), without a server: records and
// change messages round-trip, anything malformed is refused, key names carry the hash tags.
#include "router/store/redis_schema.h"

#include <gtest/gtest.h>

#include <string>

#include "router/store/cluster_slots.h"

namespace vrouter::store::redis {
namespace {

Record SampleRecord() { return Record{1712345678901234, "vs-eu-1", "replica-a", 42, 0}; }

// ---------------------------------------------------------------- records

TEST(RedisSchemaRecord, EncodesAsTabSeparatedFields) {
  EXPECT_EQ(EncodeRecord(SampleRecord()), "1712345678901234\tvs-eu-1\treplica-a\t42\t0");
}

TEST(RedisSchemaRecord, RoundTrips) {
  const Record attached = SampleRecord();
  EXPECT_EQ(DecodeRecord(EncodeRecord(attached)), attached);

  const Record detached{7, "vs 2 (with spaces)", "r:b", 0, 1712345678901};
  EXPECT_EQ(DecodeRecord(EncodeRecord(detached)), detached);

  constexpr auto kMax = proto::kMaxSafeInteger;
  const Record extremes{kMax, std::string(128, 's'), "r", kMax, static_cast<std::int64_t>(kMax)};
  EXPECT_EQ(DecodeRecord(EncodeRecord(extremes)), extremes);

  const Record utf8{1, "serveur-é", "réplique", 1, 0};
  EXPECT_EQ(DecodeRecord(EncodeRecord(utf8)), utf8);
}

// Issue 16 item 7: a record with epoch 2^64-1 was read back and sent to clients, whose epochs
// stop at 2^53-1. Every number of a record is in the protocol's range, every id within its rule.
TEST(RedisSchemaRecord, RejectsValuesOutsideTheProtocolsRanges) {
  for (const std::string text : {
           "18446744073709551615\tvs\tr\t5\t0",  // 2^64 - 1
           "9007199254740992\tvs\tr\t5\t0",      // 2^53
           "1152921504606846976\tvs\tr\t5\t0",   // 2^60
           "00000000000000001\tvs\tr\t5\t0",     // 17 digits
           "1\tvs\tr\t9007199254740992\t0",      // session 2^53
           "1\tvs\tr\t5\t9007199254740992",      // detach time 2^53
           "1\tvs\tr\t5\t-1",                    // a negative detach time
       }) {
    SCOPED_TRACE(text);
    EXPECT_EQ(DecodeRecord(text), std::nullopt);
  }
  EXPECT_EQ(DecodeRecord("1\t" + std::string(129, 's') + "\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\t" + std::string(129, 'r') + "\t5\t0"), std::nullopt);
  EXPECT_TRUE(DecodeRecord("9007199254740991\tvs\tr\t5\t0").has_value());
}

TEST(RedisSchemaNumber, DigitsWithinTheSafeRange) {
  EXPECT_EQ(DecodeNumber("0"), 0u);
  EXPECT_EQ(DecodeNumber("17"), 17u);
  EXPECT_EQ(DecodeNumber("9007199254740991"), proto::kMaxSafeInteger);
  for (const std::string_view bad :
       {"", "9007199254740992", "18446744073709551615", "-1", "+1", " 1", "1 ", "1.0", "1e3",
        "0x10", "abc", "00000000000000001"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(DecodeNumber(bad), std::nullopt);
  }
}

TEST(RedisSchemaDefect, NamesRoundTrip) {
  for (std::size_t i = 0; i < kDefectCount; ++i) {
    const auto d = static_cast<Defect>(i);
    EXPECT_EQ(DefectFromName(DefectName(d)), d);
  }
  EXPECT_EQ(DefectFromName("nonsense"), std::nullopt);
  EXPECT_EQ(DefectName(Defect::kWrongType), "wrong_type");
}

TEST(RedisSchemaRecord, RejectsMissingFields) {
  EXPECT_EQ(DecodeRecord(""), std::nullopt);
  EXPECT_EQ(DecodeRecord("1"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5"), std::nullopt);
  // Empty fields where an id or a number belongs.
  EXPECT_EQ(DecodeRecord("1\t\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\t\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5\t"), std::nullopt);
}

TEST(RedisSchemaRecord, RejectsNonNumericEpochSessionOrDetachTime) {
  EXPECT_EQ(DecodeRecord("x\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("12a\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord(" 12\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("+12\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("-12\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1.5\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("18446744073709551616\tvs\tr\t5\t0"), std::nullopt);  // > 2^64 - 1
  EXPECT_EQ(DecodeRecord("1\tvs\tr\tfive\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t-5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5 \t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5\tnow"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5\t0x10"), std::nullopt);
}

TEST(RedisSchemaRecord, RejectsEpochZero) {
  EXPECT_EQ(DecodeRecord("0\tvs\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord(EncodeRecord(Record{0, "vs", "r", 5, 0})), std::nullopt);
}

TEST(RedisSchemaRecord, RejectsControlCharactersInIds) {
  EXPECT_EQ(DecodeRecord(std::string("1\tv\ns\tr\t5\t0")), std::nullopt);
  EXPECT_EQ(DecodeRecord(std::string("1\tvs\tr\r\t5\t0")), std::nullopt);
  EXPECT_EQ(DecodeRecord(std::string("1\tv\x7fs\tr\t5\t0")), std::nullopt);
  EXPECT_EQ(DecodeRecord(std::string("1\tvs\tr\x01\t5\t0")), std::nullopt);
  EXPECT_EQ(DecodeRecord(std::string("1\tvs\0\tr\t5\t0", 11)), std::nullopt);
}

TEST(RedisSchemaRecord, RejectsExtraTabs) {
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5\t0\t"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\tr\t5\t0\textra"), std::nullopt);
  EXPECT_EQ(DecodeRecord("1\tvs\t\tr\t5\t0"), std::nullopt);
  EXPECT_EQ(DecodeRecord("\t1\tvs\tr\t5\t0"), std::nullopt);
}

// ---------------------------------------------------------------- change messages

ChangeMessage SampleChange(ChangeMessage::Kind kind) {
  ChangeMessage m;
  m.seq = 17;
  m.kind = kind;
  m.space = "room-1";
  m.user = "alice";
  m.record = SampleRecord();
  m.from_server = kind == ChangeMessage::Kind::kAssigned ? "vs-eu-0" : "";
  return m;
}

void ExpectSameChange(const ChangeMessage& got, const ChangeMessage& want) {
  EXPECT_EQ(got.seq, want.seq);
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.space, want.space);
  EXPECT_EQ(got.user, want.user);
  EXPECT_EQ(got.record, want.record);
  EXPECT_EQ(got.from_server, want.from_server);
}

TEST(RedisSchemaChange, EncodesAsTheScriptsPublish) {
  EXPECT_EQ(EncodeChange(SampleChange(ChangeMessage::Kind::kAssigned)),
            "17\ta\troom-1\talice\t1712345678901234\tvs-eu-1\treplica-a\t42\t0\tvs-eu-0");
  EXPECT_EQ(EncodeChange(SampleChange(ChangeMessage::Kind::kRemoved)),
            "17\tr\troom-1\talice\t1712345678901234\tvs-eu-1\treplica-a\t42\t0\t");
}

TEST(RedisSchemaChange, RoundTripsEveryKind) {
  for (auto kind : {ChangeMessage::Kind::kAssigned, ChangeMessage::Kind::kOwner,
                    ChangeMessage::Kind::kRemoved}) {
    SCOPED_TRACE(static_cast<char>(kind));
    const ChangeMessage m = SampleChange(kind);
    auto decoded = DecodeChange(EncodeChange(m));
    ASSERT_TRUE(decoded.has_value());
    ExpectSameChange(*decoded, m);
  }
}

TEST(RedisSchemaChange, AssignedWithoutPreviousServerRoundTrips) {
  ChangeMessage m = SampleChange(ChangeMessage::Kind::kAssigned);
  m.from_server.clear();
  auto decoded = DecodeChange(EncodeChange(m));
  ASSERT_TRUE(decoded.has_value());
  ExpectSameChange(*decoded, m);
}

TEST(RedisSchemaChange, DetachedOwnerChangeRoundTrips) {
  ChangeMessage m = SampleChange(ChangeMessage::Kind::kOwner);
  m.record.session = 0;
  m.record.detached_ms = 1712345678901;
  auto decoded = DecodeChange(EncodeChange(m));
  ASSERT_TRUE(decoded.has_value());
  ExpectSameChange(*decoded, m);
}

TEST(RedisSchemaChange, RejectsBadKinds) {
  const std::string tail = "\troom-1\talice\t5\tvs\tr\t1\t0\t";
  ASSERT_TRUE(DecodeChange("1\ta" + tail).has_value());
  for (const std::string kind : {"x", "A", "R", "ao", "", "0", " "}) {
    SCOPED_TRACE("kind '" + kind + "'");
    EXPECT_EQ(DecodeChange("1\t" + kind + tail), std::nullopt);
  }
}

TEST(RedisSchemaChange, RejectsMalformedPayloads) {
  const std::string good = "1\ta\troom-1\talice\t5\tvs\tr\t1\t0\tvs-old";
  ASSERT_TRUE(DecodeChange(good).has_value());
  const std::string bad[] = {
      "",
      "1",
      "1\ta\troom-1\talice\t5\tvs\tr\t1\t0",                   // no from_server field
      "x\ta\troom-1\talice\t5\tvs\tr\t1\t0\t",                 // non-numeric seq
      "-1\ta\troom-1\talice\t5\tvs\tr\t1\t0\t",                // negative seq
      "\ta\troom-1\talice\t5\tvs\tr\t1\t0\t",                  // empty seq
      "1\ta\t\talice\t5\tvs\tr\t1\t0\t",                       // empty space
      "1\ta\troom-1\t\t5\tvs\tr\t1\t0\t",                      // empty user
      "1\ta\troom\x01\talice\t5\tvs\tr\t1\t0\t",               // control character in the space
      "1\ta\troom-1\tal\nice\t5\tvs\tr\t1\t0\t",               // control character in the user
      "1\ta\troom-1\talice\t0\tvs\tr\t1\t0\t",                 // epoch 0
      "1\ta\troom-1\talice\tfive\tvs\tr\t1\t0\t",              // non-numeric epoch
      "1\ta\troom-1\talice\t5\t\tr\t1\t0\t",                   // empty server
      "1\ta\troom-1\talice\t5\tvs\tr\tone\t0\t",               // non-numeric session
      "1\ta\troom-1\talice\t5\tvs\tr\t1\tx\t",                 // non-numeric detach time
      "1\ta\troom-1\talice\t5\tvs\tr\t1\t0\tvs\told",          // extra tab
      "1\ta\troom-1\talice\t5\tvs\tr\t1\t0\tv\rs",             // control character in from_server
      "9007199254740992\ta\troom-1\talice\t5\tvs\tr\t1\t0\t",  // seq 2^53
      "1\tr\troom-1\talice\t1152921504606846976\tvs\tr\t1\t0\t",  // epoch 2^60
  };
  for (const std::string& text : bad) {
    SCOPED_TRACE(text);
    EXPECT_EQ(DecodeChange(text), std::nullopt);
  }
}

// ---------------------------------------------------------------- keys and channels

TEST(RedisSchemaKeys, SpaceKeysUseTheSpaceAsHashTag) {
  EXPECT_EQ(SpaceKey("s"), "vr:{s}");
  EXPECT_EQ(SpaceKey("room-1"), "vr:{room-1}");
}

TEST(RedisSchemaKeys, OtherKeysAndChannels) {
  EXPECT_EQ(UserKey("alice"), "vr:u:{alice}");
  EXPECT_EQ(ReplicaSpacesKey("r1"), "vr:rs:{r1}");
  EXPECT_EQ(ReplicaLoadKey("r1"), "vr:rl:{r1}");
  EXPECT_EQ(ReapLockKey("r1"), "vr:reap:{r1}");
  EXPECT_EQ(SpaceChannel("room-1", PubSub::kClassic), "vr:space:room-1");
  EXPECT_EQ(UserChannel("alice", PubSub::kClassic), "vr:user:alice");
  EXPECT_EQ(SpaceChannel("room-1", PubSub::kSharded), "vr:{room-1}");
  EXPECT_EQ(UserChannel("alice", PubSub::kSharded), "vr:u:{alice}");
  EXPECT_EQ(kReplicasKey, "vr:replicas");
  EXPECT_EQ(kFleetChannel, "vr:fleet");
  EXPECT_TRUE(SpaceChannel("x", PubSub::kClassic).starts_with(kSpaceChannelPrefix));
}

// A shard channel lives in its name's slot: the space's (user's) channel must share the slot of
// the space's (user's) key, or a script could not SPUBLISH it and watchers would listen on
// another shard. Names with braces too: one starting with '}' has an empty hash tag (the whole
// string is hashed).
TEST(RedisSchemaKeys, ShardChannelsShareTheirKeysSlot) {
  for (const std::string name : {"room-1", "a", "x}y", "{z}", "}", "long-name-0123456789"}) {
    EXPECT_EQ(cluster::KeySlot(SpaceChannel(name, PubSub::kSharded)),
              cluster::KeySlot(SpaceKey(name)))
        << name;
    EXPECT_EQ(cluster::KeySlot(UserChannel(name, PubSub::kSharded)),
              cluster::KeySlot(UserKey(name)))
        << name;
  }
}

TEST(RedisSchemaKeys, ChannelsNameTheirSpaceOrUser) {
  for (const PubSub mode : {PubSub::kClassic, PubSub::kSharded}) {
    EXPECT_EQ(SpaceOfChannel(SpaceChannel("room-1", mode), mode), "room-1");
    EXPECT_EQ(UserOfChannel(UserChannel("alice", mode), mode), "alice");
    EXPECT_EQ(SpaceOfChannel(UserChannel("alice", mode), mode), std::nullopt);
    EXPECT_EQ(UserOfChannel(SpaceChannel("room-1", mode), mode), std::nullopt);
    EXPECT_EQ(SpaceOfChannel(kFleetChannel, mode), std::nullopt);
  }
  // A classic channel heard in sharded mode (or a truncated one) names nothing.
  EXPECT_EQ(SpaceOfChannel("vr:space:room-1", PubSub::kSharded), std::nullopt);
  EXPECT_EQ(SpaceOfChannel("vr:{room-1", PubSub::kSharded), std::nullopt);
  EXPECT_EQ(UserOfChannel("vr:u:{}", PubSub::kSharded), std::nullopt);
  EXPECT_EQ(SpaceOfChannel("vr:space:", PubSub::kClassic), std::nullopt);
}

TEST(RedisScriptsTest, ShardedScriptsSpublishTheSpaceAndHandBackTheUsersChange) {
  for (const std::string_view script :
       {kPutScript, kAttachScript, kDetachScript, kRemoveScript, kExpireScript, kOrphanScript}) {
    EXPECT_EQ(SpaceScriptFor(script, PubSub::kClassic), script);
    const std::string sharded = SpaceScriptFor(script, PubSub::kSharded);
    EXPECT_NE(sharded, script);
    EXPECT_NE(sharded.find("local SHARDED = true\n"), std::string::npos);
    EXPECT_EQ(sharded.find("local SHARDED = false\n"), std::string::npos);
  }
}

TEST(RedisSchemaKeys, ToAssignmentCarriesTheRecord) {
  const auto since = base::SteadyTime(std::chrono::seconds(5));
  const auto a = ToAssignment("alice", "room-1", SampleRecord(), since);
  EXPECT_EQ(a, (assign::Assignment{"alice", "room-1", "vs-eu-1", 1712345678901234, "replica-a", 42,
                                   since}));
}

// Redis Cluster routes a script by its declared keys (KEYS), and a script that touches any other
// key fails on a node that does not own that key's slot. So every key a script reads or writes is
// one of its KEYS (channels are not keys: PUBLISH broadcasts across a cluster; TIME takes none).
// With the RedisClusterNode contract tests (declared keys in one slot), this keeps every script
// inside one slot (issue 18).
TEST(RedisScriptsTest, EveryKeyAScriptTouchesIsDeclared) {
  const std::pair<const char*, std::string_view> scripts[] = {
      {"put", kPutScript},          {"attach", kAttachScript},
      {"detach", kDetachScript},    {"remove", kRemoveScript},
      {"expire", kExpireScript},    {"orphan", kOrphanScript},
      {"lease", kLeaseScript},      {"pointer_delete", kPointerDeleteScript},
      {"own_load", kOwnLoadScript}, {"hello_count", kHelloCountScript},
      {"admit", kAdmitScript}};
  for (const auto& [name, source] : scripts) {
    std::size_t calls = 0;
    for (std::size_t at = source.find("redis.call("); at != std::string_view::npos;
         at = source.find("redis.call(", at + 1)) {
      ++calls;
      // redis.call('NAME', FIRST, ...): FIRST is the key for every command these scripts send
      // but the keyless ones.
      const std::string_view rest = source.substr(at + 11);
      const auto name_end = rest.find('\'', 1);
      ASSERT_NE(name_end, std::string_view::npos) << name;
      const std::string_view command = rest.substr(1, name_end - 1);
      // SPUBLISH names a shard channel of the space's slot (ShardChannelsShareTheirKeysSlot).
      if (command == "TIME" || command == "PUBLISH" || command == "SPUBLISH") continue;
      const std::string_view first = rest.substr(name_end + 1);
      EXPECT_TRUE(first.starts_with(", KEYS[")) << name << ": " << command << first.substr(0, 30);
    }
    EXPECT_GT(calls, 0u) << name;
  }
}

}  // namespace
}  // namespace vrouter::store::redis
