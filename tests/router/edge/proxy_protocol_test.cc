#include "router/edge/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/support/addresses.h"

namespace vrouter::edge {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes Of(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ProxyParseResult Parse(const Bytes& b) { return ParseProxyHeader(b); }
ProxyParseResult Parse(std::string_view s) { return ParseProxyHeader(Of(s)); }

using vrouter::testing::Ip;
using vrouter::testing::MappedIpv4;

const Bytes kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// A v2 header: signature, version 2 | command, family byte, then `body` (addresses, TLVs) with
// its length.
Bytes V2(std::uint8_t command, std::uint8_t family, const Bytes& body) {
  Bytes b = kSignature;
  b.push_back(static_cast<std::uint8_t>(0x20 | command));
  b.push_back(family);
  b.push_back(static_cast<std::uint8_t>(body.size() >> 8));
  b.push_back(static_cast<std::uint8_t>(body.size() & 0xff));
  return Concat(b, body);
}

const Bytes kV4Block = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb};  // 56324 -> 443

Bytes V6Block(const IpAddress& source, const IpAddress& destination) {
  Bytes b(source.bytes.begin(), source.bytes.end());
  b.insert(b.end(), destination.bytes.begin(), destination.bytes.end());
  for (std::uint8_t x : {0x30, 0x39, 0x00, 0x50}) b.push_back(x);  // 12345 -> 80
  return b;
}

// Every proper prefix of a header (the empty one included) asks for more bytes.
void ExpectNeedMoreOnEveryPrefix(const Bytes& header) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    const auto r = ParseProxyHeader(std::span(header.data(), n));
    EXPECT_EQ(r.status, ProxyParseStatus::kNeedMore) << "prefix of " << n << " bytes: " << r.error;
  }
}

// ---- version 1 ----

TEST(ProxyProtocolV1Test, ParsesTcp4) {
  const auto r = Parse("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_EQ(r.header.version, 1);
  EXPECT_EQ(r.header.length, 45u);
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.source, Ip("192.0.2.1"));
  EXPECT_EQ(r.header.destination, Ip("198.51.100.2"));
  EXPECT_EQ(r.header.source_port, 56324);
  EXPECT_EQ(r.header.destination_port, 443);
}

TEST(ProxyProtocolV1Test, ParsesTcp6AndCanonicalizesMappedSources) {
  const auto r = Parse("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n");
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_EQ(r.header.source, Ip("2001:db8::1"));
  EXPECT_EQ(r.header.destination, Ip("2001:db8::2"));
  EXPECT_EQ(r.header.source_port, 65535);
  EXPECT_EQ(r.header.destination_port, 0);

  const auto mapped = Parse("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:198.51.100.2 1 2\r\n");
  ASSERT_EQ(mapped.status, ProxyParseStatus::kOk) << mapped.error;
  EXPECT_FALSE(mapped.header.source->v6);
  EXPECT_EQ(mapped.header.source->ToString(), "192.0.2.1");
}

TEST(ProxyProtocolV1Test, UnknownIsLocalAndIgnoresTheRestOfTheLine) {
  for (std::string_view line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
                                "PROXY UNKNOWN whatever\r\n"}) {
    const auto r = Parse(line);
    ASSERT_EQ(r.status, ProxyParseStatus::kOk) << line << r.error;
    EXPECT_TRUE(r.header.local);
    EXPECT_FALSE(r.header.source.has_value());
    EXPECT_EQ(r.header.length, line.size());
    EXPECT_EQ(r.header.version, 1);
  }
}

TEST(ProxyProtocolV1Test, LongestHeaderOf107BytesIsAccepted) {
  const std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string line = "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n";
  ASSERT_EQ(line.size(), 107u);
  EXPECT_EQ(Parse(line).status, ProxyParseStatus::kOk);
  const std::string tcp6 = "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n";
  EXPECT_EQ(Parse(tcp6).status, ProxyParseStatus::kOk);
  ExpectNeedMoreOnEveryPrefix(Of(line));
}

TEST(ProxyProtocolV1Test, LongerThan107BytesIsAnError) {
  const std::string line = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";  // 108 bytes
  ASSERT_EQ(line.size(), 108u);
  EXPECT_EQ(Parse(line).status, ProxyParseStatus::kError);
  // Known as soon as the 106th byte is not the CR.
  EXPECT_EQ(Parse(line.substr(0, 106)).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(line.substr(0, 105)).status, ProxyParseStatus::kNeedMore);
}

