#include "proto/video_server_codec.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "tests/proto/decode_test_util.h"

namespace vrouter::proto {
namespace {

constexpr char kRegister[] =
    R"({"type":"register","token":"a.b.c","id":"sfu-1","url":"wss://sfu-1/rtc","region":"eu-west","capacity":500})";
constexpr char kStats[] =
    R"({"type":"stats","seq":7,"peers":10,"media_peers":9,"packets_in":1000,"packets_out":3000,"bytes_in":900000,"bytes_out":2700000,"cpu":0.25})";

// `base` with `field` set to the raw JSON `value`, or removed when `value` is empty. Every field of
// kRegister and kStats follows a comma, and string values there contain no quotes.
std::string With(std::string base, const std::string& field, const std::string& value) {
  const auto at = base.find("\"" + field + "\":");
  if (at == std::string::npos) return base;
  const auto value_at = at + field.size() + 3;
  const auto end =
      base[value_at] == '"' ? base.find('"', value_at + 1) + 1 : base.find_first_of(",}", value_at);
  if (value.empty()) return base.erase(at - 1, end - at + 1);
  return base.replace(at, end - at, "\"" + field + "\":" + value);
}
std::string RegisterWith(const std::string& field, const std::string& value) {
  return With(kRegister, field, value);
}
std::string StatsWith(const std::string& field, const std::string& value) {
  return With(kStats, field, value);
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

using test_util::BadInput;

template <class T>
T DecodeVideoAs(std::string_view text) {
  return test_util::ExpectMessage<T>(DecodeVideoServerMessage(text), text);
}

DecodeError DecodeVideoError(std::string_view text) {
  return test_util::ExpectError(DecodeVideoServerMessage(text), text);
}

DecodeError DecodeRouterError(std::string_view text) {
  return test_util::ExpectError(DecodeRouterToVideoServerMessage(text), text);
}

TEST(FleetCodecTest, TestInputsAreValid) {
  // The bad inputs below are these two with one field changed: they must decode as they are.
  DecodeVideoAs<Register>(kRegister);
  DecodeVideoAs<Stats>(kStats);
  // And the helper edits exactly one field.
  EXPECT_EQ(
      RegisterWith("capacity", ""),
      R"({"type":"register","token":"a.b.c","id":"sfu-1","url":"wss://sfu-1/rtc","region":"eu-west"})");
  EXPECT_EQ(
      RegisterWith("url", "1"),
      R"({"type":"register","token":"a.b.c","id":"sfu-1","url":1,"region":"eu-west","capacity":500})");
  EXPECT_EQ(
      StatsWith("seq", ""),
      R"({"type":"stats","peers":10,"media_peers":9,"packets_in":1000,"packets_out":3000,"bytes_in":900000,"bytes_out":2700000,"cpu":0.25})");
  EXPECT_EQ(
      StatsWith("cpu", "1e999"),
      R"({"type":"stats","seq":7,"peers":10,"media_peers":9,"packets_in":1000,"packets_out":3000,"bytes_in":900000,"bytes_out":2700000,"cpu":1e999})");
}

TEST(FleetCodecTest, DecodesRegister) {
  const auto m = DecodeVideoAs<Register>(kRegister);
  EXPECT_EQ(m.token, "a.b.c");
  EXPECT_EQ(m.id, "sfu-1");
  EXPECT_EQ(m.url, "wss://sfu-1/rtc");
  EXPECT_EQ(m.region, "eu-west");
  EXPECT_EQ(m.capacity, 500u);
}

TEST(FleetCodecTest, DecodesStats) {
  const auto m = DecodeVideoAs<Stats>(kStats);
  // Field by field, through the encoder (whose exact output EncodesExactWireShape pins).
  EXPECT_EQ(Encode(VideoServerMessage(m)),
            Encode(VideoServerMessage(
                Stats{7, 10, 9, 1000, 3000, 900000, 2700000, 0.25, std::nullopt, std::nullopt})));
  EXPECT_EQ(m.cpu, 0.25);
}

TEST(FleetCodecTest, AcceptsEveryBoundary) {
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("capacity", "1")).capacity, 1u);
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("capacity", "1000000")).capacity, kMaxCapacity);
  const std::string id(kMaxIdBytes, 'i');
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("id", Quoted(id))).id, id);
  const std::string region(kMaxRegionBytes, 'r');
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("region", Quoted(region))).region, region);
  const std::string url = "wss://" + std::string(kMaxUrlBytes - 6, 'u');
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("url", Quoted(url))).url, url);
  const std::string token(8192, 't');
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("token", Quoted(token))).token, token);
  // Non-ASCII is fine: only control characters are refused.
  EXPECT_EQ(DecodeVideoAs<Register>(RegisterWith("region", R"("région-é")")).region,
            "r\xc3\xa9gion-\xc3\xa9");

  const std::string max_safe = std::to_string(kMaxSafeInteger);
  const std::string max_u32 = std::to_string(std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("seq", max_safe)).seq, kMaxSafeInteger);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("seq", "0")).seq, 0u);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("peers", max_u32)).peers,
            std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("media_peers", max_u32)).media_peers,
            std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("packets_in", max_safe)).packets_in, kMaxSafeInteger);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("packets_out", max_safe)).packets_out, kMaxSafeInteger);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("bytes_in", max_safe)).bytes_in, kMaxSafeInteger);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("bytes_out", max_safe)).bytes_out, kMaxSafeInteger);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("cpu", "0")).cpu, 0.0);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("cpu", "1")).cpu, 1.0);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("cpu", "0.0")).cpu, 0.0);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("cpu", "1.0")).cpu, 1.0);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("cpu", "1e-3")).cpu, 0.001);
  EXPECT_EQ(DecodeVideoAs<Stats>(StatsWith("cpu", "1E0")).cpu, 1.0);
}

