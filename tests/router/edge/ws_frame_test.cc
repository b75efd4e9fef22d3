#include "router/edge/ws_frame.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "router/edge/utf8.h"

namespace vrouter::edge {
namespace {

constexpr std::size_t kMax = 1024;

// A client frame as a browser sends it: masked with a fixed key.
std::string ClientFrame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                        bool masked = true, std::uint8_t rsv = 0) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xFF));
  }
  const std::uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
  if (masked) out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  }
  return out;
}

std::string Close(std::uint16_t code, std::string_view reason = "") {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  payload.append(reason);
  return ClientFrame(0x8, payload);
}

// Everything the reader reported, as text, for comparisons.
struct Recorder : WsFrameSink {
  std::vector<std::string> events;
  void OnMessage(WsOpcode kind, std::string_view payload) override {
    events.push_back((kind == WsOpcode::kText ? "text:" : "binary:") + std::string(payload));
  }
  void OnPing(std::string_view payload) override {
    events.push_back("ping:" + std::string(payload));
  }
  void OnPong(std::string_view payload) override {
    events.push_back("pong:" + std::string(payload));
  }
  void OnClose(std::uint16_t code, std::string_view reason) override {
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
  }
};

struct Result {
  std::vector<std::string> events;
  std::optional<WsReadError> error;
};

// Feeds `wire` in pieces of `chunk` bytes (0: all at once).
Result Feed(std::string wire, std::size_t chunk = 0, std::size_t max = kMax) {
  WsFrameReader reader(max);
  Recorder sink;
  Result result;
  if (chunk == 0) chunk = wire.size() + 1;
  for (std::size_t pos = 0; pos < wire.size() && !result.error; pos += chunk) {
    result.error = reader.Consume(wire.data() + pos, std::min(chunk, wire.size() - pos), sink);
  }
  result.events = sink.events;
  return result;
}

std::uint16_t ErrorCode(const std::string& wire) {
  const auto result = Feed(wire);
  return result.error ? result.error->close_code : 0;
}

TEST(WsFrameReaderTest, UnmasksATextMessage) {
  const auto result = Feed(ClientFrame(0x1, R"({"type":"lookup"})"));
  EXPECT_FALSE(result.error);
  EXPECT_EQ(result.events, std::vector<std::string>{R"(text:{"type":"lookup"})"});
}

TEST(WsFrameReaderTest, ManyFramesInOneReadComeOutInOrder) {
  const std::string wire = ClientFrame(0x1, "one") + ClientFrame(0x9, "p") + ClientFrame(0x2, "b") +
                           ClientFrame(0xA, "") + ClientFrame(0x1, "two");
  EXPECT_EQ(Feed(wire).events,
            (std::vector<std::string>{"text:one", "ping:p", "binary:b", "pong:", "text:two"}));
}

