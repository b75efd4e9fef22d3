#include "router/edge/cidr.h"

#include <gtest/gtest.h>

#include "tests/support/addresses.h"

namespace vrouter::edge {
namespace {

using vrouter::testing::Ip;
using vrouter::testing::MappedIpv4;

Cidr Range(std::string_view text) {
  auto c = Cidr::Parse(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(Cidr{});
}

CidrSet Set(std::string_view text) {
  auto r = CidrSet::Parse(text);
  EXPECT_TRUE(std::holds_alternative<CidrSet>(r)) << r.error().message;
  return std::holds_alternative<CidrSet>(r) ? std::get<CidrSet>(r) : CidrSet();
}

std::string SetError(std::string_view text) {
  auto r = CidrSet::Parse(text);
  EXPECT_TRUE(!r.ok()) << text;
  return !r.ok() ? r.error().message : "";
}

RegionTable Table(std::string_view text) {
  auto r = RegionTable::Parse(text);
  EXPECT_TRUE(std::holds_alternative<RegionTable>(r)) << r.error().message;
  return std::holds_alternative<RegionTable>(r) ? std::get<RegionTable>(r) : RegionTable();
}

std::string TableError(std::string_view text) {
  auto r = RegionTable::Parse(text);
  EXPECT_TRUE(!r.ok()) << text;
  return !r.ok() ? r.error().message : "";
}

// ---- Cidr ----

TEST(CidrTest, ContainsExactlyTheAddressesUnderThePrefix) {
  const Cidr c = Range("10.1.0.0/16");
  EXPECT_TRUE(c.Contains(Ip("10.1.0.0")));
  EXPECT_TRUE(c.Contains(Ip("10.1.255.255")));
  EXPECT_FALSE(c.Contains(Ip("10.2.0.0")));
  EXPECT_FALSE(c.Contains(Ip("10.0.255.255")));
  const Cidr odd = Range("192.168.0.128/25");
  EXPECT_TRUE(odd.Contains(Ip("192.168.0.200")));
  EXPECT_FALSE(odd.Contains(Ip("192.168.0.127")));
  const Cidr v6 = Range("2001:db8::/33");
  EXPECT_TRUE(v6.Contains(Ip("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db8:8000::1")));
}

TEST(CidrTest, BareAddressIsASingleHost) {
  const Cidr v4 = Range("192.0.2.1");
  EXPECT_EQ(v4.prefix, 32);
  EXPECT_TRUE(v4.Contains(Ip("192.0.2.1")));
  EXPECT_FALSE(v4.Contains(Ip("192.0.2.2")));
  const Cidr v6 = Range("::1");
  EXPECT_EQ(v6.prefix, 128);
  EXPECT_TRUE(v6.Contains(Ip("::1")));
  EXPECT_FALSE(v6.Contains(Ip("::2")));
}

TEST(CidrTest, ZeroPrefixMatchesItsWholeFamilyOnly) {
  EXPECT_TRUE(Range("0.0.0.0/0").Contains(Ip("203.0.113.9")));
  EXPECT_FALSE(Range("0.0.0.0/0").Contains(Ip("2001:db8::1")));
  EXPECT_TRUE(Range("::/0").Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(Range("::/0").Contains(Ip("203.0.113.9")));
}

TEST(CidrTest, HostBitsBeyondThePrefixAreCleared) {
  const Cidr c = Range("10.1.2.3/8");
  EXPECT_EQ(c.base, Ip("10.0.0.0"));
  EXPECT_EQ(c.ToString(), "10.0.0.0/8");
  EXPECT_EQ(Range("2001:db8::1/32").ToString(), "2001:db8::/32");
  EXPECT_EQ(Range("10.1.2.3/8"), Range("10.0.0.0/8"));
}

TEST(CidrTest, MappedAddressesMatchIpv4Ranges) {
  const IpAddress mapped = MappedIpv4(10, 1, 2, 3);  // as a dual-stack listener reports 10.1.2.3
  EXPECT_TRUE(Range("10.0.0.0/8").Contains(mapped));
  EXPECT_FALSE(Range("::/0").Contains(mapped));
  // A range written in mapped form is the IPv4 range.
  const Cidr c = Range("::ffff:10.0.0.0/104");
  EXPECT_FALSE(c.base.v6);
  EXPECT_EQ(c.prefix, 8);
  EXPECT_TRUE(c.Contains(Ip("10.9.9.9")));
  EXPECT_TRUE(c.Contains(mapped));
}

TEST(CidrTest, RefusesMalformedRanges) {
  for (std::string_view bad :
       {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08",
        "10.0.0.0/8/8", "10.0.0.0 /8", "10.0.0.0/8 ", "10.0.0/8", "[::1]/128", "x/8"}) {
    EXPECT_FALSE(Cidr::Parse(bad).has_value()) << "'" << bad << "'";
  }
}

// ---- CidrSet ----

TEST(CidrSetTest, ParsesACommaSeparatedListWithBlanks) {
  const CidrSet s = Set(" 10.0.0.0/8 ,\t192.168.0.0/16,2001:db8::/32,127.0.0.1");
  EXPECT_EQ(s.entries().size(), 4u);
  EXPECT_TRUE(s.Contains(Ip("10.200.0.1")));
  EXPECT_TRUE(s.Contains(Ip("192.168.4.4")));
  EXPECT_TRUE(s.Contains(Ip("2001:db8::5")));
  EXPECT_TRUE(s.Contains(Ip("127.0.0.1")));
  EXPECT_FALSE(s.Contains(Ip("127.0.0.2")));
  EXPECT_FALSE(s.Contains(Ip("8.8.8.8")));
  EXPECT_EQ(s.ToString(), "10.0.0.0/8,192.168.0.0/16,2001:db8::/32,127.0.0.1/32");
  EXPECT_EQ(Set(s.ToString()).entries(), s.entries());
}

TEST(CidrSetTest, EmptyTextIsTheEmptySet) {
  EXPECT_TRUE(Set("").empty());
  EXPECT_TRUE(Set("  ").empty());
  EXPECT_FALSE(Set("").Contains(Ip("10.0.0.1")));
}

TEST(CidrSetTest, ErrorNamesTheBadEntry) {
  EXPECT_NE(SetError("10.0.0.0/8,10.0.0.0/40,::1").find("'10.0.0.0/40'"), std::string::npos);
  EXPECT_NE(SetError("10.0.0.0/8,,::1").find("empty entry"), std::string::npos);
  EXPECT_NE(SetError("10.0.0.0/8,").find("empty entry"), std::string::npos);
  EXPECT_NE(SetError("10.0.0.0/8 192.168.0.0/16").find("'10.0.0.0/8 192.168.0.0/16'"),
            std::string::npos);
}

// ---- RegionTable ----

TEST(RegionTableTest, LongestPrefixWins) {
  const RegionTable t = Table(
      "# regions\n"
      "10.0.0.0/8       eu-west\n"
      "10.20.0.0/16     us-east   # an office\n"
      "10.20.30.40      ap-south\n"
      "\n"
      "2001:db8::/32    eu-west\n"
      "2001:db8:1::/48  us-east\n");
  EXPECT_EQ(t.size(), 5u);
  EXPECT_EQ(t.RegionOf(Ip("10.1.1.1")), "eu-west");
  EXPECT_EQ(t.RegionOf(Ip("10.20.1.1")), "us-east");
  EXPECT_EQ(t.RegionOf(Ip("10.20.30.40")), "ap-south");
  EXPECT_EQ(t.RegionOf(Ip("2001:db8:2::1")), "eu-west");
  EXPECT_EQ(t.RegionOf(Ip("2001:db8:1::1")), "us-east");
  EXPECT_EQ(t.RegionOf(Ip("192.0.2.1")), std::nullopt);
  EXPECT_EQ(t.RegionOf(Ip("2001:db9::1")), std::nullopt);
  EXPECT_EQ(t.RegionOf(Ip("::ffff:10.20.1.1")), "us-east");
}

TEST(RegionTableTest, OrderInTheFileDoesNotMatter) {
  const RegionTable t = Table("10.20.0.0/16 us-east\n10.0.0.0/8 eu-west\n");
  EXPECT_EQ(t.RegionOf(Ip("10.20.1.1")), "us-east");
  EXPECT_EQ(t.RegionOf(Ip("10.21.1.1")), "eu-west");
}

TEST(RegionTableTest, AcceptsCrlfTabsCommentsAndNoFinalNewline) {
  const RegionTable t =
      Table("# only a comment\r\n\t10.0.0.0/8\teu-west\t\r\n   \r\n0.0.0.0/0 world");
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.RegionOf(Ip("10.0.0.1")), "eu-west");
  EXPECT_EQ(t.RegionOf(Ip("8.8.8.8")), "world");
  EXPECT_TRUE(Table("").empty());
  EXPECT_TRUE(Table("# nothing\n\n").empty());
}

TEST(RegionTableTest, ErrorsNameTheLineAndTheProblem) {
  const std::string fields = TableError("10.0.0.0/8 eu-west\n\n192.168.0.0/16\n");
  EXPECT_NE(fields.find("line 3:"), std::string::npos) << fields;
  EXPECT_NE(fields.find("found 1 field"), std::string::npos) << fields;
  const std::string extra = TableError("10.0.0.0/8 eu west\n");
  EXPECT_NE(extra.find("line 1:"), std::string::npos) << extra;
  EXPECT_NE(extra.find("found 3 fields"), std::string::npos) << extra;
  const std::string range = TableError("# x\n10.0.0.0/64 eu-west\n");
  EXPECT_NE(range.find("line 2:"), std::string::npos) << range;
  EXPECT_NE(range.find("'10.0.0.0/64'"), std::string::npos) << range;
  const std::string region = TableError("10.0.0.0/8 " + std::string(65, 'r') + "\n");
  EXPECT_NE(region.find("line 1:"), std::string::npos) << region;
  EXPECT_NE(region.find("region"), std::string::npos) << region;
  const std::string control = TableError("10.0.0.0/8 eu\x01west\n");
  EXPECT_NE(control.find("region"), std::string::npos) << control;
}

TEST(RegionTableTest, RefusesTheSameRangeTwice) {
  const std::string e = TableError("10.0.0.0/8 eu-west\n192.0.2.0/24 x\n10.1.0.0/8 eu-west\n");
  EXPECT_NE(e.find("line 3:"), std::string::npos) << e;
  EXPECT_NE(e.find("10.0.0.0/8 is already mapped on line 1"), std::string::npos) << e;
}

TEST(RegionTableTest, RegionsUpToTheFleetLimitAreAccepted) {
  const std::string longest(64, 'r');
  const RegionTable t = Table("10.0.0.0/8 " + longest + "\n");
  EXPECT_EQ(t.RegionOf(Ip("10.0.0.1")), longest);
}

}  // namespace
}  // namespace vrouter::edge
