// What replicas tell each other about the fleet (router/store/fleet_gossip.h): every kind
// round-trips in the wire form older replicas speak, and anything malformed gets a typed error.
#include "router/store/fleet_gossip.h"

#include <gtest/gtest.h>

#include <string>

namespace vrouter::store {
namespace {

const fleet::VideoServer kServer{"sfu-1", "wss://sfu-1.example/", "eu-west", 500, true};

proto::Stats SampleStats() {
  proto::Stats s;
  s.seq = 7;
  s.peers = 12;
  s.media_peers = 10;
  s.packets_in = 123456;
  s.packets_out = 987654;
  s.bytes_in = 1000000;
  s.bytes_out = 9000000;
  s.cpu = 0.25;
  return s;
}

TEST(FleetGossipTest, EveryKindRoundTrips) {
  const GossipEvent events[] = {
      GossipRegistered{kServer},
      GossipStats{kServer, SampleStats()},
      GossipGone{"sfu-1"},
      GossipFailureReport{"sfu-1", "alice", "192.0.2.7"},
      GossipFailureReport{"sfu-1", "carol", ""},
      GossipDrain{"sfu-1", true},
      GossipDrain{"sfu-1", false},
  };
  for (const auto& event : events) {
    const FleetGossip gossip{"replica-a", event};
    const std::string wire = EncodeGossip(gossip);
    const auto decoded = DecodeGossip(wire);
    ASSERT_TRUE(decoded.ok()) << wire << ": " << GossipErrorName(decoded.error());
    EXPECT_EQ(*decoded, gossip) << wire;
  }
}

// The wire form is what replicas of the previous version send and expect: a rolling upgrade
// mixes them.
TEST(FleetGossipTest, WireFormIsTabSeparated) {
  EXPECT_EQ(EncodeGossip({"r1", GossipGone{"sfu-1"}}), "r1\tgone\tsfu-1");
  EXPECT_EQ(EncodeGossip({"r1", GossipFailureReport{"sfu-1", "bob", ""}}),
            "r1\treport\tsfu-1\tbob");
  EXPECT_EQ(EncodeGossip({"r1", GossipDrain{"sfu-1", false}}), "r1\tundrain\tsfu-1");
  const std::string reg = EncodeGossip({"r1", GossipRegistered{kServer}});
  EXPECT_TRUE(reg.starts_with("r1\treg\tsfu-1\t{")) << reg;
  // The credential never travels between replicas.
  EXPECT_NE(reg.find("\"token\":\"verified-by-peer-replica\""), std::string::npos) << reg;
  const std::string stats = EncodeGossip({"r1", GossipStats{kServer, SampleStats()}});
  EXPECT_EQ(std::count(stats.begin(), stats.end(), '\t'), 4) << stats;
}

TEST(FleetGossipTest, FieldsANewerReplicaAppendsAreIgnored) {
  const auto decoded = DecodeGossip("r1\tgone\tsfu-1\tsomething-new");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->event, GossipEvent(GossipGone{"sfu-1"}));
}

// A report from a replica that predates the address field: the user stands for its address.
TEST(FleetGossipTest, AReportWithoutAnAddressIsAccepted) {
  const auto decoded = DecodeGossip("r1\treport\tsfu-1\tbob");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->event, GossipEvent(GossipFailureReport{"sfu-1", "bob", ""}));
  EXPECT_EQ(EncodeGossip({"r1", GossipFailureReport{"sfu-1", "bob", "2001:db8::1"}}),
            "r1\treport\tsfu-1\tbob\t2001:db8::1");
}

TEST(FleetGossipTest, MalformedMessagesGetTypedErrors) {
  const std::string reg = EncodeGossip({"r1", GossipRegistered{kServer}});
  const std::string reg_json = reg.substr(reg.find('{'));
  const struct {
    std::string text;
    GossipError error;
  } cases[] = {
      {"", GossipError::kMalformed},
      {"r1", GossipError::kMalformed},
      {"r1\tgone", GossipError::kMalformed},
      {"\tgone\tsfu-1", GossipError::kMalformed},      // no replica
      {"r1\tgone\t", GossipError::kMalformed},         // no server
      {"r1\tgone\tsfu\x01", GossipError::kMalformed},  // a control character in an id
      {"r1\tgone\t" + std::string(129, 's'), GossipError::kMalformed},  // an id too long
      {"r1\tshrug\tsfu-1", GossipError::kUnknownKind},
      {"r1\treg\tsfu-1", GossipError::kMissingField},
      {"r1\treport\tsfu-1", GossipError::kMissingField},
      {"r1\tstats\tsfu-1\t" + reg_json, GossipError::kMissingField},
      {"r1\treg\tsfu-1\tnot json", GossipError::kBadRegistration},
      {"r1\treg\tsfu-2\t" + reg_json, GossipError::kBadRegistration},  // names another server
      {"r1\tstats\tsfu-1\t" + reg_json + "\t{\"type\":\"stats\"}", GossipError::kBadStats},
      {"r1\tstats\tsfu-1\t" + reg_json + "\t" + reg_json, GossipError::kBadStats},
      {"r1\treport\tsfu-1\t", GossipError::kMalformed},           // no user
      {"r1\treport\tsfu-1\tbob\t\x7f", GossipError::kMalformed},  // a control character
  };
  for (const auto& c : cases) {
    const auto decoded = DecodeGossip(c.text);
    ASSERT_FALSE(decoded.ok()) << c.text;
    EXPECT_EQ(decoded.error(), c.error) << c.text << ": " << GossipErrorName(decoded.error());
  }
}

}  // namespace
}  // namespace vrouter::store
