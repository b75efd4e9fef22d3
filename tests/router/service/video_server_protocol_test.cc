// VideoServerProtocol without sockets: register with the server's own credential, stats, and
// every way a video server can get it wrong.
#include "router/service/video_server_protocol.h"

#include <gtest/gtest.h>

#include "proto/video_server_codec.h"
#include "router/edge/token.h"
#include "tests/support/fake_session.h"
#include "tests/support/service_harness.h"

namespace vrouter::service {
namespace {

using proto::ErrorCode;
constexpr std::int64_t kNow = vrouter::testing::ServiceHarness::kUnixNow;

class FakeConnection : public vrouter::testing::FakeSession {
 public:
  proto::RouterToVideoServerMessage Last() const {
    EXPECT_FALSE(sent.empty());
    return std::get<proto::RouterToVideoServerMessage>(
        proto::DecodeRouterToVideoServerMessage(sent.back()));
  }
};

struct VideoServerProtocolTest : ::testing::Test, vrouter::testing::ServiceHarness {
  struct Conn {
    std::shared_ptr<FakeConnection> io = std::make_shared<FakeConnection>();
    std::unique_ptr<VideoServerProtocol> protocol;
    void Say(const proto::VideoServerMessage& m) { protocol->OnText(proto::Encode(m)); }
  };
  Conn Open() {
    Conn c;
    c.protocol = std::make_unique<VideoServerProtocol>(service, *c.io, c.io, next_id++);
    return c;
  }
  static proto::Register Reg(const std::string& id, const std::string& token) {
    return {token, id, "wss://" + id + "/rtc", "eu", 100};
  }
  std::string Cred(const std::string& id, const std::string& key = "vk") {
    return edge::MintServerToken(id, key, kNow, kNow + 60);
  }
  static ErrorCode CodeOf(const proto::RouterToVideoServerMessage& m) {
    EXPECT_TRUE(std::holds_alternative<proto::Error>(m));
    return std::holds_alternative<proto::Error>(m) ? std::get<proto::Error>(m).code
                                                   : ErrorCode::kInternal;
  }
  std::uint64_t next_id = 1;
};

TEST_F(VideoServerProtocolTest, RegistersThenReportsAndBecomesActive) {
  auto c = Open();
  c.Say(Reg("sfu-1", Cred("sfu-1")));
  const auto reg = std::get<proto::Registered>(c.io->Last());
  EXPECT_EQ(reg.id, "sfu-1");
  EXPECT_EQ(reg.replica, "r1");
  EXPECT_EQ(reg.report_interval_ms, 1000u);
  EXPECT_EQ(reg.state, "pending");
  ASSERT_NE(fleet.Snapshot()->Find("sfu-1"), nullptr);  // in the directory lookups read
  c.Say(proto::Stats{1, 0, 0, 0, 0, 0, 0, 0.1, std::nullopt, std::nullopt});
  EXPECT_EQ(fleet_control.View().servers.at(0).state, fleet::ServerState::kActive);
  // The state change is pushed to the server itself.
  ASSERT_FALSE(c.io->pushed.empty());
  EXPECT_NE(c.io->pushed.back().find(R"("state":"active")"), std::string::npos);
  EXPECT_EQ(metrics.stats_reports[static_cast<int>(fleet::StatsVerdict::kBaseline)]->Value(), 1);
}

TEST_F(VideoServerProtocolTest, BadCredentialsAreRefusedAndClosed) {
  auto client_token = Open();
  client_token.Say(Reg("sfu-1", edge::MintToken("sfu-1", "space", "vk", kNow, kNow + 60)));
  EXPECT_EQ(CodeOf(client_token.io->Last()), ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(client_token.io->closed, proto::close_code::kAuthFailed);

  auto wrong_key = Open();
  wrong_key.Say(Reg("sfu-1", Cred("sfu-1", "k")));  // signed with the client key
  EXPECT_EQ(CodeOf(wrong_key.io->Last()), ErrorCode::kTokenBadSignature);
  EXPECT_EQ(wrong_key.io->closed, proto::close_code::kAuthFailed);

  auto other_id = Open();
  other_id.Say(Reg("sfu-2", Cred("sfu-1")));  // a server may only speak for itself
  EXPECT_EQ(CodeOf(other_id.io->Last()), ErrorCode::kForbidden);
  EXPECT_EQ(other_id.io->closed, proto::close_code::kAuthFailed);

  service.video_server_secret.clear();
  auto unconfigured = Open();
  unconfigured.Say(Reg("sfu-1", Cred("sfu-1")));
  EXPECT_EQ(CodeOf(unconfigured.io->Last()), ErrorCode::kAuthNotConfigured);
  EXPECT_TRUE(fleet_control.View().servers.empty());
}

TEST_F(VideoServerProtocolTest, ProtocolMistakesGetTypedErrorsAndKeepTheConnection) {
  auto c = Open();
  c.Say(proto::Stats{5, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt});
  EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kNotRegistered);
  EXPECT_EQ(std::get<proto::Error>(c.io->Last()).id, 5u);
  c.Say(Reg("sfu-1", Cred("sfu-1")));
  c.Say(Reg("sfu-1", Cred("sfu-1")));
  EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kAlreadyRegistered);
  c.protocol->OnText("{nope");
  EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kInvalidJson);
  c.protocol->OnText(R"({"type":"stats","seq":9,"peers":1,"media_peers":1,"packets_in":1,)"
                     R"("packets_out":1,"bytes_in":1,"bytes_out":1,"cpu":7})");
  EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kInvalidMessage);
  EXPECT_EQ(std::get<proto::Error>(c.io->Last()).id, 9u);
  c.protocol->OnText(R"({"type":"hello","token":"x"})");
  EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kUnknownType);
  EXPECT_FALSE(c.io->closed);
  EXPECT_EQ(metrics.stats_invalid->Value(), 3);
}