TEST(ProxyProtocolV1Test, EveryProperPrefixNeedsMore) {
  for (std::string_view line :
       {"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 1 80\r\n",
        "PROXY TCP6 :: 1:2:3:4:5:6:7:8 1 80\r\n",
        "PROXY TCP6 1:2:3:4:5:6:1.2.3.4 fe80::ABCD 1 80\r\n", "PROXY UNKNOWN\r\n"}) {
    SCOPED_TRACE(line);
    ExpectNeedMoreOnEveryPrefix(Of(line));
  }
}

TEST(ProxyProtocolV1Test, TrailingPayloadIsNotPartOfTheHeader) {
  const std::string header = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
  const auto r = Parse(header + "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(r.status, ProxyParseStatus::kOk);
  EXPECT_EQ(r.header.length, header.size());
  // Even when the payload is binary (TLS) and starts with what looks like another header.
  const auto again = Parse(header + header);
  ASSERT_EQ(again.status, ProxyParseStatus::kOk);
  EXPECT_EQ(again.header.length, header.size());
  const auto tls = Parse(header + std::string("\x16\x03\x01\x02\x00", 5));
  ASSERT_EQ(tls.status, ProxyParseStatus::kOk);
  EXPECT_EQ(tls.header.length, header.size());
}

TEST(ProxyProtocolV1Test, RefusesBadAddressesAndPorts) {
  for (std::string_view line : {
           "PROXY TCP4 192.0.2.1 198.51.100.2 56324 65536\r\n",  // port out of range
           "PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n",   // leading zero
           "PROXY TCP4 192.0.2.1 198.51.100.2 +5 443\r\n",       // sign
           "PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n",
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 \r\n",         // empty port
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",      // extra field
           "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",          // missing field
           "PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n",      // bad octet
           "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",       // leading zero
           "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",      // family mismatch
           "PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",         // family mismatch
           "PROXY TCP6 2001:db8::1%eth0 2001:db8::2 1 2\r\n",  // zone id
           "PROXY TCP6 [2001:db8::1] 2001:db8::2 1 2\r\n",     // brackets
           "PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",       // two spaces
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",       // trailing space
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",          // LF only
           "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX",         // CR only
           "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",        // protocol
           "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",        // case
           "PROXY UNKNOWNX\r\n",
           "PROXY UNKNOWN 1\n2\r\n",
           "PROXY\r\n",
           "PROXY \r\n",
           "PROXYTCP4 192.0.2.1 198.51.100.2 1 2\r\n",
       }) {
    const auto r = Parse(line);
    EXPECT_EQ(r.status, ProxyParseStatus::kError) << line;
    EXPECT_FALSE(r.error.empty()) << line;
  }
}

TEST(ProxyProtocolV1Test, BadFieldIsAnErrorBeforeTheLineEnds) {
  // No need to wait for CRLF once a field cannot be completed into a valid one.
  for (std::string_view partial :
       {"PROXY TCP5", "PROXY TCP4 192.0.2.1x", "PROXY TCP4 1.2.3.4.", "PROXY TCP4 300",
        "PROXY TCP4 0.0.0.0 1.2.3.4 01", "PROXY TCP4 0.0.0.0 1.2.3.4 99999",
        "PROXY TCP4 0.0.0.0 1.2.3.4 1 2 ",
        "PROXY TCP6 1:2:3:4:5:6:7:8:", "PROXY TCP6 1::2::", "PROXY TCP6 :1", "PROXY TCP6 12345",
        "PROXY TCP6 ::g", "PROXY TCP6 1:2.3", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r"}) {
    EXPECT_EQ(Parse(partial).status, ProxyParseStatus::kError) << partial;
  }
  // While these can still become headers.
  for (std::string_view partial :
       {"PROXY TCP6 1:2:3:4:5:6:", "PROXY TCP6 1:2:3:4:5:6:7:", "PROXY TCP6 ::ffff:1.2.",
        "PROXY TCP6 1:2:3:4:5:6:1.", "PROXY TCP6 :", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"}) {
    EXPECT_EQ(Parse(partial).status, ProxyParseStatus::kNeedMore) << partial;
  }
}

// ---- direct clients on a PROXY listener ----

TEST(ProxyProtocolTest, HttpRequestIsRefusedAtOnce) {
  EXPECT_EQ(Parse("G").status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\n").status, ProxyParseStatus::kError);
  // "P" could be PROXY; "PO" (POST, PUT would be "PU") cannot.
  EXPECT_EQ(Parse("P").status, ProxyParseStatus::kNeedMore);
  EXPECT_EQ(Parse("PO").status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse("PUT / HTTP/1.1").status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\n").error, "not a PROXY protocol header");
}

TEST(ProxyProtocolTest, TlsClientHelloIsRefusedAtOnce) {
  const Bytes hello = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
  for (std::size_t n = 1; n <= hello.size(); ++n) {
    EXPECT_EQ(ParseProxyHeader(std::span(hello.data(), n)).status, ProxyParseStatus::kError);
  }
}

TEST(ProxyProtocolTest, GarbageIsRefused) {
  EXPECT_EQ(Parse(Bytes{0x00}).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(Bytes{0xff, 0xfe}).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse("\r\n\r\n").status, ProxyParseStatus::kNeedMore);  // v2 signature so far
  EXPECT_EQ(Parse("\r\n\r\nX").status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(Bytes{}).status, ProxyParseStatus::kNeedMore);
}

// ---- version 2 ----

TEST(ProxyProtocolV2Test, ParsesProxyOverTcp4) {
  const Bytes h = V2(0x1, 0x11, kV4Block);
  const auto r = Parse(h);
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.length, 28u);
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.source, Ip("192.0.2.1"));
  EXPECT_EQ(r.header.destination, Ip("198.51.100.2"));
  EXPECT_EQ(r.header.source_port, 56324);
  EXPECT_EQ(r.header.destination_port, 443);
  ExpectNeedMoreOnEveryPrefix(h);
}

TEST(ProxyProtocolV2Test, ParsesProxyOverTcp6AndCanonicalizesMappedSources) {
  const Bytes h = V2(0x1, 0x21, V6Block(Ip("2001:db8::1"), Ip("2001:db8::2")));
  const auto r = Parse(h);
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_EQ(r.header.length, 52u);
  EXPECT_EQ(r.header.source, Ip("2001:db8::1"));
  EXPECT_EQ(r.header.destination, Ip("2001:db8::2"));
  EXPECT_EQ(r.header.source_port, 12345);
  EXPECT_EQ(r.header.destination_port, 80);
  ExpectNeedMoreOnEveryPrefix(h);

  const auto m = Parse(V2(0x1, 0x21, V6Block(MappedIpv4(192, 0, 2, 1), Ip("2001:db8::2"))));
  ASSERT_EQ(m.status, ProxyParseStatus::kOk) << m.error;
  EXPECT_FALSE(m.header.source->v6);
  EXPECT_EQ(m.header.source->ToString(), "192.0.2.1");
}

TEST(ProxyProtocolV2Test, LocalIsAHealthCheckWhateverItsFamily) {
  for (const Bytes& h : {V2(0x0, 0x00, {}), V2(0x0, 0x11, kV4Block), V2(0x0, 0x31, Bytes(216)),
                         V2(0x0, 0x00, {1, 2, 3})}) {
    const auto r = Parse(h);
    ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
    EXPECT_TRUE(r.header.local);
    EXPECT_FALSE(r.header.source.has_value());
    EXPECT_EQ(r.header.length, h.size());
    ExpectNeedMoreOnEveryPrefix(h);
  }
}

TEST(ProxyProtocolV2Test, ProxyWithUnspecifiedFamilyIsLocal) {
  const auto r = Parse(V2(0x1, 0x00, {9, 9, 9}));
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_TRUE(r.header.local);
  EXPECT_FALSE(r.header.source.has_value());
  EXPECT_EQ(r.header.length, 19u);
}

TEST(ProxyProtocolV2Test, TlvsAreSkipped) {
  Bytes body = kV4Block;
  const Bytes tlvs = {0x01, 0x00, 0x02, 'h', '2',        // ALPN
                      0x04, 0x00, 0x00,                  // NOOP
                      0xea, 0x00, 0x03, 'v', 'p', 'c'};  // AWS
  body = Concat(body, tlvs);
  const Bytes h = V2(0x1, 0x11, body);
  const auto r = Parse(Concat(h, Of("GET / HTTP/1.1\r\n")));
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_EQ(r.header.length, 16u + 12u + tlvs.size());
  EXPECT_EQ(r.header.source, Ip("192.0.2.1"));
  ExpectNeedMoreOnEveryPrefix(h);
}

TEST(ProxyProtocolV2Test, HeaderUpToTheLimitIsAccepted) {
  const Bytes h = V2(0x1, 0x11, Concat(kV4Block, Bytes(kMaxProxyHeaderBytes - 16 - 12)));
  ASSERT_EQ(h.size(), kMaxProxyHeaderBytes);
  const auto r = Parse(h);
  ASSERT_EQ(r.status, ProxyParseStatus::kOk) << r.error;
  EXPECT_EQ(r.header.length, kMaxProxyHeaderBytes);
}

TEST(ProxyProtocolV2Test, HeaderOverTheLimitIsRefusedFromItsLengthField) {
  const Bytes h = V2(0x1, 0x11, Concat(kV4Block, Bytes(kMaxProxyHeaderBytes - 16 - 12 + 1)));
  const auto r = Parse(Bytes(h.begin(), h.begin() + 16));
  EXPECT_EQ(r.status, ProxyParseStatus::kError);
  EXPECT_NE(r.error.find("limit"), std::string::npos) << r.error;
}

TEST(ProxyProtocolV2Test, AddressBlockShorterThanTheFamilyIsAnError) {
  EXPECT_EQ(Parse(V2(0x1, 0x11, Bytes(11))).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(V2(0x1, 0x21, Bytes(35))).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(V2(0x1, 0x21, Bytes(12))).status, ProxyParseStatus::kError);
  // Known from the 16 fixed bytes, without waiting for the block.
  const Bytes h = V2(0x1, 0x21, Bytes(12));
  EXPECT_EQ(Parse(Bytes(h.begin(), h.begin() + 16)).status, ProxyParseStatus::kError);
}

TEST(ProxyProtocolV2Test, TruncatedHeaderNeedsMore) {
  const Bytes h = V2(0x1, 0x21, V6Block(Ip("2001:db8::1"), Ip("2001:db8::2")));
  EXPECT_EQ(Parse(Bytes(h.begin(), h.end() - 1)).status, ProxyParseStatus::kNeedMore);
  EXPECT_EQ(Parse(Bytes(h.begin(), h.begin() + 16)).status, ProxyParseStatus::kNeedMore);
}

TEST(ProxyProtocolV2Test, RefusesOtherVersionsCommandsAndFamilies) {
  Bytes v1 = V2(0x1, 0x11, kV4Block);
  v1[12] = 0x11;  // version 1 in binary form does not exist
  EXPECT_EQ(Parse(Bytes(v1.begin(), v1.begin() + 13)).status, ProxyParseStatus::kError);
  Bytes v3 = V2(0x1, 0x11, kV4Block);
  v3[12] = 0x31;
  EXPECT_EQ(Parse(v3).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(V2(0x2, 0x11, kV4Block)).status, ProxyParseStatus::kError);  // command 2
  EXPECT_EQ(Parse(V2(0xf, 0x11, kV4Block)).status, ProxyParseStatus::kError);
  for (std::uint8_t family : {0x12, 0x22, 0x31, 0x32, 0x10, 0x01, 0x41, 0x13, 0xff}) {
    const auto r = Parse(V2(0x1, family, Bytes(216)));
    EXPECT_EQ(r.status, ProxyParseStatus::kError) << int{family};
  }
  // Invalid nibbles are refused even for LOCAL.
  EXPECT_EQ(Parse(V2(0x0, 0x41, {})).status, ProxyParseStatus::kError);
  EXPECT_EQ(Parse(V2(0x0, 0x13, {})).status, ProxyParseStatus::kError);
  const auto unix_socket = Parse(V2(0x1, 0x31, Bytes(216)));
  EXPECT_NE(unix_socket.error.find("AF_UNIX"), std::string::npos) << unix_socket.error;
}

TEST(ProxyProtocolV2Test, BadSignatureIsRefusedAtTheFirstWrongByte) {
  Bytes h = V2(0x1, 0x11, kV4Block);
  h[6] = 'X';
  for (std::size_t n = 7; n <= h.size(); ++n) {
    EXPECT_EQ(ParseProxyHeader(std::span(h.data(), n)).status, ProxyParseStatus::kError) << n;
  }
  EXPECT_EQ(ParseProxyHeader(std::span(h.data(), 6)).status, ProxyParseStatus::kNeedMore);
}

}  // namespace
}  // namespace vrouter::edge
