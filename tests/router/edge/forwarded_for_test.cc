#include "router/edge/forwarded_for.h"

#include <gtest/gtest.h>

#include "tests/support/addresses.h"

namespace vrouter::edge {
namespace {

using vrouter::testing::Ip;
using vrouter::testing::MappedIpv4;

CidrSet Trusted(std::string_view text) { return std::get<CidrSet>(CidrSet::Parse(text)); }

class ForwardedForTest : public ::testing::Test {
 protected:
  const CidrSet trusted_ = Trusted("10.0.0.0/8,2001:db8:ffff::/48");
  const IpAddress balancer_ = Ip("10.0.0.2");
};

TEST_F(ForwardedForTest, UntrustedPeerIsTheClientWhateverTheHeaderSays) {
  EXPECT_EQ(ClientFromForwardedFor("1.1.1.1", Ip("203.0.113.5"), trusted_), Ip("203.0.113.5"));
  EXPECT_EQ(ClientFromForwardedFor("", Ip("203.0.113.5"), trusted_), Ip("203.0.113.5"));
  EXPECT_EQ(ClientFromForwardedFor("garbage", Ip("203.0.113.5"), trusted_), Ip("203.0.113.5"));
}

TEST_F(ForwardedForTest, NoTrustedProxiesMeansTheHeaderIsIgnored) {
  EXPECT_EQ(ClientFromForwardedFor("1.1.1.1", balancer_, CidrSet()), balancer_);
}

TEST_F(ForwardedForTest, TrustedPeerNamesTheClient) {
  EXPECT_EQ(ClientFromForwardedFor("198.51.100.7", balancer_, trusted_), Ip("198.51.100.7"));
  EXPECT_EQ(ClientFromForwardedFor("2001:db8::7", balancer_, trusted_), Ip("2001:db8::7"));
}

TEST_F(ForwardedForTest, TakesTheRightMostUntrustedEntry) {
  // The client claims 6.6.6.6; the balancer appended the address it really saw.
  EXPECT_EQ(ClientFromForwardedFor("6.6.6.6, 198.51.100.7", balancer_, trusted_),
            Ip("198.51.100.7"));
  // Two trusted hops in front of the client.
  EXPECT_EQ(
      ClientFromForwardedFor("6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2", balancer_, trusted_),
      Ip("198.51.100.7"));
}

TEST_F(ForwardedForTest, AllTrustedGivesTheLeftMost) {
  EXPECT_EQ(ClientFromForwardedFor("10.9.9.9, 10.1.1.1", balancer_, trusted_), Ip("10.9.9.9"));
}

TEST_F(ForwardedForTest, StopsAtGarbageAndReturnsTheLastGoodEntry) {
  EXPECT_EQ(ClientFromForwardedFor("1.1.1.1, nonsense, 10.1.1.1", balancer_, trusted_),
            Ip("10.1.1.1"));
  EXPECT_EQ(ClientFromForwardedFor("1.1.1.1, 10.1.1.1:8080, 10.2.2.2", balancer_, trusted_),
            Ip("10.2.2.2"));
}

TEST_F(ForwardedForTest, NoUsableEntryIsNullopt) {
  EXPECT_EQ(ClientFromForwardedFor("", balancer_, trusted_), std::nullopt);
  EXPECT_EQ(ClientFromForwardedFor("  ", balancer_, trusted_), std::nullopt);
  EXPECT_EQ(ClientFromForwardedFor("1.1.1.1, unknown", balancer_, trusted_), std::nullopt);
  EXPECT_EQ(ClientFromForwardedFor("1.1.1.1,", balancer_, trusted_), std::nullopt);
  EXPECT_EQ(ClientFromForwardedFor("198.51.100.7:4000", balancer_, trusted_), std::nullopt);
}

TEST_F(ForwardedForTest, AcceptsBracketedIpv6AndBlanks) {
  EXPECT_EQ(ClientFromForwardedFor("\t[2001:db8::7] ,10.1.1.1 ", balancer_, trusted_),
            Ip("2001:db8::7"));
  EXPECT_EQ(ClientFromForwardedFor("[2001:db8::7]:443", balancer_, trusted_), std::nullopt);
  EXPECT_EQ(ClientFromForwardedFor("[198.51.100.7]", balancer_, trusted_), std::nullopt);
}

TEST_F(ForwardedForTest, MappedAddressesAreCanonical) {
  const IpAddress mapped_balancer = MappedIpv4(10, 0, 0, 2);  // as a dual-stack listener sees it
  auto client = ClientFromForwardedFor("::ffff:198.51.100.7", mapped_balancer, trusted_);
  ASSERT_TRUE(client.has_value());
  EXPECT_FALSE(client->v6);
  EXPECT_EQ(client->ToString(), "198.51.100.7");
  // "::ffff:10.1.1.1" is the trusted 10.1.1.1 and is skipped.
  EXPECT_EQ(ClientFromForwardedFor("198.51.100.7, ::ffff:10.1.1.1", balancer_, trusted_),
            Ip("198.51.100.7"));
  // An untrusted mapped peer comes back as IPv4.
  EXPECT_FALSE(ClientFromForwardedFor("1.1.1.1", MappedIpv4(192, 0, 0, 2), trusted_)->v6);
}

}  // namespace
}  // namespace vrouter::edge
