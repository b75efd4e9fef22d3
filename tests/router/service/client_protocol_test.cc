// ClientProtocol without sockets: a fake transport records what the router would send.
#include "router/service/client_protocol.h"

#include <gtest/gtest.h>

#include "proto/codec.h"
#include "router/edge/token.h"
#include "tests/support/fake_session.h"
#include "tests/support/service_harness.h"

namespace vrouter::service {
namespace {

using namespace std::chrono_literals;
using proto::ErrorCode;
constexpr std::int64_t kNow = vrouter::testing::ServiceHarness::kUnixNow;

class FakeSession : public vrouter::testing::FakeSession {
 public:
  proto::ServerMessage Last() {
    EXPECT_FALSE(sent.empty());
    auto r = proto::DecodeServerMessage(sent.back());
    return std::get<proto::ServerMessage>(r);
  }
};

struct Fixture : ::testing::Test, vrouter::testing::ServiceHarness {
  Fixture() {
    // Not monitored: these tests are about the protocol, not about health reports.
    fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}, {"b", "wss://b/", "eu", 10, false}});
    store.SetChangeListener([this](const assign::AssignmentChange& c) {
      PublishChange(c, *fleet.Snapshot(), hub, metrics);
    });
  }

  struct Client {
    std::shared_ptr<FakeSession> session = std::make_shared<FakeSession>();
    std::unique_ptr<ClientProtocol> protocol;
    void Say(const proto::ClientMessage& m) { protocol->OnText(proto::Encode(m)); }
  };
  std::uint64_t next_id = 1;
  Client Connect(const std::string& user = "", const std::string& space = "s1",
                 const std::string& address = "") {
    Client c;
    const auto id = next_id++;
    c.protocol = std::make_unique<ClientProtocol>(service, *c.session, c.session, id, "", address);
    sessions.Add(id, c.session);
    if (!user.empty()) c.Say(proto::Hello{1, edge::MintToken(user, space, "k", kNow, kNow + 60)});
    return c;
  }
  static ErrorCode ErrorOf(const proto::ServerMessage& m) {
    EXPECT_TRUE(std::holds_alternative<proto::Error>(m)) << proto::Encode(m);
    return std::holds_alternative<proto::Error>(m) ? std::get<proto::Error>(m).code
                                                   : ErrorCode::kInternal;
  }
};

TEST_F(Fixture, RequestsBeforeHelloAreRefused) {
  auto c = Connect();
  c.Say(proto::Join{5});
  auto m = c.session->Last();
  EXPECT_EQ(ErrorOf(m), ErrorCode::kNotAuthenticated);
  EXPECT_EQ(std::get<proto::Error>(m).id, 5u);
}

TEST_F(Fixture, BadTokenGetsTypedErrorThenClose) {
  auto c = Connect();
  c.Say(proto::Hello{1, edge::MintToken("alice", "s1", "wrong", kNow, kNow + 60)});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kTokenBadSignature);
  EXPECT_EQ(c.session->closed, proto::close_code::kAuthFailed);
}

TEST_F(Fixture, NoSecretConfiguredIsTypedNotFatal) {
  service.client_keys.Set({});
  auto c = Connect("alice");
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kAuthNotConfigured);
}

TEST_F(Fixture, JoinIsIdempotentKeepsSpacesTogetherAndSpreadsLoad) {
  auto alice = Connect("alice");
  alice.Say(proto::Join{2});
  auto first = std::get<proto::Assigned>(alice.session->Last());
  alice.Say(proto::Join{3});
  auto again = std::get<proto::Assigned>(alice.session->Last());
  EXPECT_EQ(first.server, again.server);
  EXPECT_EQ(first.epoch, again.epoch);
  // Same space: kept together on alice's server (it has headroom).
  auto bob = Connect("bob");
  bob.Say(proto::Join{2});
  EXPECT_EQ(std::get<proto::Assigned>(bob.session->Last()).server.id, first.server.id);
  // Another space: power of two choices among two servers always takes the emptier one.
  auto carol = Connect("carol", "s2");
  carol.Say(proto::Join{2});
  EXPECT_NE(std::get<proto::Assigned>(carol.session->Last()).server.id, first.server.id);
}

