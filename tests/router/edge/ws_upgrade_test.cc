#include "router/edge/ws_upgrade.h"

#include <gtest/gtest.h>

#include <string>

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
          .subprotocols = "vrouter.v1"};
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
  r.subprotocols = "";
  const auto check = CheckUpgrade(r);
  ASSERT_TRUE(std::holds_alternative<UpgradeAccepted>(check));
  EXPECT_TRUE(std::get<UpgradeAccepted>(check).subprotocol.empty());
  EXPECT_EQ(EncodeAccepted(std::get<UpgradeAccepted>(check)).find("Sec-WebSocket-Protocol"),
            std::string::npos);
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
