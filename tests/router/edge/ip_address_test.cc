#include "router/edge/ip_address.h"

#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "tests/support/addresses.h"

namespace vrouter::edge {
namespace {

using vrouter::testing::Ip;
using vrouter::testing::MappedIpv4;

TEST(IpAddressTest, ParsesIpv4IntoTheFirstFourBytes) {
  const IpAddress a = Ip("192.0.2.1");
  EXPECT_FALSE(a.v6);
  EXPECT_EQ(a.bytes[0], 192);
  EXPECT_EQ(a.bytes[1], 0);
  EXPECT_EQ(a.bytes[2], 2);
  EXPECT_EQ(a.bytes[3], 1);
  for (std::size_t i = 4; i < 16; ++i) EXPECT_EQ(a.bytes[i], 0);
  EXPECT_EQ(a.ToString(), "192.0.2.1");
}

TEST(IpAddressTest, ParsesIpv6AndPrintsTheCanonicalText) {
  const IpAddress a = Ip("2001:DB8:0:0:1:0:0:1");
  EXPECT_TRUE(a.v6);
  EXPECT_EQ(a.bytes[0], 0x20);
  EXPECT_EQ(a.bytes[15], 1);
  EXPECT_EQ(a.ToString(), "2001:db8::1:0:0:1");
  EXPECT_EQ(Ip("::").ToString(), "::");
  EXPECT_EQ(Ip("::1").ToString(), "::1");
}

TEST(IpAddressTest, TurnsIpv4MappedIpv6IntoIpv4) {
  const IpAddress a = Ip("::ffff:192.0.2.1");
  EXPECT_FALSE(a.v6);
  EXPECT_EQ(a, Ip("192.0.2.1"));
  EXPECT_EQ(a.ToString(), "192.0.2.1");
  EXPECT_EQ(Ip("::FFFF:c000:0201"), Ip("192.0.2.1"));
  // Only the mapped block: the deprecated IPv4-compatible form and NAT64 stay IPv6.
  EXPECT_TRUE(Ip("::192.0.2.1").v6);
  EXPECT_TRUE(Ip("64:ff9b::192.0.2.1").v6);
}

TEST(IpAddressTest, NormalizedTurnsAHandBuiltMappedAddressIntoIpv4) {
  const IpAddress mapped = MappedIpv4(10, 0, 0, 7);
  EXPECT_TRUE(mapped.IsV4Mapped());
  EXPECT_EQ(mapped.ToString(), "::ffff:10.0.0.7");
  const IpAddress n = mapped.Normalized();
  EXPECT_FALSE(n.v6);
  EXPECT_FALSE(n.IsV4Mapped());
  EXPECT_EQ(n.ToString(), "10.0.0.7");
  EXPECT_EQ(mapped, n);  // equality compares canonical forms
}

TEST(IpAddressTest, FromBytesCanonicalizes) {
  const std::array<std::uint8_t, 16> mapped = {0, 0, 0,    0,    0, 0, 0, 0,
                                               0, 0, 0xff, 0xff, 1, 2, 3, 4};
  EXPECT_EQ(IpAddress::FromV6Bytes(mapped), Ip("1.2.3.4"));
  EXPECT_FALSE(IpAddress::FromV6Bytes(mapped).v6);
  const std::array<std::uint8_t, 4> v4 = {1, 2, 3, 4};
  EXPECT_EQ(IpAddress::FromV4Bytes(v4), Ip("1.2.3.4"));
}

TEST(IpAddressTest, RefusesWhatIsNotAPlainAddress) {
  for (std::string_view bad :
       {"",          " ",         "1.2.3.4 ",        " 1.2.3.4",  "1.2.3",
        "1.2.3.4.5", "256.0.0.1", "010.0.0.1",       "0x1.2.3.4", "1.2.3.4:80",
        "[::1]",     "[::1]:80",  "fe80::1%eth0",    "::1 ",      "1:2:3:4:5:6:7:8:9",
        ":::",       "1::2::3",   "::ffff:1.2.3.04", "localhost", "1.2.3.4/32",
        "\t::1"}) {
    EXPECT_FALSE(IpAddress::Parse(bad).has_value()) << "'" << bad << "'";
  }
  EXPECT_FALSE(IpAddress::Parse(std::string_view("1.2.3.4\0junk", 12)).has_value());
}

TEST(IpAddressTest, FamilySpecificParsersRefuseTheOtherFamily) {
  EXPECT_TRUE(IpAddress::ParseV4("1.2.3.4").has_value());
  EXPECT_FALSE(IpAddress::ParseV4("::1").has_value());
  EXPECT_FALSE(IpAddress::ParseV6("1.2.3.4").has_value());
  // IPv6 text for a mapped address is IPv6 text, and still comes back canonical.
  auto a = IpAddress::ParseV6("::ffff:1.2.3.4");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->v6);
}

TEST(IpAddressTest, MappedAndPlainIpv4AreOneHashKey) {
  absl::flat_hash_map<IpAddress, int> counts;
  ++counts[Ip("192.0.2.1")];
  ++counts[MappedIpv4(192, 0, 2, 1)];
  ++counts[Ip("2001:db8::1")];
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[Ip("192.0.2.1")], 2);
}

TEST(IpAddressTest, ToStringParsesBack) {
  for (std::string_view text :
       {"0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::8:800:200c:417a", "fe80::1",
        "ff02::1:ff00:1", "1:2:3:4:5:6:7:8"}) {
    const IpAddress a = Ip(text);
    EXPECT_EQ(a.ToString(), text);
    EXPECT_EQ(Ip(a.ToString()), a);
  }
}

}  // namespace
}  // namespace vrouter::edge