TEST(FleetCodecTest, IgnoresUnknownFields) {
  std::string text = kStats;
  text.insert(1, R"("future":{"x":[1,{"y":null}]},"id":"whatever",)");
  EXPECT_EQ(DecodeVideoAs<Stats>(text).seq, 7u);
  text = kRegister;
  text.insert(1, R"("labels":["gpu"],)");
  EXPECT_EQ(DecodeVideoAs<Register>(text).id, "sfu-1");
}

class FleetCodecBadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(FleetCodecBadInputTest, ReturnsTypedError) {
  const auto err = DecodeVideoError(GetParam().text);
  EXPECT_EQ(ErrorCodeName(err.code), ErrorCodeName(GetParam().code)) << err.message;
  EXPECT_FALSE(err.message.empty());
}

const std::string kMaxU32Plus1 = "4294967296";
const std::string kMaxSafePlus1 = "9007199254740992";

INSTANTIATE_TEST_SUITE_P(
    AllErrors, FleetCodecBadInputTest,
    ::testing::Values(
        // Not JSON, or too deep.
        BadInput{"empty", "", ErrorCode::kInvalidJson},
        BadInput{"not_json", "stats please", ErrorCode::kInvalidJson},
        BadInput{"truncated", R"({"type":"stats","seq":1)", ErrorCode::kInvalidJson},
        BadInput{"trailing_comma", R"({"type":"stats",})", ErrorCode::kInvalidJson},
        BadInput{"cpu_nan_literal", StatsWith("cpu", "NaN"), ErrorCode::kInvalidJson},
        BadInput{"cpu_infinity_literal", StatsWith("cpu", "Infinity"), ErrorCode::kInvalidJson},
        BadInput{"too_deep", R"({"type":"stats","x":[[[[[[[[1]]]]]]]]})", ErrorCode::kInvalidJson},
        // Not an object, no usable type.
        BadInput{"top_level_array", "[" + std::string(kStats) + "]", ErrorCode::kInvalidMessage},
        BadInput{"top_level_string", R"("stats")", ErrorCode::kInvalidMessage},
        BadInput{"top_level_number", "1", ErrorCode::kInvalidMessage},
        BadInput{"top_level_null", "null", ErrorCode::kInvalidMessage},
        BadInput{"missing_type", R"({"seq":1})", ErrorCode::kInvalidMessage},
        BadInput{"type_number", R"({"type":1})", ErrorCode::kInvalidMessage},
        BadInput{"type_null", R"({"type":null})", ErrorCode::kInvalidMessage},
        // Types of other protocols or directions.
        BadInput{"unknown_type", R"({"type":"teleport"})", ErrorCode::kUnknownType},
        BadInput{"type_case", R"({"type":"Stats"})", ErrorCode::kUnknownType},
        BadInput{"client_hello", R"({"type":"hello","id":1,"token":"a.b.c"})",
                 ErrorCode::kUnknownType},
        BadInput{"client_join", R"({"type":"join"})", ErrorCode::kUnknownType},
        BadInput{"client_report", R"({"type":"report","server":"sfu-1","reason":"no_media"})",
                 ErrorCode::kUnknownType},
        BadInput{
            "router_registered",
            R"({"type":"registered","id":"sfu-1","replica":"r","report_interval_ms":1000,"state":"pending"})",
            ErrorCode::kUnknownType},
        BadInput{"router_state", R"({"type":"state","state":"active","reason":"reporting"})",
                 ErrorCode::kUnknownType},
        BadInput{"router_error", R"({"type":"error","code":"internal","message":"m"})",
                 ErrorCode::kUnknownType},
        // register: missing fields.
        BadInput{"register_no_token", RegisterWith("token", ""), ErrorCode::kInvalidMessage},
        BadInput{"register_no_id", RegisterWith("id", ""), ErrorCode::kInvalidMessage},
        BadInput{"register_no_url", RegisterWith("url", ""), ErrorCode::kInvalidMessage},
        BadInput{"register_no_region", RegisterWith("region", ""), ErrorCode::kInvalidMessage},
        BadInput{"register_no_capacity", RegisterWith("capacity", ""), ErrorCode::kInvalidMessage},
        // register: token.
        BadInput{"register_token_number", RegisterWith("token", "5"), ErrorCode::kInvalidMessage},
        BadInput{"register_token_null", RegisterWith("token", "null"), ErrorCode::kInvalidMessage},
        BadInput{"register_token_empty", RegisterWith("token", R"("")"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_token_8193_bytes", RegisterWith("token", Quoted(std::string(8193, 't'))),
                 ErrorCode::kInvalidMessage},
        // register: id.
        BadInput{"register_id_number", RegisterWith("id", "1"), ErrorCode::kInvalidMessage},
        BadInput{"register_id_empty", RegisterWith("id", R"("")"), ErrorCode::kInvalidMessage},
        BadInput{"register_id_129_bytes", RegisterWith("id", Quoted(std::string(129, 'i'))),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_id_control_char", RegisterWith("id", R"("sfu\u0001")"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_id_del", RegisterWith("id", R"("sfu\u007f")"),
                 ErrorCode::kInvalidMessage},
        // register: url.
        BadInput{"register_url_number", RegisterWith("url", "1"), ErrorCode::kInvalidMessage},
        BadInput{"register_url_empty", RegisterWith("url", R"("")"), ErrorCode::kInvalidMessage},
        BadInput{"register_url_1025_bytes",
                 RegisterWith("url", Quoted("wss://" + std::string(1025 - 6, 'u'))),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_url_newline", RegisterWith("url", R"("wss://sfu-1/\n")"),
                 ErrorCode::kInvalidMessage},
        // register: region.
        BadInput{"register_region_empty", RegisterWith("region", R"("")"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_region_65_bytes", RegisterWith("region", Quoted(std::string(65, 'r'))),
                 ErrorCode::kInvalidMessage},
        // 33 two-byte characters: 66 bytes, though only 33 code points.
        BadInput{"register_region_66_bytes_utf8", RegisterWith("region", Quoted([] {
                                                                 std::string s;
                                                                 for (int i = 0; i < 33; ++i)
                                                                   s += "\xc3\xa9";
                                                                 return s;
                                                               }())),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_region_tab", RegisterWith("region", R"("eu\twest")"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_region_null", RegisterWith("region", "null"),
                 ErrorCode::kInvalidMessage},
        // register: capacity.
        BadInput{"register_capacity_0", RegisterWith("capacity", "0"), ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_above_max", RegisterWith("capacity", "1000001"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_above_uint32", RegisterWith("capacity", kMaxU32Plus1),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_negative", RegisterWith("capacity", "-1"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_fraction", RegisterWith("capacity", "1.5"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_integral_float", RegisterWith("capacity", "10.0"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_exponent", RegisterWith("capacity", "1e3"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_string", RegisterWith("capacity", R"("500")"),
                 ErrorCode::kInvalidMessage},
        BadInput{"register_capacity_bool", RegisterWith("capacity", "true"),
                 ErrorCode::kInvalidMessage},
        // stats: missing fields.
        BadInput{"stats_no_seq", StatsWith("seq", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_peers", StatsWith("peers", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_media_peers", StatsWith("media_peers", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_packets_in", StatsWith("packets_in", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_packets_out", StatsWith("packets_out", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_bytes_in", StatsWith("bytes_in", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_bytes_out", StatsWith("bytes_out", ""), ErrorCode::kInvalidMessage},
        BadInput{"stats_no_cpu", StatsWith("cpu", ""), ErrorCode::kInvalidMessage},
        // stats: integers.
        BadInput{"stats_seq_negative", StatsWith("seq", "-1"), ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_fraction", StatsWith("seq", "7.5"), ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_integral_float", StatsWith("seq", "7.0"), ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_exponent", StatsWith("seq", "7e0"), ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_above_max_safe", StatsWith("seq", kMaxSafePlus1),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_above_uint64", StatsWith("seq", "18446744073709551616"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_string", StatsWith("seq", R"("7")"), ErrorCode::kInvalidMessage},
        BadInput{"stats_seq_null", StatsWith("seq", "null"), ErrorCode::kInvalidMessage},
        BadInput{"stats_peers_above_uint32", StatsWith("peers", kMaxU32Plus1),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_peers_negative", StatsWith("peers", "-10"), ErrorCode::kInvalidMessage},
        BadInput{"stats_media_peers_above_uint32", StatsWith("media_peers", kMaxU32Plus1),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_media_peers_fraction", StatsWith("media_peers", "0.5"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_packets_in_above_max_safe", StatsWith("packets_in", kMaxSafePlus1),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_packets_out_negative", StatsWith("packets_out", "-3000"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_bytes_in_exponent", StatsWith("bytes_in", "9e5"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_bytes_out_above_max_safe", StatsWith("bytes_out", kMaxSafePlus1),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_bytes_out_bool", StatsWith("bytes_out", "false"),
                 ErrorCode::kInvalidMessage},
        // stats: cpu.
        BadInput{"stats_cpu_above_1", StatsWith("cpu", "1.01"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_2", StatsWith("cpu", "2"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_percent", StatsWith("cpu", "37"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_negative", StatsWith("cpu", "-0.01"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_negative_integer", StatsWith("cpu", "-1"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_overflow_to_infinity", StatsWith("cpu", "1e999"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_overflow_to_minus_infinity", StatsWith("cpu", "-1e999"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_huge_integer", StatsWith("cpu", "18446744073709551615"),
                 ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_string_nan", StatsWith("cpu", R"("NaN")"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_string", StatsWith("cpu", R"("0.5")"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_null", StatsWith("cpu", "null"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_bool", StatsWith("cpu", "true"), ErrorCode::kInvalidMessage},
        BadInput{"stats_cpu_array", StatsWith("cpu", "[0.5]"), ErrorCode::kInvalidMessage}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(FleetCodecTest, StatsErrorCarriesSeqWhenReadable) {
  auto err = DecodeVideoError(StatsWith("cpu", "1.5"));
  EXPECT_EQ(err.id, 7u);
  EXPECT_NE(err.message.find("cpu"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find("stats"), std::string::npos) << err.message;
  EXPECT_EQ(DecodeVideoError(StatsWith("peers", "-1")).id, 7u);
  // Without a readable seq there is nothing to name.
  EXPECT_FALSE(DecodeVideoError(StatsWith("seq", "-1")).id.has_value());
  EXPECT_FALSE(DecodeVideoError(StatsWith("seq", "")).id.has_value());
  // register has no request id: its `id` is the server's.
  EXPECT_FALSE(DecodeVideoError(RegisterWith("capacity", "0")).id.has_value());
  EXPECT_FALSE(DecodeVideoError(R"({"type":"hello","id":5})").id.has_value());
  EXPECT_FALSE(DecodeVideoError(R"({"id":5})").id.has_value());
}

TEST(FleetCodecTest, ErrorMessagesNameTheFieldNotTheToken) {
  const auto err = DecodeVideoError(RegisterWith("capacity", "0"));
  EXPECT_NE(err.message.find("capacity"), std::string::npos) << err.message;
  EXPECT_EQ(err.message.find("a.b.c"), std::string::npos) << err.message;
}

TEST(FleetCodecTest, VideoTypesAreUnknownToTheClientDecoder) {
  auto code = [](std::string_view text) {
    auto r = DecodeClientMessage(text);
    return std::holds_alternative<DecodeError>(r) ? std::get<DecodeError>(r).code
                                                  : ErrorCode::kInternal;
  };
  EXPECT_EQ(code(kStats), ErrorCode::kUnknownType);
  EXPECT_EQ(code(RegisterWith("id", "")), ErrorCode::kUnknownType);
  // The client protocol reads `id` as a request id before `type`: a server id is refused first.
  EXPECT_EQ(code(kRegister), ErrorCode::kInvalidMessage);
}

TEST(FleetCodecTest, VideoServerMessagesRoundTrip) {
  const std::vector<VideoServerMessage> messages = {
      Register{"a.b.c", "sfu-1", "wss://sfu-1.example/rtc", "eu-west", 500},
      Register{std::string(8192, 't'), std::string(kMaxIdBytes, 'i'),
               std::string(kMaxUrlBytes, 'u'), std::string(kMaxRegionBytes, 'r'), kMaxCapacity},
      Stats{0, 0, 0, 0, 0, 0, 0, 0.0, std::nullopt, std::nullopt},
      Stats{7, 10, 9, 1000, 3000, 900000, 2700000, 0.25, std::nullopt, std::nullopt},
      Stats{kMaxSafeInteger, std::numeric_limits<std::uint32_t>::max(),
            std::numeric_limits<std::uint32_t>::max(), kMaxSafeInteger, kMaxSafeInteger,
            kMaxSafeInteger, kMaxSafeInteger, 1.0, std::nullopt, std::nullopt},
      Stats{1, 1, 1, 1, 1, 1, 1, 0.1 + 0.2, std::nullopt,
            std::nullopt},  // a double with no short decimal form
  };
  for (const auto& m : messages) {
    const std::string text = Encode(m);
    auto back = DecodeVideoServerMessage(text);
    ASSERT_TRUE(std::holds_alternative<VideoServerMessage>(back))
        << text << ": " << std::get<DecodeError>(back).message;
    const auto& decoded = std::get<VideoServerMessage>(back);
    ASSERT_EQ(decoded.index(), m.index());
    EXPECT_EQ(Encode(decoded), text);
    EXPECT_NE(text.find(std::string(R"({"type":")") +
                        std::string(kVideoServerTypeNames[m.index()]) + "\""),
              std::string::npos)
        << text;
    if (const auto* s = std::get_if<Stats>(&m)) {
      EXPECT_EQ(std::get<Stats>(decoded).cpu, s->cpu);  // exact, not approximately
      EXPECT_EQ(std::get<Stats>(decoded).bytes_out, s->bytes_out);
    }
  }
}

TEST(FleetCodecTest, RouterToVideoServerMessagesRoundTrip) {
  const std::vector<RouterToVideoServerMessage> messages = {
      Registered{"sfu-1", "router-a", 1000, "pending"},
      Registered{"sfu-1", "router-a", std::numeric_limits<std::uint32_t>::max(), "active"},
      StateChange{"ejected", "not_forwarding"},
      StateChange{"active", "reporting"},
      Error{7, ErrorCode::kInvalidMessage, "stats: field 'cpu' must be a number in [0, 1]"},
      Error{std::nullopt, ErrorCode::kForbidden, "token is for 'sfu-2'"},
      Error{kMaxSafeInteger, ErrorCode::kNotRegistered, ""},
  };
  for (const auto& m : messages) {
    const std::string text = Encode(m);
    auto back = DecodeRouterToVideoServerMessage(text);
    ASSERT_TRUE(std::holds_alternative<RouterToVideoServerMessage>(back))
        << text << ": " << std::get<DecodeError>(back).message;
    const auto& decoded = std::get<RouterToVideoServerMessage>(back);
    ASSERT_EQ(decoded.index(), m.index());
    EXPECT_EQ(Encode(decoded), text);
  }
}

TEST(FleetCodecTest, EncodesExactWireShape) {
  EXPECT_EQ(
      Encode(VideoServerMessage(Register{"t", "sfu-1", "wss://s/", "eu", 5})),
      R"({"type":"register","token":"t","id":"sfu-1","url":"wss://s/","region":"eu","capacity":5})");
  EXPECT_EQ(
      Encode(VideoServerMessage(Stats{3, 2, 1, 40, 50, 600, 700, 0, std::nullopt, std::nullopt}))
          .substr(0, 120),
      R"({"type":"stats","seq":3,"peers":2,"media_peers":1,"packets_in":40,"packets_out":50,"bytes_in":600,"bytes_out":700,"cpu":)");
  EXPECT_EQ(
      Encode(RouterToVideoServerMessage(Registered{"sfu-1", "r-1", 1000, "pending"})),
      R"({"type":"registered","id":"sfu-1","replica":"r-1","report_interval_ms":1000,"state":"pending"})");
  EXPECT_EQ(Encode(RouterToVideoServerMessage(StateChange{"ejected", "not_forwarding"})),
            R"({"type":"state","state":"ejected","reason":"not_forwarding"})");
  EXPECT_EQ(Encode(RouterToVideoServerMessage(Error{12, ErrorCode::kNotRegistered, "m"})),
            R"({"type":"error","id":12,"code":"not_registered","message":"m"})");
}

TEST(FleetCodecTest, ErrorIsTheClientProtocolsError) {
  for (const Error& e : {Error{12, ErrorCode::kInvalidMessage, "stats: bad"},
                         Error{std::nullopt, ErrorCode::kAlreadyRegistered, "again"},
                         Error{0, ErrorCode::kTokenExpired, ""}}) {
    const std::string text = Encode(RouterToVideoServerMessage(e));
    EXPECT_EQ(text, Encode(ServerMessage(e)));
    // And each side's decoder reads the other's.
    auto as_client = DecodeServerMessage(text);
    ASSERT_TRUE(std::holds_alternative<ServerMessage>(as_client)) << text;
    EXPECT_EQ(std::get<Error>(std::get<ServerMessage>(as_client)).id, e.id);
    auto as_video = DecodeRouterToVideoServerMessage(text);
    ASSERT_TRUE(std::holds_alternative<RouterToVideoServerMessage>(as_video)) << text;
    const auto& back = std::get<Error>(std::get<RouterToVideoServerMessage>(as_video));
    EXPECT_EQ(back.id, e.id);
    EXPECT_EQ(back.code, e.code);
    EXPECT_EQ(back.message, e.message);
  }
}

class RouterToVideoServerBadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(RouterToVideoServerBadInputTest, ReturnsTypedError) {
  const auto err = DecodeRouterError(GetParam().text);
  EXPECT_EQ(ErrorCodeName(err.code), ErrorCodeName(GetParam().code)) << err.message;
  EXPECT_FALSE(err.message.empty());
}

INSTANTIATE_TEST_SUITE_P(
    AllErrors, RouterToVideoServerBadInputTest,
    ::testing::Values(
        BadInput{"not_json", "{", ErrorCode::kInvalidJson},
        BadInput{"array", "[]", ErrorCode::kInvalidMessage},
        BadInput{"unknown_type", R"({"type":"teleport"})", ErrorCode::kUnknownType},
        BadInput{"video_server_type", kStats, ErrorCode::kUnknownType},
        BadInput{"client_protocol_type",
                 R"({"type":"goaway","reason":"shutdown","reconnect_after_ms":1})",
                 ErrorCode::kUnknownType},
        BadInput{"registered_no_state",
                 R"({"type":"registered","id":"sfu-1","replica":"r","report_interval_ms":1000})",
                 ErrorCode::kInvalidMessage},
        BadInput{
            "registered_bad_id",
            R"({"type":"registered","id":"","replica":"r","report_interval_ms":1000,"state":"pending"})",
            ErrorCode::kInvalidMessage},
        BadInput{
            "registered_interval_0",
            R"({"type":"registered","id":"sfu-1","replica":"r","report_interval_ms":0,"state":"pending"})",
            ErrorCode::kInvalidMessage},
        BadInput{
            "registered_interval_above_uint32",
            R"({"type":"registered","id":"sfu-1","replica":"r","report_interval_ms":4294967296,"state":"pending"})",
            ErrorCode::kInvalidMessage},
        BadInput{"state_no_reason", R"({"type":"state","state":"active"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"state_empty", R"({"type":"state","state":"","reason":"reporting"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"error_unknown_code", R"({"type":"error","code":"sad","message":"m"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"error_id_negative", R"({"type":"error","id":-1,"code":"internal","message":"m"})",
                 ErrorCode::kInvalidMessage}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(FleetCodecTest, DecodesRouterMessages) {
  auto r = DecodeRouterToVideoServerMessage(
      R"({"type":"registered","id":"sfu-1","replica":"r-1","report_interval_ms":250,"state":"pending","future":1})");
  ASSERT_TRUE(std::holds_alternative<RouterToVideoServerMessage>(r));
  const auto& reg = std::get<Registered>(std::get<RouterToVideoServerMessage>(r));
  EXPECT_EQ(reg.id, "sfu-1");
  EXPECT_EQ(reg.replica, "r-1");
  EXPECT_EQ(reg.report_interval_ms, 250u);
  EXPECT_EQ(reg.state, "pending");
  // Unknown states and reasons decode: later routers may add them.
  r = DecodeRouterToVideoServerMessage(R"({"type":"state","state":"resting","reason":"tea"})");
  ASSERT_TRUE(std::holds_alternative<RouterToVideoServerMessage>(r));
  EXPECT_EQ(std::get<StateChange>(std::get<RouterToVideoServerMessage>(r)).reason, "tea");
  // An error whose fields are bad still names the seq it was about.
  EXPECT_EQ(DecodeRouterError(R"({"type":"error","id":9,"code":"sad","message":"m"})").id, 9u);
}

}  // namespace
}  // namespace vrouter::proto