TEST_F(Fixture, NoVideoServerIsRetryableError) {
  ASSERT_TRUE(fleet_control.Drain("a"));
  ASSERT_TRUE(fleet_control.Drain("b"));
  auto c = Connect("alice");
  c.Say(proto::Join{2});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kNoVideoServer);
}

TEST_F(Fixture, ResumeKeepsServerAndEpochAcrossReconnect) {
  auto first = Connect("alice");
  first.Say(proto::Join{2});
  const auto assigned = std::get<proto::Assigned>(first.session->Last());
  first.protocol->OnClosed();  // connection lost: detached, not removed
  EXPECT_EQ(store.Get("alice")->session, 0u);
  auto second = Connect("alice");
  second.Say(proto::Resume{3, assigned.server.id, assigned.epoch});
  const auto resumed = std::get<proto::Assigned>(second.session->Last());
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.server, assigned.server);
  EXPECT_EQ(resumed.epoch, assigned.epoch);
}

TEST_F(Fixture, ResumeOnAnotherReplicaKeepsServerWithHigherEpoch) {
  // The assignment is unknown here (e.g. the replica that held it restarted).
  auto c = Connect("alice");
  c.Say(proto::Resume{3, "b", 900});
  const auto a = std::get<proto::Assigned>(c.session->Last());
  EXPECT_TRUE(a.resumed);
  EXPECT_EQ(a.server.id, "b");
  EXPECT_GT(a.epoch, 900u);
}

TEST_F(Fixture, ResumeCannotPushEpochsOutOfTheSafeRange) {
  auto c = Connect("alice");
  c.Say(proto::Resume{3, "b", proto::kMaxSafeInteger});
  const auto a = std::get<proto::Assigned>(c.session->Last());
  EXPECT_TRUE(a.resumed);
  EXPECT_LT(a.epoch, proto::kMaxSafeInteger);
  auto bob = Connect("bob");
  bob.Say(proto::Join{2});
  EXPECT_LT(std::get<proto::Assigned>(bob.session->Last()).epoch, proto::kMaxSafeInteger);
}

TEST_F(Fixture, ResumeToVanishedServerMovesTheUser) {
  auto c = Connect("alice");
  c.Say(proto::Resume{3, "gone", 4});
  const auto a = std::get<proto::Assigned>(c.session->Last());
  EXPECT_FALSE(a.resumed);
  EXPECT_NE(a.server.id, "gone");
}

TEST_F(Fixture, SecondHelloReplacesOldSessionWithoutLosingAssignment) {
  auto old = Connect("alice");
  old.Say(proto::Join{2});
  const auto epoch = std::get<proto::Assigned>(old.session->Last()).epoch;
  auto fresh = Connect("alice");
  EXPECT_EQ(old.session->closed_async, proto::close_code::kSessionReplaced);
  fresh.Say(proto::Join{2});
  EXPECT_EQ(std::get<proto::Assigned>(fresh.session->Last()).epoch, epoch);
  old.protocol->OnClosed();  // the old session's close must not detach the new owner
  EXPECT_NE(store.Get("alice")->session, 0u);
}

TEST_F(Fixture, WatchersGetMovedAndLeft) {
  auto alice = Connect("alice");
  alice.Say(proto::Watch{2, {"bob"}});
  auto wr = std::get<proto::WatchResult>(alice.session->Last());
  ASSERT_EQ(wr.results.size(), 1u);
  EXPECT_FALSE(wr.results[0].server.has_value());
  auto bob = Connect("bob");
  bob.Say(proto::Join{2});
  ASSERT_EQ(alice.session->pushed.size(), 1u);
  auto moved = std::get<proto::Moved>(
      std::get<proto::ServerMessage>(proto::DecodeServerMessage(alice.session->pushed[0])));
  EXPECT_EQ(moved.user, "bob");
  EXPECT_FALSE(moved.from.has_value());
  bob.Say(proto::Leave{3});
  EXPECT_TRUE(std::holds_alternative<proto::Ack>(bob.session->Last()));
  ASSERT_EQ(alice.session->pushed.size(), 2u);
  EXPECT_NE(alice.session->pushed[1].find(R"("type":"left")"), std::string::npos);
  EXPECT_EQ(hub.size(), 1u);
  alice.protocol->OnClosed();
  EXPECT_EQ(hub.size(), 0u);
}