TEST(WsFrameReaderTest, EverySplitOfTheInputGivesTheSameMessages) {
  const std::string long_text(300, 'x');  // a 16-bit length
  const std::string longer(70'000, 'y');  // a 64-bit length
  const std::string wire = ClientFrame(0x1, "first") + ClientFrame(0x1, long_text) +
                           ClientFrame(0x1, "frag", /*fin=*/false) + ClientFrame(0x9, "mid") +
                           ClientFrame(0x0, "mented") + ClientFrame(0x1, "last");
  const auto whole = Feed(wire);
  ASSERT_FALSE(whole.error);
  ASSERT_EQ(whole.events.size(), 5u);
  EXPECT_EQ(whole.events[1], "text:" + long_text);
  EXPECT_EQ(whole.events[2], "ping:mid");
  EXPECT_EQ(whole.events[3], "text:fragmented");
  for (std::size_t chunk = 1; chunk <= 17; ++chunk) {
    EXPECT_EQ(Feed(wire, chunk).events, whole.events) << "pieces of " << chunk;
  }
  const auto big = Feed(ClientFrame(0x1, longer), 1000, 100'000);
  ASSERT_EQ(big.events.size(), 1u);
  EXPECT_EQ(big.events[0].size(), 5 + longer.size());
}

TEST(WsFrameReaderTest, HoldsOnlyTheBytesOfACutFrame) {
  WsFrameReader reader(kMax);
  Recorder sink;
  const std::size_t first = ClientFrame(0x1, "hello").size();
  std::string wire = ClientFrame(0x1, "hello") + ClientFrame(0x1, "world");
  EXPECT_FALSE(reader.Consume(wire.data(), first + 2, sink));  // "hello", 2 bytes of the next
  EXPECT_EQ(sink.events, std::vector<std::string>{"text:hello"});
  EXPECT_EQ(reader.buffered_bytes(), 2u);
  EXPECT_FALSE(reader.Consume(wire.data() + first + 2, wire.size() - first - 2, sink));
  EXPECT_EQ(sink.events.back(), "text:world");
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(WsFrameReaderTest, ACharacterSplitAcrossFragmentsIsValid) {
  const std::string euro = "\xE2\x82\xAC";
  const std::string wire =
      ClientFrame(0x1, euro.substr(0, 1), false) + ClientFrame(0x0, euro.substr(1));
  EXPECT_EQ(Feed(wire).events, std::vector<std::string>{"text:" + euro});
}

TEST(WsFrameReaderTest, CloseEndsParsing) {
  const auto result = Feed(Close(1000, "bye") + ClientFrame(0x1, "after"));
  EXPECT_FALSE(result.error);
  EXPECT_EQ(result.events, std::vector<std::string>{"close:1000:bye"});
  EXPECT_EQ(Feed(ClientFrame(0x8, "")).events,
            std::vector<std::string>{"close:" + std::to_string(ws_close::kNoStatus) + ":"});
  EXPECT_EQ(Feed(Close(4000)).events, std::vector<std::string>{"close:4000:"});
}

TEST(WsFrameReaderTest, ProtocolViolationsAre1002) {
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, "x", true, /*masked=*/false)), 1002);
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, "x", true, true, /*rsv=*/0x40)), 1002);  // RSV1, no deflate
  EXPECT_EQ(ErrorCode(ClientFrame(0x3, "x")), 1002);                            // reserved opcode
  EXPECT_EQ(ErrorCode(ClientFrame(0xB, "x")), 1002);
  EXPECT_EQ(ErrorCode(ClientFrame(0x9, "x", /*fin=*/false)), 1002);  // fragmented ping
  EXPECT_EQ(ErrorCode(ClientFrame(0x9, std::string(126, 'p'))), 1002);
  EXPECT_EQ(ErrorCode(ClientFrame(0x8, "\x03")), 1002);  // a one-byte close payload
  EXPECT_EQ(ErrorCode(ClientFrame(0x0, "orphan")), 1002);
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, "a", false) + ClientFrame(0x1, "b")), 1002);
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}) {
    EXPECT_EQ(ErrorCode(Close(code)), 1002) << code;
  }
  // Lengths not in their shortest form, and a 64-bit length with its top bit set.
  std::string two_byte = ClientFrame(0x1, std::string(200, 'z'));
  two_byte[2] = 0;
  two_byte[3] = 5;
  EXPECT_EQ(ErrorCode(two_byte), 1002);
  std::string eight_byte = "\x81\xFF";
  eight_byte.append("\x80\0\0\0\0\0\0\x01", 8);
  eight_byte.append("abcd");
  EXPECT_EQ(ErrorCode(eight_byte), 1002);
}

TEST(WsFrameReaderTest, InvalidUtf8Is1007) {
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, "caf\xC3")), 1007);
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, "a", false) + ClientFrame(0x0, "\xED\xA0\x80")), 1007);
  EXPECT_EQ(ErrorCode(Close(1000, "\xFF")), 1007);
  EXPECT_EQ(ErrorCode(ClientFrame(0x2, "\xFF")), 0);  // binary is not text
}

// RFC 6455 8.1 lets an endpoint fail as soon as the text so far cannot be valid UTF-8: the reader
// does so at the fragment that breaks it, without waiting for (or buffering up to) the last one.
TEST(WsFrameReaderTest, InvalidUtf8FailsAtTheFragmentThatBreaksIt) {
  struct Case {
    const char* what;
    std::vector<std::string> fragments;  // all but the last frame of a text message
  };
  const std::vector<Case> cases = {
      {"a bad byte in the first fragment",
       {ClientFrame(0x1,
                    R"({"type":"he)"
                    "\xFF",
                    false)}},
      {"in a later fragment", {ClientFrame(0x1, "ok", false), ClientFrame(0x0, "\xC0\xAF", false)}},
      {"an overlong form split across fragments",
       {ClientFrame(0x1, "x\xE0", false), ClientFrame(0x0, "\x80", false)}},
      {"a surrogate split across fragments",
       {ClientFrame(0x1, "\xED", false), ClientFrame(0x0, "\xA0", false)}},
      {"a lone continuation byte after a whole character",
       {ClientFrame(0x1, "\xE2\x82\xAC", false), ClientFrame(0x0, "\x82", false)}},
  };
  for (const Case& c : cases) {
    WsFrameReader reader(kMax);
    Recorder sink;
    std::optional<WsReadError> error;
    for (std::size_t i = 0; i < c.fragments.size(); ++i) {
      std::string frame = c.fragments[i];
      error = reader.Consume(frame.data(), frame.size(), sink);
      if (i + 1 < c.fragments.size()) {
        ASSERT_FALSE(error) << c.what << ": failed at fragment " << i << ", too early";
      }
    }
    ASSERT_TRUE(error) << c.what << ": the message's final fragment was still awaited";
    EXPECT_EQ(error->close_code, 1007) << c.what;
    EXPECT_TRUE(reader.done());
    EXPECT_EQ(reader.buffered_bytes(), 0u);
    EXPECT_TRUE(sink.events.empty());
  }
}

