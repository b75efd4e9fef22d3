#include "proto/codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "tests/proto/decode_test_util.h"

namespace vrouter::proto {
namespace {

using test_util::BadInput;

template <class T>
T DecodeClientAs(std::string_view text) {
  return test_util::ExpectMessage<T>(DecodeClientMessage(text), text);
}

DecodeError DecodeClientError(std::string_view text) {
  return test_util::ExpectError(DecodeClientMessage(text), text);
}

TEST(CodecTest, DecodesEveryClientMessage) {
  EXPECT_EQ(DecodeClientAs<Hello>(R"({"type":"hello","id":1,"token":"t.o.k"})").token, "t.o.k");
  EXPECT_EQ(DecodeClientAs<Join>(R"({"type":"join","id":7})").id, 7u);
  auto resume = DecodeClientAs<Resume>(R"({"type":"resume","server":"sfu-1","epoch":42})");
  EXPECT_EQ(resume.server, "sfu-1");
  EXPECT_EQ(resume.epoch, 42u);
  EXPECT_FALSE(resume.id.has_value());
  EXPECT_EQ(DecodeClientAs<Lookup>(R"({"type":"lookup","id":3,"users":["a","b"]})").users,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(DecodeClientAs<Watch>(R"({"type":"watch","users":["bob"]})").users.size(), 1u);
  EXPECT_EQ(DecodeClientAs<Unwatch>(R"({"type":"unwatch","users":[]})").users.size(), 0u);
  auto report = DecodeClientAs<Report>(
      R"({"type":"report","server":"sfu-2","reason":"ice_failed","detail":"x"})");
  EXPECT_EQ(report.reason, FailureReason::kIceFailed);
  EXPECT_EQ(report.detail, "x");
  EXPECT_EQ(DecodeClientAs<Leave>(R"({"type":"leave","id":9})").id, 9u);
}

TEST(CodecTest, IgnoresUnknownFields) {
  EXPECT_EQ(DecodeClientAs<Join>(R"({"type":"join","id":1,"future":{"x":[1]}})").id, 1u);
}

TEST(CodecTest, AcceptsLargestSafeIdAndRejectsAbove) {
  EXPECT_EQ(DecodeClientAs<Join>(R"({"type":"join","id":9007199254740991})").id, kMaxSafeInteger);
  EXPECT_EQ(DecodeClientError(R"({"type":"join","id":9007199254740992})").code,
            ErrorCode::kInvalidMessage);
}

class CodecBadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(CodecBadInputTest, ReturnsTypedError) {
  const auto err = DecodeClientError(GetParam().text);
  EXPECT_EQ(ErrorCodeName(err.code), ErrorCodeName(GetParam().code)) << err.message;
  EXPECT_FALSE(err.message.empty());
}

INSTANTIATE_TEST_SUITE_P(
    AllErrors, CodecBadInputTest,
    ::testing::Values(
        BadInput{"empty", "", ErrorCode::kInvalidJson},
        BadInput{"not_json", "hello there", ErrorCode::kInvalidJson},
        BadInput{"truncated", R"({"type":"join")", ErrorCode::kInvalidJson},
        BadInput{"too_deep", R"({"type":"join","x":[[[[[[[[[[1]]]]]]]]]]})",
                 ErrorCode::kInvalidJson},
        BadInput{"array", "[1,2]", ErrorCode::kInvalidMessage},
        BadInput{"string", R"("join")", ErrorCode::kInvalidMessage},
        BadInput{"no_type", R"({"id":1})", ErrorCode::kInvalidMessage},
        BadInput{"type_number", R"({"type":5})", ErrorCode::kInvalidMessage},
        BadInput{"unknown_type", R"({"type":"teleport"})", ErrorCode::kUnknownType},
        BadInput{"router_type_from_client", R"({"type":"welcome"})", ErrorCode::kUnknownType},
        BadInput{"hello_no_token", R"({"type":"hello"})", ErrorCode::kInvalidMessage},
        BadInput{"hello_token_number", R"({"type":"hello","token":5})", ErrorCode::kInvalidMessage},
        BadInput{"hello_token_huge",
                 R"({"type":"hello","token":")" + std::string(9000, 'a') + R"("})",
                 ErrorCode::kInvalidMessage},
        BadInput{"id_negative", R"({"type":"join","id":-1})", ErrorCode::kInvalidMessage},
        BadInput{"id_string", R"({"type":"join","id":"1"})", ErrorCode::kInvalidMessage},
        BadInput{"id_fraction", R"({"type":"join","id":1.5})", ErrorCode::kInvalidMessage},
        BadInput{"resume_no_epoch", R"({"type":"resume","server":"s"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"resume_epoch_string", R"({"type":"resume","server":"s","epoch":"3"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"resume_empty_server", R"({"type":"resume","server":"","epoch":3})",
                 ErrorCode::kInvalidMessage},
        BadInput{"lookup_users_missing", R"({"type":"lookup"})", ErrorCode::kInvalidMessage},
        BadInput{"lookup_users_object", R"({"type":"lookup","users":{}})",
                 ErrorCode::kInvalidMessage},
        BadInput{"lookup_user_number", R"({"type":"lookup","users":["a",1]})",
                 ErrorCode::kInvalidMessage},
        BadInput{"lookup_user_empty", R"({"type":"lookup","users":[""]})",
                 ErrorCode::kInvalidMessage},
        BadInput{"lookup_user_too_long",
                 R"({"type":"lookup","users":[")" + std::string(129, 'u') + R"("]})",
                 ErrorCode::kInvalidMessage},
        BadInput{"lookup_user_control_char", R"({"type":"lookup","users":["a\nb"]})",
                 ErrorCode::kInvalidMessage},
        BadInput{"watch_users_null", R"({"type":"watch","users":null})",
                 ErrorCode::kInvalidMessage},
        BadInput{"report_bad_reason", R"({"type":"report","server":"s","reason":"sad"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"report_no_server", R"({"type":"report","reason":"no_media"})",
                 ErrorCode::kInvalidMessage},
        BadInput{"report_detail_huge",
                 R"({"type":"report","server":"s","reason":"other","detail":")" +
                     std::string(300, 'd') + R"("})",
                 ErrorCode::kInvalidMessage}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CodecTest, RefusesRouterUint32FieldsAboveRange) {
  // These used to be truncated to 32 bits; the schemas say uint32.
  EXPECT_EQ(test_util::ExpectError(
                DecodeServerMessage(
                    R"({"type":"goaway","reason":"shutdown","reconnect_after_ms":4294967296})"),
                "goaway")
                .code,
            ErrorCode::kInvalidMessage);
  const std::string welcome =
      R"({"type":"welcome","replica":"r","session":"1","user":"u","space":"s","limits":{"max_message_bytes":131072,"max_batch":4294967296,"max_watches":1}})";
  EXPECT_EQ(test_util::ExpectError(DecodeServerMessage(welcome), welcome).code,
            ErrorCode::kInvalidMessage);
  auto ok = DecodeServerMessage(
      R"({"type":"goaway","reason":"shutdown","reconnect_after_ms":4294967295})");
  ASSERT_TRUE(std::holds_alternative<ServerMessage>(ok));
  EXPECT_EQ(std::get<GoAway>(std::get<ServerMessage>(ok)).reconnect_after_ms, 4294967295u);
}

TEST(CodecTest, ErrorCarriesRequestIdWhenReadable) {
  auto err = DecodeClientError(R"({"type":"lookup","id":12,"users":"bob"})");
  EXPECT_EQ(err.id, 12u);
  EXPECT_NE(err.message.find("users"), std::string::npos);
  EXPECT_EQ(DecodeClientError(R"({"type":"nope","id":4})").id, 4u);
}

TEST(CodecTest, EveryErrorCodeHasAUniqueName) {
  for (int i = 0; i < kErrorCodeCount; ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const auto name = ErrorCodeName(code);
    ASSERT_FALSE(name.empty());
    EXPECT_EQ(ErrorCodeFromName(name), code) << name;
  }
  EXPECT_FALSE(ErrorCodeFromName("no_such_code").has_value());
}

// Every client message survives encode -> decode unchanged.
TEST(CodecTest, ClientMessagesRoundTrip) {
  const std::vector<ClientMessage> messages = {
      Hello{1, "a.b.c"},
      Join{2},
      Resume{3, "sfu-1", 99},
      Lookup{4, {"x", "y"}},
      Watch{std::nullopt, {"x"}},
      Unwatch{5, {"x"}},
      Report{6, "sfu-1", FailureReason::kNoMedia, "black screen"},
      Leave{7},
  };
  for (const auto& m : messages) {
    const std::string text = Encode(m);
    auto back = DecodeClientMessage(text);
    ASSERT_TRUE(std::holds_alternative<ClientMessage>(back)) << text;
    EXPECT_EQ(Encode(std::get<ClientMessage>(back)), text);
    EXPECT_EQ(std::get<ClientMessage>(back).index(), m.index());
  }
}

TEST(CodecTest, ServerMessagesRoundTrip) {
  const ServerRef s{"sfu-1", "wss://sfu-1/", "eu"};
  const std::vector<ServerMessage> messages = {
      Welcome{1, "r1", "17", "alice", "space", Limits{131072, 1000, 1000}},
      Assigned{2, s, 5, true},
      LookupResult{3, {UserLocation{"bob", s, 5}, UserLocation{"carol", std::nullopt, 0}}},
      WatchResult{4, {UserLocation{"bob", s, 5}}},
      Ack{5},
      Moved{"bob", s, 6, std::string("sfu-0")},
      Moved{"bob", s, 6, std::nullopt},
      Left{"bob", 6},
      Migrate{s, 8, "drain"},
      GoAway{"shutdown", 1234},
      Error{9, ErrorCode::kBatchTooLarge, "too many"},
  };
  for (const auto& m : messages) {
    const std::string text = Encode(m);
    auto back = DecodeServerMessage(text);
    ASSERT_TRUE(std::holds_alternative<ServerMessage>(back))
        << text << ": " << std::get<DecodeError>(back).message;
    EXPECT_EQ(Encode(std::get<ServerMessage>(back)), text);
  }
}

TEST(CodecTest, EncodesExactWireShape) {
  EXPECT_EQ(Encode(ServerMessage(Error{3, ErrorCode::kNotAuthenticated, "m"})),
            R"({"type":"error","id":3,"code":"not_authenticated","message":"m"})");
  EXPECT_EQ(Encode(ServerMessage(Left{"bob", 2})), R"({"type":"left","user":"bob","epoch":2})");
  EXPECT_EQ(Encode(ClientMessage(Join{std::nullopt})), R"({"type":"join"})");
}

// Router messages are written without a DOM (the hot path); the bytes must be what Boost.JSON
// prints for the same object, escapes included.
TEST(CodecTest, DirectEncoderMatchesBoostJsonSerialize) {
  std::string every_byte;
  for (int c = 1; c < 256; ++c) every_byte += static_cast<char>(c);
  const std::vector<std::string> texts = {"",
                                          "plain",
                                          "quote\" back\\slash /",
                                          every_byte,
                                          "caf\xc3\xa9 \xf0\x9f\x8e\xa5",
                                          std::string(1, '\0')};
  for (const auto& t : texts) {
    const std::string encoded = Encode(ServerMessage(Error{7, ErrorCode::kInvalidMessage, t}));
    const boost::json::object expected{
        {"type", "error"}, {"id", 7}, {"code", "invalid_message"}, {"message", t}};
    EXPECT_EQ(encoded, boost::json::serialize(expected));
  }
  const ServerRef s{"sfu-\"1", "wss://sfu-1/rtc", "eu"};
  EXPECT_EQ(
      Encode(ServerMessage(LookupResult{std::uint64_t{9007199254740991},
                                        {UserLocation{"bob", s, 18446744073709551615ULL},
                                         UserLocation{"carol", std::nullopt, 0}}})),
      boost::json::serialize(boost::json::object{
          {"type", "lookup_result"},
          {"id", 9007199254740991ULL},
          {"results",
           boost::json::array{
               boost::json::object{{"user", "bob"},
                                   {"server", {{"id", s.id}, {"url", s.url}, {"region", s.region}}},
                                   {"epoch", 18446744073709551615ULL}},
               boost::json::object{{"user", "carol"}, {"server", nullptr}, {"epoch", 0}}}}}));
  EXPECT_EQ(Encode(ServerMessage(LookupResult{std::nullopt, {}})),
            R"({"type":"lookup_result","results":[]})");
}

}  // namespace
}  // namespace vrouter::proto
