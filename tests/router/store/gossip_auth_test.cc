// The fleet channel's authentication (router/store/gossip_auth.h): only messages sealed with the
// replicas' key open, within the time window, once.
#include "router/store/gossip_auth.h"

#include <gtest/gtest.h>

#include <string>

namespace vrouter::store {
namespace {

constexpr std::string_view kKey = "0123456789abcdef-replica-key";
constexpr std::string_view kGossip = "replica-a\treg\tsfu-1\t{\"type\":\"register\"}";
constexpr std::int64_t kNow = 1'712'345'678'901;

GossipAuthError ErrorOf(const base::Result<std::string_view, GossipAuthError>& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? GossipAuthError::kUnsigned : r.error();
}

TEST(GossipAuthTest, SealedMessageOpensToTheGossip) {
  GossipSealer sealer{std::string(kKey), "replica-a~1f"};
  GossipOpener opener{std::string(kKey)};
  const std::string sealed = sealer.Seal(kGossip, kNow);
  EXPECT_TRUE(sealed.starts_with("v1\t1712345678901\treplica-a~1f\t1\t")) << sealed;
  const auto opened = opener.Open(sealed, kNow + 20);
  ASSERT_TRUE(opened.ok()) << GossipAuthErrorName(opened.error());
  EXPECT_EQ(opened.value(), kGossip);
}

// Write access to pub/sub alone: a plain message, or one sealed with another key, is refused.
TEST(GossipAuthTest, UnsignedOrWronglySignedMessagesAreRefused) {
  GossipOpener opener{std::string(kKey)};
  EXPECT_EQ(ErrorOf(opener.Open(kGossip, kNow)), GossipAuthError::kUnsigned);
  EXPECT_EQ(ErrorOf(opener.Open("", kNow)), GossipAuthError::kUnsigned);
  EXPECT_EQ(ErrorOf(opener.Open("v1\tnow\ts\t1\t" + std::string(64, 'a') + "\tx", kNow)),
            GossipAuthError::kUnsigned);

  GossipSealer other{"another-key-0123456789", "forger"};
  EXPECT_EQ(ErrorOf(opener.Open(other.Seal(kGossip, kNow), kNow)), GossipAuthError::kBadMac);

  // Every part of the message is covered by the MAC.
  GossipSealer sealer{std::string(kKey), "replica-a"};
  const std::string sealed = sealer.Seal(kGossip, kNow);
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"sfu-1", "sfu-2"},
                                                        {"1712345678901", "1712345678902"},
                                                        {"replica-a\t1", "replica-b\t1"},
                                                        {"\t1\t", "\t2\t"}}) {
    std::string tampered = sealed;
    tampered.replace(tampered.find(from), from.size(), to);
    EXPECT_EQ(ErrorOf(opener.Open(tampered, kNow)), GossipAuthError::kBadMac) << tampered;
  }
  // A replica without a key accepts nothing.
  GossipOpener keyless{""};
  GossipSealer keyless_sealer{"", "r"};
  EXPECT_EQ(ErrorOf(keyless.Open(keyless_sealer.Seal(kGossip, kNow), kNow)),
            GossipAuthError::kBadMac);
}

TEST(GossipAuthTest, MessagesOutsideTheWindowAreStale) {
  GossipSealer sealer{std::string(kKey), "replica-a"};
  GossipOpener opener{std::string(kKey), std::chrono::milliseconds(30000)};
  EXPECT_EQ(ErrorOf(opener.Open(sealer.Seal(kGossip, kNow - 30001), kNow)),
            GossipAuthError::kStale);
  EXPECT_EQ(ErrorOf(opener.Open(sealer.Seal(kGossip, kNow + 30001), kNow)),
            GossipAuthError::kStale);
  EXPECT_TRUE(opener.Open(sealer.Seal(kGossip, kNow - 30000), kNow).ok());
}

TEST(GossipAuthTest, ReplayedMessagesAreRefused) {
  GossipSealer sealer{std::string(kKey), "replica-a"};
  GossipOpener opener{std::string(kKey)};
  const std::string first = sealer.Seal(kGossip, kNow);
  const std::string second = sealer.Seal(kGossip, kNow + 1);
  ASSERT_TRUE(opener.Open(first, kNow).ok());
  EXPECT_EQ(ErrorOf(opener.Open(first, kNow + 2)), GossipAuthError::kReplayed);
  ASSERT_TRUE(opener.Open(second, kNow + 2).ok());
  EXPECT_EQ(ErrorOf(opener.Open(first, kNow + 3)), GossipAuthError::kReplayed);
  EXPECT_EQ(ErrorOf(opener.Open(second, kNow + 3)), GossipAuthError::kReplayed);

  // A restarted replica is another sender: its sequence starts again.
  GossipSealer restarted{std::string(kKey), "replica-a~2"};
  EXPECT_TRUE(opener.Open(restarted.Seal(kGossip, kNow + 4), kNow + 4).ok());

  // A sender silent for longer than the window is forgotten; its old messages are stale by then.
  const std::int64_t later = kNow + 60000;
  EXPECT_TRUE(opener.Open(GossipSealer(std::string(kKey), "x").Seal(kGossip, later), later).ok());
  EXPECT_EQ(ErrorOf(opener.Open(second, later)), GossipAuthError::kStale);
}

}  // namespace
}  // namespace vrouter::store
