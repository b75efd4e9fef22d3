#include "router/store/cluster_slots.h"

#include <gtest/gtest.h>

namespace vrouter::store::cluster {
namespace {

using Type = RedisReply::Type;

// Values from redis-server 7.0.15's CLUSTER KEYSLOT.
TEST(KeySlotTest, AgreesWithRedis) {
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("123456789"), 12739);
  EXPECT_EQ(KeySlot("vr:{room-42}"), 14655);
  EXPECT_EQ(KeySlot("vr:u:{alice}"), 749);
  EXPECT_EQ(KeySlot("vr:admr:{sfu-1}"), 10287);
  EXPECT_EQ(KeySlot("foo{}{bar}"), 8363);     // an empty tag: the whole key
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), 4015);  // the tag is "{bar"
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), 5061);  // the first tag only: "bar"
  EXPECT_EQ(KeySlot("{"), 4092);
}

// The store's keys of one space, or of one server, share a slot (their hash tag).
TEST(KeySlotTest, AHashTagKeepsKeysTogether) {
  EXPECT_EQ(KeySlot("vr:{room}"), KeySlot("vr:space:{room}"));
  EXPECT_EQ(KeySlot("vr:adm:{sfu-1}"), KeySlot("vr:admr:{sfu-1}"));
  EXPECT_NE(KeySlot("vr:adm:sfu-1"), KeySlot("vr:admr:sfu-1"));
}

TEST(RedirectTest, MovedAndAsk) {
  EXPECT_EQ(ParseRedirect("MOVED 3999 127.0.0.1:6381"),
            (Redirect{RedirectKind::kMoved, 3999, {"127.0.0.1", 6381}}));
  EXPECT_EQ(ParseRedirect("ASK 16383 [::1]:7000"),
            (Redirect{RedirectKind::kAsk, 16383, {"::1", 7000}}));
  EXPECT_EQ(ParseRedirect("MOVED 0 redis-2.internal:6379"),
            (Redirect{RedirectKind::kMoved, 0, {"redis-2.internal", 6379}}));
  // The node that answered, on another port.
  EXPECT_EQ(ParseRedirect("MOVED 12 :6380"), (Redirect{RedirectKind::kMoved, 12, {"", 6380}}));
}

TEST(RedirectTest, AnythingElseIsNotARedirect) {
  for (std::string_view text :
       {"", "MOVED", "MOVED 1", "MOVED 16384 h:1", "MOVED -1 h:1", "MOVED x h:1", "MOVED 1 h",
        "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h:1x", "ASK 1  h:1", "moved 1 h:1",
        "CROSSSLOT Keys in request don't hash to the same slot", "TRYAGAIN", "CLUSTERDOWN"}) {
    EXPECT_EQ(ParseRedirect(text), std::nullopt) << text;
  }
}

RedisReply Int(std::int64_t n) {
  RedisReply r;
  r.type = Type::kInteger;
  r.integer = n;
  return r;
}
RedisReply Str(std::string s) {
  RedisReply r;
  r.type = Type::kString;
  r.str = std::move(s);
  return r;
}
RedisReply Arr(std::vector<RedisReply> e) {
  RedisReply r;
  r.type = Type::kArray;
  r.elements = std::move(e);
  return r;
}
RedisReply Range(std::int64_t start, std::int64_t end, std::string host, std::int64_t port) {
  return Arr({Int(start), Int(end), Arr({Str(std::move(host)), Int(port), Str("id")}),
              Arr({Str("10.0.0.9"), Int(7000), Str("replica-id")})});
}

TEST(ClusterSlotsTest, ThreeShards) {
  const auto map =
      ParseClusterSlots(Arr({Range(0, 5460, "10.0.0.1", 7000), Range(5461, 10922, "", 7001),
                             Range(10923, 16383, "10.0.0.3", 7002)}),
                        {"10.0.0.2", 7001});
  ASSERT_TRUE(map.ok()) << SlotMapErrorName(map.error());
  EXPECT_EQ(map->primaries.size(), 3u);
  EXPECT_EQ(map->unassigned(), 0u);
  EXPECT_EQ(*map->OwnerOf(0), (Node{"10.0.0.1", 7000}));
  EXPECT_EQ(*map->OwnerOf(5461), (Node{"10.0.0.2", 7001}));  // an empty host: who answered
  EXPECT_EQ(*map->OwnerOf(16383), (Node{"10.0.0.3", 7002}));
}

TEST(ClusterSlotsTest, OneNodeServingSeveralRangesAndSlotsLeftUncovered) {
  const auto map = ParseClusterSlots(
      Arr({Range(0, 99, "a", 1), Range(200, 299, "a", 1), Range(100, 150, "b", 2)}), {"a", 1});
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->primaries.size(), 2u);
  EXPECT_EQ(map->OwnerOf(151), nullptr);
  EXPECT_EQ(map->unassigned(), std::size_t{kSlots} - 251);
}

TEST(ClusterSlotsTest, BadMapsAreTypedErrors) {
  const Node who{"h", 1};
  EXPECT_EQ(ParseClusterSlots(Str("nope"), who).error(), SlotMapError::kNotAnArray);
  EXPECT_EQ(ParseClusterSlots(Arr({Arr({Int(0), Int(1)})}), who).error(), SlotMapError::kBadRange);
  EXPECT_EQ(ParseClusterSlots(Arr({Range(5, 4, "h", 1)}), who).error(), SlotMapError::kBadRange);
  EXPECT_EQ(ParseClusterSlots(Arr({Range(0, 16384, "h", 1)}), who).error(),
            SlotMapError::kBadRange);
  EXPECT_EQ(ParseClusterSlots(Arr({Range(-1, 3, "h", 1)}), who).error(), SlotMapError::kBadRange);
  EXPECT_EQ(ParseClusterSlots(Arr({Range(0, 3, "h", 0)}), who).error(), SlotMapError::kBadNode);
  EXPECT_EQ(ParseClusterSlots(Arr({Range(0, 3, "h", 70000)}), who).error(), SlotMapError::kBadNode);
  EXPECT_EQ(ParseClusterSlots(Arr({Arr({Int(0), Int(3), Str("h:1")})}), who).error(),
            SlotMapError::kBadNode);
  EXPECT_EQ(ParseClusterSlots(Arr({Range(0, 10, "a", 1), Range(10, 20, "b", 2)}), who).error(),
            SlotMapError::kOverlap);
}

}  // namespace
}  // namespace vrouter::store::cluster