TEST(WsFrameReaderTest, ACharacterMaySpanSeveralFragments) {
  const std::string smile = "\xF0\x9F\x98\x80";
  const std::string wire = ClientFrame(0x1, "[" + smile.substr(0, 1), false) +
                           ClientFrame(0x0, smile.substr(1, 2), false) + ClientFrame(0x9, "p") +
                           ClientFrame(0x0, "", false) + ClientFrame(0x0, smile.substr(3) + "]");
  for (std::size_t chunk : {0, 1, 3}) {
    const auto result = Feed(wire, chunk);
    EXPECT_FALSE(result.error) << chunk;
    EXPECT_EQ(result.events, (std::vector<std::string>{"ping:p", "text:[" + smile + "]"})) << chunk;
  }
  // A message whose last fragment ends inside a character is not valid UTF-8.
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, "\xF0\x9F", false) + ClientFrame(0x0, "\x98")), 1007);
  // Binary messages are not text, fragmented or not.
  EXPECT_EQ(ErrorCode(ClientFrame(0x2, "\xFF", false) + ClientFrame(0x0, "\xFE")), 0);
}

TEST(WsFrameReaderTest, TooBigIsRefusedFromTheHeader) {
  // Only the header of a 2 KiB frame: refused before its payload arrives.
  std::string wire = ClientFrame(0x1, std::string(2048, 'x')).substr(0, 8);
  WsFrameReader reader(kMax);
  Recorder sink;
  const auto error = reader.Consume(wire.data(), wire.size(), sink);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->close_code, 1009);
  EXPECT_TRUE(reader.done());
  EXPECT_EQ(reader.buffered_bytes(), 0u);
  // Fragments that add up to more than the limit.
  EXPECT_EQ(ErrorCode(ClientFrame(0x1, std::string(600, 'a'), false) +
                      ClientFrame(0x0, std::string(600, 'b'))),
            1009);
  EXPECT_EQ(Feed(ClientFrame(0x1, std::string(kMax, 'a'))).events.size(), 1u);  // at the limit
}

TEST(WsFrameReaderTest, InputAfterAnErrorIsIgnored) {
  WsFrameReader reader(kMax);
  Recorder sink;
  std::string wire = ClientFrame(0x1, "x", true, false) + ClientFrame(0x1, "later");
  EXPECT_TRUE(reader.Consume(wire.data(), wire.size(), sink));
  std::string more = ClientFrame(0x1, "more");
  EXPECT_FALSE(reader.Consume(more.data(), more.size(), sink));
  EXPECT_TRUE(sink.events.empty());
}

// The benchmarks' clients read the router's frames with the same reader: unmasked, and a masked
// one is the protocol error.
TEST(WsFrameReaderTest, ServerFramesAreUnmaskedAndAMaskedOneIs1002) {
  WsFrameReader reader(kMax, WsFramesFrom::kServer);
  Recorder sink;
  std::array<char, kMaxServerFrameHeader> header{};
  const std::string payload = R"({"type":"welcome"})";
  std::string wire(header.data(), EncodeServerFrameHeader(WsOpcode::kText, payload.size(), header));
  wire += payload + ClientFrame(0x9, "p", true, false);
  EXPECT_FALSE(reader.Consume(wire.data(), wire.size(), sink));
  EXPECT_EQ(sink.events, (std::vector<std::string>{"text:" + payload, "ping:p"}));

  std::string masked = ClientFrame(0x1, "x");
  const auto error = reader.Consume(masked.data(), masked.size(), sink);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->close_code, ws_close::kProtocolError);
  EXPECT_EQ(error->reason, "server frames must not be masked");
}