TEST_F(VideoServerProtocolTest, NewerConnectionReplacesTheOlderAndReorderedStatsAreIgnored) {
  auto first = Open();
  first.Say(Reg("sfu-1", Cred("sfu-1")));
  first.Say(proto::Stats{1, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt});
  first.Say(proto::Stats{2, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt});
  first.Say(proto::Stats{2, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt});  // duplicate
  EXPECT_EQ(fleet_control.View().servers.at(0).stats_reordered, 1u);
  auto second = Open();
  second.Say(Reg("sfu-1", Cred("sfu-1")));
  EXPECT_EQ(first.io->closed_async, proto::close_code::kSessionReplaced);
  // PROTOCOL.md 14.6 and 9.1: close 4000's reason is session_replaced, as for clients.
  EXPECT_EQ(first.io->closed_async_reason, "session_replaced");
  first.protocol->OnClosed();  // the old connection's close must not disconnect the new one
  EXPECT_TRUE(fleet_control.View().servers.at(0).connected);
  second.protocol->OnClosed();
  EXPECT_FALSE(fleet_control.View().servers.at(0).connected);
}

// A credential proves who the server is, not what the operator decided about it (issue 16).
TEST_F(VideoServerProtocolTest, ADeclaredServerKeepsItsDeclaredUrlRegionAndCapacity) {
  fleet_control.Declare({{"sfu-1", "wss://sfu-1/rtc", "eu", 100, true}});
  for (const auto& lie :
       {proto::Register{Cred("sfu-1"), "sfu-1", "wss://evil/rtc", "eu", 100},
        proto::Register{Cred("sfu-1"), "sfu-1", "wss://sfu-1/rtc", "us", 100},
        proto::Register{Cred("sfu-1"), "sfu-1", "wss://sfu-1/rtc", "eu", 1'000'000}}) {
    auto c = Open();
    c.Say(lie);
    EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kForbidden);
    EXPECT_EQ(c.io->closed, proto::close_code::kAuthFailed);
    c.protocol->OnClosed();
  }
  EXPECT_EQ(metrics.registrations_refused[0]->Value(), 3);  // declared_mismatch
  const auto* entry = fleet.Snapshot()->Find("sfu-1");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->url, "wss://sfu-1/rtc");
  EXPECT_EQ(fleet_control.View().servers.at(0).server.capacity, 100u);
  auto honest = Open();
  honest.Say(Reg("sfu-1", Cred("sfu-1")));
  EXPECT_TRUE(std::holds_alternative<proto::Registered>(honest.io->Last()));
}

TEST_F(VideoServerProtocolTest, ASelfRegisteredServerIsCappedAndItsUrlChecked) {
  auto big = Open();
  big.Say(proto::Register{Cred("sfu-2"), "sfu-2", "wss://sfu-2/rtc", "eu", 1'000'000});
  EXPECT_TRUE(std::holds_alternative<proto::Registered>(big.io->Last()));
  EXPECT_EQ(fleet_control.View().servers.at(0).server.capacity,
            fleet::RegistrationPolicy{}.max_capacity);
  EXPECT_EQ(metrics.registered_capacity_capped->Value(), 1);
  for (const std::string url : {"javascript:alert(document.domain)", "ws://sfu-3/rtc",
                                "wss://sfu-3.example@evil.example/", "https:///nohost"}) {
    auto c = Open();
    c.Say(proto::Register{Cred("sfu-3"), "sfu-3", url, "eu", 10});
    EXPECT_EQ(CodeOf(c.io->Last()), ErrorCode::kForbidden) << url;
    EXPECT_EQ(fleet.Snapshot()->Find("sfu-3"), nullptr) << url;
  }
}

}  // namespace
}  // namespace vrouter::service
