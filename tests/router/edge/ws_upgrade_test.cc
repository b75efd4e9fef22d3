#include "router/edge/ws_upgrade.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "router/edge/ws_phase.h"

namespace vrouter::edge {
namespace {

// RFC 6455 1.3's example key and its accept value.
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

UpgradeRequest Valid() {
  return {.method = "GET",
          .http_version = 11,
          .target = "/v1/client",
          .host = "router.example",
          .connection = "keep-alive, Upgrade",
          .upgrade = "websocket",
          .version = "13",
          .key = kKey,
          .subprotocols = "vrouter.v1",
          .origin = ""};
}

UpgradeRefusal RefusalOf(const UpgradeRequest& r) {
  const UpgradeCheck check = CheckUpgrade(r);
  EXPECT_TRUE(std::holds_alternative<UpgradeRefusal>(check));
  return std::holds_alternative<UpgradeRefusal>(check) ? std::get<UpgradeRefusal>(check)
                                                       : UpgradeRefusal::kUnknownPath;
}

TEST(WsUpgradeTest, AcceptsAClientAndAVideoServer) {
  auto check = CheckUpgrade(Valid());
  ASSERT_TRUE(std::holds_alternative<UpgradeAccepted>(check));
  const auto& client = std::get<UpgradeAccepted>(check);
  EXPECT_EQ(client.peer, WsPeer::kClient);
  EXPECT_EQ(client.accept_key, kAccept);
  EXPECT_EQ(client.subprotocol, "vrouter.v1");

  UpgradeRequest video = Valid();
  video.target = "/v1/video-server?region=eu";
  video.subprotocols = "x, vrouter.video.v1";
  check = CheckUpgrade(video);
  ASSERT_TRUE(std::holds_alternative<UpgradeAccepted>(check));
  EXPECT_EQ(std::get<UpgradeAccepted>(check).peer, WsPeer::kVideoServer);
  EXPECT_EQ(std::get<UpgradeAccepted>(check).subprotocol, "vrouter.video.v1");
}

TEST(WsUpgradeTest, NoOfferIsAcceptedWithoutEchoingASubprotocol) {
  UpgradeRequest r = Valid();
  r.subprotocols = std::nullopt;
  const auto check = CheckUpgrade(r);
  ASSERT_TRUE(std::holds_alternative<UpgradeAccepted>(check));
  EXPECT_TRUE(std::get<UpgradeAccepted>(check).subprotocol.empty());
  EXPECT_EQ(EncodeAccepted(std::get<UpgradeAccepted>(check)).find("Sec-WebSocket-Protocol"),
            std::string::npos);
}

// PROTOCOL.md 2.2: a Sec-WebSocket-Protocol header that does not list vrouter.v1 gets 400, and an
// empty one lists nothing (RFC 6455 4.1: the header, when sent, names at least one protocol;
// browsers never send it empty). Only an absent header means "no subprotocol".
TEST(WsUpgradeTest, AnEmptyOfferListsNoProtocol) {
  for (std::string_view blank : {"", " ", "\t", " , "}) {
    UpgradeRequest r = Valid();
    r.subprotocols = blank;
    EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kNoClientSubprotocol) << "'" << blank << "'";
    r.target = "/v1/video-server";
    EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kNoVideoSubprotocol) << "'" << blank << "'";
  }
  UpgradeRequest r = Valid();
  r.subprotocols = "vrouter.v1,";  // an empty list element is allowed (RFC 7230 7)
  EXPECT_TRUE(std::holds_alternative<UpgradeAccepted>(CheckUpgrade(r)));
}

// One upgrade and the replica's state around it, each of which a defect below can break.
struct Attempt {
  UpgradeRequest request = Valid();
  std::vector<std::string> allowed = {"https://app.example"};
  bool full_or_draining = false;
  bool address_has_room = true;
  int slots_taken = 0;

  UpgradeCheck Check() {
    const UpgradeAdmission admission{
        .full_or_draining = full_or_draining,
        .allowed_origins = allowed,
        .take_address_slot =
            [this] {
              if (!address_has_room) return false;
              ++slots_taken;
              return true;
            },
    };
    return CheckUpgrade(request, admission);
  }
};

struct Defect {
  UpgradeRefusal refusal;  // what the defect alone gets (on /v1/client)
  std::function<void(Attempt&)> apply;
};