TEST_F(Fixture, DisconnectedUserLeavesAfterGrace) {
  auto alice = Connect("alice");
  alice.Say(proto::Watch{2, {"bob"}});
  auto bob = Connect("bob");
  bob.Say(proto::Join{2});
  bob.protocol->OnClosed();
  EXPECT_EQ(store.ExpireDetached(now + 29s), 0u);
  EXPECT_EQ(store.ExpireDetached(now + 30s), 1u);
  EXPECT_NE(alice.session->pushed.back().find(R"("type":"left")"), std::string::npos);
}

TEST_F(Fixture, BatchAndWatchLimits) {
  service.limits.max_batch = 3;
  service.limits.max_watches = 4;
  auto c = Connect("alice");
  c.Say(proto::Lookup{2, {"a", "b", "c", "d"}});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kBatchTooLarge);
  c.Say(proto::Watch{3, {"a", "b", "c"}});
  EXPECT_TRUE(std::holds_alternative<proto::WatchResult>(c.session->Last()));
  c.Say(proto::Watch{4, {"c", "d"}});  // c already watched: 4 in all, allowed
  EXPECT_TRUE(std::holds_alternative<proto::WatchResult>(c.session->Last()));
  c.Say(proto::Watch{5, {"e"}});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kTooManyWatches);
  c.Say(proto::Unwatch{6, {"a"}});
  c.Say(proto::Watch{7, {"e"}});
  EXPECT_TRUE(std::holds_alternative<proto::WatchResult>(c.session->Last()));
}

TEST_F(Fixture, ReportsAboutTheServerOfAWatchedUserAreAccepted) {
  auto alice = Connect("alice");
  alice.Say(proto::Join{1});
  const std::string mine = std::get<proto::Assigned>(alice.session->Last()).server.id;
  const std::string other = mine == "a" ? "b" : "a";
  // Someone whose media is on the other server: alice's viewer connection goes there.
  std::optional<Client> peer;
  std::string peer_user;
  for (int i = 0; i < 40 && !peer; ++i) {
    auto c = Connect("peer-" + std::to_string(i));
    c.Say(proto::Join{1});
    if (std::get<proto::Assigned>(c.session->Last()).server.id == other) {
      peer_user = "peer-" + std::to_string(i);
      peer.emplace(std::move(c));
    }
  }
  ASSERT_TRUE(peer.has_value()) << "no user was placed on " << other;
  alice.Say(proto::Report{2, other, proto::FailureReason::kNoMedia, ""});
  EXPECT_EQ(ErrorOf(alice.session->Last()), ErrorCode::kForbidden) << "not watching anyone there";
  alice.Say(proto::Watch{3, {peer_user}});
  alice.Say(proto::Report{4, other, proto::FailureReason::kNoMedia, ""});
  EXPECT_TRUE(std::holds_alternative<proto::Ack>(alice.session->Last()));
  EXPECT_EQ(fleet_control.View().servers[other == "a" ? 0 : 1].failure_reporters, 1u);
  // A user of another space, placed elsewhere, gets no say over that server by watching someone
  // there (watches cross spaces).
  std::optional<Client> outsider;
  for (int i = 0; i < 40 && !outsider; ++i) {
    auto c = Connect("outsider-" + std::to_string(i), "s2");
    c.Say(proto::Join{1});
    if (std::get<proto::Assigned>(c.session->Last()).server.id != other)
      outsider.emplace(std::move(c));
  }
  ASSERT_TRUE(outsider.has_value()) << "every user of s2 was placed on " << other;
  outsider->Say(proto::Watch{2, {peer_user}});
  outsider->Say(proto::Report{3, other, proto::FailureReason::kNoMedia, ""});
  EXPECT_EQ(ErrorOf(outsider->session->Last()), ErrorCode::kForbidden) << "watched across spaces";
  alice.Say(proto::Unwatch{5, {peer_user}});
  alice.Say(proto::Report{6, other, proto::FailureReason::kNoMedia, ""});
  EXPECT_EQ(ErrorOf(alice.session->Last()), ErrorCode::kForbidden) << "no longer watching";
}