TEST(WsFrameEncodeTest, HeaderLengths) {
  std::array<char, kMaxServerFrameHeader> header{};
  EXPECT_EQ(EncodeServerFrameHeader(WsOpcode::kText, 125, header), 2u);
  EXPECT_EQ(static_cast<std::uint8_t>(header[0]), 0x81);
  EXPECT_EQ(header[1], 125);
  EXPECT_EQ(EncodeServerFrameHeader(WsOpcode::kPing, 126, header), 4u);
  EXPECT_EQ(static_cast<std::uint8_t>(header[0]), 0x89);
  EXPECT_EQ(EncodeServerFrameHeader(WsOpcode::kText, 65535, header), 4u);
  EXPECT_EQ(static_cast<std::uint8_t>(header[2]), 0xFF);
  EXPECT_EQ(EncodeServerFrameHeader(WsOpcode::kText, 65536, header), 10u);
  EXPECT_EQ(header[1], 127);
  EXPECT_EQ(header[7], 1);  // 0x0000000000010000
  EXPECT_EQ(header[9], 0);
}

TEST(WsFrameEncodeTest, CloseReasonFitsAControlFrameOnACharacterBoundary) {
  EXPECT_EQ(EncodeClosePayload(1009, "too big"), std::string("\x03\xF1too big"));
  std::string reason(122, 'r');
  reason += "\xE2\x82\xAC";  // 125 bytes: the euro sign does not fit in 123
  const std::string payload = EncodeClosePayload(1000, reason);
  EXPECT_EQ(payload.size(), 2u + 122u);
  EXPECT_TRUE(IsValidUtf8(payload.substr(2)));
}

TEST(WsHandshakeTest, AcceptKeyOfRfc6455) {
  EXPECT_EQ(WebSocketAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(IsValidWebSocketKey(""));
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25j*Q=="));
}

TEST(Utf8Test, AcceptsValidAndRefusesEveryIllFormedKind) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
  for (const char* bad :
       {"\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xF0\x80\x80\x80",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\xC3", "\xE2\x82", "\xE2\x28\xA1"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
    EXPECT_FALSE(IsValidUtf8(std::string("twelve bytes") + bad + "tail")) << bad;
  }
}

// The validator in pieces agrees with the whole-text check at every cut, and fails at the first
// byte after which no valid UTF-8 could follow.
TEST(Utf8Test, InPiecesAgreesWithTheWholeAtEveryCut) {
  struct Text {
    std::string bytes;
    std::size_t first_bad;  // npos when every prefix is the start of valid UTF-8
  };
  const std::vector<Text> texts = {
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF", std::string::npos},
      {"twelve bytes\xC3", std::string::npos},  // valid so far, only incomplete
      {"ab\xE0\x80\x80", 3},                    // overlong: E0 needs A0..BF next
      {"ab\xED\xA0\x80", 3},                    // surrogate
      {"\xF4\x90\x80\x80", 1},                  // above U+10FFFF
      {"ok\xE2\x82\xAC\x82 more", 5},           // a lone continuation byte
      {"\xF5", 0},
      {"\xE2\x28\xA1", 1},
  };
  for (const Text& t : texts) {
    const std::size_t n = t.bytes.size();
    const std::size_t bad = std::min(t.first_bad, n);
    for (std::size_t a = 0; a <= n; ++a) {
      for (std::size_t b = a; b <= n; ++b) {
        Utf8Validator v;
        const std::string_view all = t.bytes;
        const bool first = v.Feed(all.substr(0, a));
        const bool second = v.Feed(all.substr(a, b - a));
        const bool third = v.Feed(all.substr(b));
        EXPECT_EQ(first, a <= bad) << t.bytes << " cut at " << a;
        EXPECT_EQ(second, b <= bad) << t.bytes << " cut at " << a << "," << b;
        EXPECT_EQ(third, bad == n) << t.bytes;
        EXPECT_EQ(third && v.Complete(), IsValidUtf8(t.bytes)) << t.bytes;
      }
    }
  }
}

TEST(Utf8Test, TruncatesOnACharacterBoundary) {
  EXPECT_EQ(TruncateUtf8("abc", 5), "abc");
  EXPECT_EQ(TruncateUtf8("ab\xE2\x82\xAC", 4), "ab");
  EXPECT_EQ(TruncateUtf8("ab\xE2\x82\xAC", 5), "ab\xE2\x82\xAC");
}

}  // namespace
}  // namespace vrouter::edge