// PROTOCOL.md 2.2's table, row by row, in the order the router decides them.
const std::vector<Defect>& TableInOrder() {
  static const std::vector<Defect> table = {
      {UpgradeRefusal::kUnknownPath, [](Attempt& a) { a.request.target = "/v2/client"; }},
      {UpgradeRefusal::kNotWebSocket, [](Attempt& a) { a.request.upgrade = "h2c"; }},
      {UpgradeRefusal::kMissingHost, [](Attempt& a) { a.request.host = ""; }},
      {UpgradeRefusal::kUnsupportedVersion, [](Attempt& a) { a.request.version = "12"; }},
      {UpgradeRefusal::kBadKey, [](Attempt& a) { a.request.key = "not-a-key"; }},
      {UpgradeRefusal::kNoClientSubprotocol, [](Attempt& a) { a.request.subprotocols = "chat"; }},
      {UpgradeRefusal::kOriginNotAllowed,
       [](Attempt& a) { a.request.origin = "https://evil.example"; }},
      {UpgradeRefusal::kFullOrDraining, [](Attempt& a) { a.full_or_draining = true; }},
      {UpgradeRefusal::kTooManyFromAddress, [](Attempt& a) { a.address_has_room = false; }},
  };
  return table;
}

TEST(WsUpgradeTest, EveryPairOfRefusalsIsAnsweredInTheTablesOrder) {
  const auto& table = TableInOrder();
  for (std::size_t i = 0; i < table.size(); ++i) {
    Attempt alone;
    table[i].apply(alone);
    const UpgradeCheck check = alone.Check();
    ASSERT_TRUE(std::holds_alternative<UpgradeRefusal>(check)) << i;
    EXPECT_EQ(std::get<UpgradeRefusal>(check), table[i].refusal) << i;
    EXPECT_EQ(alone.slots_taken, 0) << "a refused upgrade holds no address slot, row " << i;
    if (i > 0) {
      EXPECT_LT(table[i - 1].refusal, table[i].refusal) << "UpgradeRefusal is in decision order";
    }
    for (std::size_t j = i + 1; j < table.size(); ++j) {
      for (const bool earlier_first : {true, false}) {
        Attempt both;
        (earlier_first ? table[i] : table[j]).apply(both);
        (earlier_first ? table[j] : table[i]).apply(both);
        const UpgradeCheck answer = both.Check();
        ASSERT_TRUE(std::holds_alternative<UpgradeRefusal>(answer)) << i << "," << j;
        EXPECT_EQ(std::get<UpgradeRefusal>(answer), table[i].refusal)
            << "rows " << i << " and " << j << ": " << HttpStatus(table[i].refusal)
            << " must win over " << HttpStatus(table[j].refusal);
        EXPECT_EQ(both.slots_taken, 0);
      }
    }
  }
  Attempt fine;
  EXPECT_TRUE(std::holds_alternative<UpgradeAccepted>(fine.Check()));
  EXPECT_EQ(fine.slots_taken, 1);
}

// The same order on /v1/video-server: a video server is anyone until it registers, so Origin and
// the per-address limit apply there too; only the subprotocol it must offer differs.
TEST(WsUpgradeTest, VideoServersGetTheSameOrder) {
  const auto& table = TableInOrder();
  const auto on_video = [](UpgradeRefusal r) {
    return r == UpgradeRefusal::kNoClientSubprotocol ? UpgradeRefusal::kNoVideoSubprotocol : r;
  };
  for (std::size_t i = 0; i < table.size(); ++i) {
    for (std::size_t j = i; j < table.size(); ++j) {
      Attempt both;
      both.request.target = "/v1/video-server";
      both.request.subprotocols = "vrouter.video.v1";
      table[j].apply(both);
      table[i].apply(both);
      const UpgradeCheck answer = both.Check();
      ASSERT_TRUE(std::holds_alternative<UpgradeRefusal>(answer)) << i << "," << j;
      EXPECT_EQ(std::get<UpgradeRefusal>(answer), on_video(table[i].refusal)) << i << "," << j;
      EXPECT_EQ(both.slots_taken, 0);
    }
  }
  Attempt fine;
  fine.request.target = "/v1/video-server";
  fine.request.subprotocols = "vrouter.video.v1";
  EXPECT_TRUE(std::holds_alternative<UpgradeAccepted>(fine.Check()));
  EXPECT_EQ(fine.slots_taken, 1);
}

TEST(WsUpgradeTest, EachRuleRefusesInOrder) {
  UpgradeRequest r = Valid();
  r.target = "/v2/client";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kUnknownPath);

  for (auto broken : {+[](UpgradeRequest& q) { q.method = "POST"; },
                      +[](UpgradeRequest& q) { q.http_version = 10; },
                      +[](UpgradeRequest& q) { q.connection = "keep-alive"; },
                      +[](UpgradeRequest& q) { q.upgrade = "h2c"; }}) {
    r = Valid();
    broken(r);
    EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kNotWebSocket);
  }
  r = Valid();
  r.host = "";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kMissingHost);
  r = Valid();
  r.version = "8";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kUnsupportedVersion);
  r = Valid();
  r.key = "short";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kBadKey);
  r = Valid();
  r.subprotocols = "vrouter.v2, chat";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kNoClientSubprotocol);
  r.target = "/v1/video-server";
  r.subprotocols = "vrouter.v1";  // the client's protocol on the video servers' path
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kNoVideoSubprotocol);
  // The first rule broken is the one answered: an unknown path wins over everything else.
  r = {};
  r.target = "/";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kUnknownPath);
}