TEST_F(Fixture, ReportsAndLeaveValidateState) {
  auto c = Connect("alice");
  c.Say(proto::Report{2, "nope", proto::FailureReason::kNoMedia, ""});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kUnknownServer);
  // Not joined: a client speaks only for its own server.
  c.Say(proto::Report{3, "a", proto::FailureReason::kNoMedia, ""});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kForbidden);
  c.Say(proto::Join{6});
  const std::string mine = std::get<proto::Assigned>(c.session->Last()).server.id;
  const std::string other = mine == "a" ? "b" : "a";
  c.Say(proto::Report{7, other, proto::FailureReason::kNoMedia, ""});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kForbidden);
  c.Say(proto::Report{3, mine, proto::FailureReason::kNoMedia, ""});
  EXPECT_TRUE(std::holds_alternative<proto::Ack>(c.session->Last()));
  EXPECT_EQ(metrics.media_failure_reports[0]->Value(), 1);
  EXPECT_EQ(fleet_control.View().servers[mine == "a" ? 0 : 1].failure_reporters, 1u);
  c.Say(proto::Leave{8});
  EXPECT_TRUE(std::holds_alternative<proto::Ack>(c.session->Last()));
  c.Say(proto::Leave{4});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kNotJoined);
  c.Say(proto::Hello{5, "x"});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kAlreadyAuthenticated);
}

TEST_F(Fixture, DrainingRefusesJoins) {
  auto c = Connect("alice");
  service.draining = true;
  c.Say(proto::Join{2});
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kShuttingDown);
}

// Budgets hold per user and per address across connections (issue 16): reconnecting gets no
// fresh budget.
TEST_F(Fixture, AReconnectingUserKeepsItsSpentBudget) {
  service.limits.rate_limits.by_type[proto::kClientTypeIndex<proto::Lookup>] = {1, 2};
  auto first = Connect("alice");
  first.Say(proto::Lookup{2, {"bob"}});
  first.Say(proto::Lookup{3, {"bob"}});
  EXPECT_TRUE(std::holds_alternative<proto::LookupResult>(first.session->Last()));
  first.Say(proto::Lookup{4, {"bob"}});
  EXPECT_EQ(ErrorOf(first.session->Last()), ErrorCode::kRateLimited);
  first.protocol->OnClosed();
  auto second = Connect("alice");
  second.Say(proto::Lookup{2, {"bob"}});
  EXPECT_EQ(ErrorOf(second.session->Last()), ErrorCode::kRateLimited);
  // Another user is not affected; the bucket refills with time.
  auto bob = Connect("bob");
  bob.Say(proto::Lookup{2, {"alice"}});
  EXPECT_TRUE(std::holds_alternative<proto::LookupResult>(bob.session->Last()));
  now += 1s;
  second.Say(proto::Lookup{3, {"bob"}});
  EXPECT_TRUE(std::holds_alternative<proto::LookupResult>(second.session->Last()));
}

TEST_F(Fixture, HellosAreBudgetedPerUserAcrossConnections) {
  // The default: 1/s, burst 3.
  std::vector<Client> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect("alice"));
    EXPECT_TRUE(std::holds_alternative<proto::Welcome>(clients.back().session->Last()));
  }
  auto fourth = Connect("alice");
  EXPECT_EQ(ErrorOf(fourth.session->Last()), ErrorCode::kRateLimited);
  EXPECT_FALSE(fourth.protocol->authenticated());
  EXPECT_FALSE(fourth.session->closed);  // it may try again on the same connection
  now += 1s;
  fourth.Say(proto::Hello{2, edge::MintToken("alice", "s1", "k", kNow, kNow + 60)});
  EXPECT_TRUE(std::holds_alternative<proto::Welcome>(fourth.session->Last()));
  EXPECT_EQ(fourth.session->authenticated, 1);
}

TEST_F(Fixture, HellosAreBudgetedPerAddress) {
  service.limits.hellos_per_ip = {1, 2};
  auto a = Connect("u1", "s1", "10.0.0.1");
  auto b = Connect("u2", "s1", "10.0.0.1");
  EXPECT_TRUE(std::holds_alternative<proto::Welcome>(b.session->Last()));
  auto c = Connect("u3", "s1", "10.0.0.1");  // another user, same address
  EXPECT_EQ(ErrorOf(c.session->Last()), ErrorCode::kRateLimited);
  auto d = Connect("u4", "s1", "10.0.0.2");
  EXPECT_TRUE(std::holds_alternative<proto::Welcome>(d.session->Last()));
}

TEST_F(Fixture, ARejoinAfterLeaveIsAReturnNotANewPlacement) {
  auto c = Connect("alice");
  c.Say(proto::Join{2});
  const auto first = std::get<proto::Assigned>(c.session->Last());
  const auto server_index = first.server.id == "a" ? 0 : 1;
  EXPECT_EQ(fleet_control.View().servers[server_index].new_this_interval, 1u);
  for (int i = 0; i < 3; ++i) {
    c.Say(proto::Leave{3});
    EXPECT_TRUE(std::holds_alternative<proto::Ack>(c.session->Last()));
    now += 100ms;  // within the join/leave budgets
    c.Say(proto::Join{4});
    EXPECT_EQ(std::get<proto::Assigned>(c.session->Last()).server.id, first.server.id);
  }
  // Only the first join took a new user's place in the server's admission budget.
  EXPECT_EQ(fleet_control.View().servers[0].new_this_interval +
                fleet_control.View().servers[1].new_this_interval,
            1u);
  // Past the window a join is a new placement again.
  c.Say(proto::Leave{5});
  now += service.rejoin_window + 1s;
  c.Say(proto::Join{6});
  ASSERT_TRUE(std::holds_alternative<proto::Assigned>(c.session->Last()));
}

// Presence is private to a space unless the deployment says otherwise (issue 16).
TEST_F(Fixture, LookupsAndWatchesSeeOnlyTheCallersSpace) {
  auto alice = Connect("alice", "s1");
  alice.Say(proto::Join{2});
  const auto placed = std::get<proto::Assigned>(alice.session->Last());
  auto bob = Connect("bob", "s1");
  auto eve = Connect("eve", "s2");
  auto present = [](const proto::ServerMessage& m) {
    const auto* r = std::get_if<proto::LookupResult>(&m);
    return r != nullptr && r->results.at(0).server.has_value();
  };
  bob.Say(proto::Lookup{3, {"alice"}});
  EXPECT_TRUE(present(bob.session->Last()));
  eve.Say(proto::Lookup{3, {"alice"}});
  EXPECT_FALSE(present(eve.session->Last())) << "another space's user was found";
  bob.Say(proto::Watch{4, {"alice"}});
  eve.Say(proto::Watch{4, {"alice"}});
  const auto eve_last = eve.session->Last();
  const auto* watched = std::get_if<proto::WatchResult>(&eve_last);
  ASSERT_NE(watched, nullptr);
  EXPECT_FALSE(watched->results.at(0).server.has_value());
  // alice goes to s2 (same server): s1's watchers hear her leave, s2's hear her arrive.
  alice.protocol->OnClosed();
  auto alice2 = Connect("alice", "s2");
  alice2.Say(proto::Join{2});
  ASSERT_EQ(std::get<proto::Assigned>(alice2.session->Last()).server, placed.server);
  ASSERT_FALSE(bob.session->pushed.empty());
  EXPECT_NE(bob.session->pushed.back().find(R"("type":"left")"), std::string::npos);
  ASSERT_FALSE(eve.session->pushed.empty());
  EXPECT_NE(eve.session->pushed.back().find(R"("type":"moved")"), std::string::npos);
  const std::size_t bob_pushes = bob.session->pushed.size();
  alice2.Say(proto::Leave{3});
  EXPECT_EQ(bob.session->pushed.size(), bob_pushes) << "s1 heard a change in s2";
  EXPECT_NE(eve.session->pushed.back().find(R"("type":"left")"), std::string::npos);
}

TEST_F(Fixture, LookupsAcrossSpacesWhenTheDeploymentAllowsThem) {
  service.lookups_across_spaces = true;
  auto alice = Connect("alice", "s1");
  alice.Say(proto::Join{2});
  auto eve = Connect("eve", "s2");
  eve.Say(proto::Lookup{3, {"alice"}});
  const auto eve_last = eve.session->Last();
  const auto* r = std::get_if<proto::LookupResult>(&eve_last);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->results.at(0).server.has_value());
  eve.Say(proto::Watch{4, {"alice"}});
  alice.Say(proto::Leave{3});
  ASSERT_FALSE(eve.session->pushed.empty());
  EXPECT_NE(eve.session->pushed.back().find(R"("type":"left")"), std::string::npos);
}

}  // namespace
}  // namespace vrouter::service