TEST(WsUpgradeTest, TokensAreCaseInsensitiveExceptSubprotocols) {
  UpgradeRequest r = Valid();
  r.connection = "UPGRADE";
  r.upgrade = "WebSocket";
  EXPECT_TRUE(std::holds_alternative<UpgradeAccepted>(CheckUpgrade(r)));
  r.subprotocols = "VROUTER.V1";
  EXPECT_EQ(RefusalOf(r), UpgradeRefusal::kNoClientSubprotocol);
  EXPECT_TRUE(HasToken(" a ,\tb ", "b", false));
  EXPECT_FALSE(HasToken("ab", "a", false));
  EXPECT_FALSE(HasToken("", "a", true));
}

TEST(WsUpgradeTest, AcceptedAnswerIsA101WithTheKey) {
  const auto answer = EncodeAccepted({WsPeer::kClient, std::string(kAccept), "vrouter.v1"});
  EXPECT_EQ(answer,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Server: vrouter\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: vrouter.v1\r\n\r\n");
}

TEST(WsUpgradeTest, RefusalsCarryStatusHeadersAndBody) {
  const std::string full = EncodeRefusal(UpgradeRefusal::kFullOrDraining, 7);
  EXPECT_TRUE(full.starts_with("HTTP/1.1 503 Service Unavailable\r\n")) << full;
  EXPECT_NE(full.find("\r\nRetry-After: 7\r\n"), std::string::npos);
  EXPECT_NE(full.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_TRUE(full.ends_with("\r\n\r\nreplica full or draining; retry later\n"));

  const std::string version = EncodeRefusal(UpgradeRefusal::kUnsupportedVersion, 7);
  EXPECT_TRUE(version.starts_with("HTTP/1.1 426 "));
  EXPECT_NE(version.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_EQ(version.find("Retry-After"), std::string::npos);

  // Every refusal: a status, a body that ends in a newline, a Content-Length that matches it.
  for (int i = 0; i <= static_cast<int>(UpgradeRefusal::kTooManyFromAddress); ++i) {
    const auto refusal = static_cast<UpgradeRefusal>(i);
    const std::string text = EncodeRefusal(refusal, 3);
    const std::string_view body = RefusalBody(refusal);
    EXPECT_GE(HttpStatus(refusal), 400);
    EXPECT_TRUE(body.ends_with('\n')) << i;
    EXPECT_NE(text.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
              std::string::npos);
    EXPECT_TRUE(text.ends_with(body));
    EXPECT_EQ(IsRetryLater(refusal), HttpStatus(refusal) == 503 || HttpStatus(refusal) == 429);
  }
}

TEST(WsPhaseTest, TheHappyPathsAreAllowed) {
  using enum WsPhase;
  for (auto [from, to] : {std::pair{kHandshake, kOpen},
                          {kOpen, kClosing},
                          {kClosing, kCloseSent},
                          {kCloseSent, kTornDown},
                          {kTornDown, kFinished},
                          {kHandshake, kRefused},
                          {kRefused, kAborted},
                          {kAborted, kFinished},
                          {kOpen, kFinished}}) {
    EXPECT_TRUE(IsAllowedTransition(from, to)) << WsPhaseName(from) << " -> " << WsPhaseName(to);
  }
}

TEST(WsPhaseTest, NothingGoesBackAndNothingLeavesFinished) {
  using enum WsPhase;
  const WsPhase all[] = {kHandshake, kRefused,  kOpen,    kClosing,
                         kCloseSent, kTornDown, kAborted, kFinished};
  for (WsPhase from : all) {
    for (WsPhase to : all) {
      if (to <= from) {
        EXPECT_FALSE(IsAllowedTransition(from, to))
            << WsPhaseName(from) << " -> " << WsPhaseName(to);
      }
    }
    EXPECT_FALSE(IsAllowedTransition(kFinished, from));
  }
  // Frames are not sent into a refusal, and a refused or opened session never re-opens.
  EXPECT_FALSE(IsAllowedTransition(kRefused, kOpen));
  EXPECT_FALSE(IsAllowedTransition(kHandshake, kClosing));
  EXPECT_FALSE(IsAllowedTransition(kOpen, kCloseSent));
}

}  // namespace
}  // namespace vrouter::edge
