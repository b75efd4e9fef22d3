#include "router/core/token.h"

#include <gtest/gtest.h>

namespace vrouter::core {
namespace {

using proto::ErrorCode;
constexpr std::int64_t kNow = 1'800'000'000;

ErrorCode ErrorOf(const std::variant<TokenClaims, TokenError>& r) {
  EXPECT_TRUE(std::holds_alternative<TokenError>(r));
  return std::holds_alternative<TokenError>(r) ? std::get<TokenError>(r).code
                                               : ErrorCode::kInternal;
}

TEST(TokenTest, MintedTokenVerifies) {
  const auto token = MintToken("alice", "space-1", "k", kNow, kNow + 60);
  auto r = VerifyToken(token, "k", kNow, 0);
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(r));
  EXPECT_EQ(std::get<TokenClaims>(r).user, "alice");
  EXPECT_EQ(std::get<TokenClaims>(r).space, "space-1");
  EXPECT_EQ(std::get<TokenClaims>(r).expires_at, kNow + 60);
}

TEST(TokenTest, DistinguishesEachFailure) {
  const auto token = MintToken("alice", "s", "k", kNow, kNow + 60);
  EXPECT_EQ(ErrorOf(VerifyToken(token, "other-key", kNow, 0)), ErrorCode::kTokenBadSignature);
  EXPECT_EQ(ErrorOf(VerifyToken("garbage", "k", kNow, 0)), ErrorCode::kTokenMalformed);
  EXPECT_EQ(ErrorOf(VerifyToken("", "k", kNow, 0)), ErrorCode::kTokenMalformed);
  EXPECT_EQ(ErrorOf(VerifyToken("a.b.c", "k", kNow, 0)), ErrorCode::kTokenMalformed);
  EXPECT_EQ(ErrorOf(VerifyToken(token, "", kNow, 0)), ErrorCode::kAuthNotConfigured);
  // Tampered payload: signature no longer matches.
  std::string tampered = token;
  tampered[tampered.find('.') + 3] ^= 1;
  const auto code = ErrorOf(VerifyToken(tampered, "k", kNow, 0));
  EXPECT_TRUE(code == ErrorCode::kTokenBadSignature || code == ErrorCode::kTokenMalformed);
  // Unsigned ("alg":"none") tokens are never accepted.
  EXPECT_NE(ErrorOf(VerifyToken("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "k", kNow, 0)),
            ErrorCode::kInternal);
}

TEST(TokenTest, ExpiryHonoursLeeway) {
  const auto token = MintToken("alice", "s", "k", kNow - 100, kNow - 10);
  EXPECT_EQ(ErrorOf(VerifyToken(token, "k", kNow, 0)), ErrorCode::kTokenExpired);
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(VerifyToken(token, "k", kNow, 30)));
}

TEST(TokenTest, RejectsBadUserOrSpaceClaims) {
  EXPECT_EQ(ErrorOf(VerifyToken(MintToken("", "s", "k", kNow, kNow + 60), "k", kNow, 0)),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ErrorOf(VerifyToken(MintToken("a", std::string(200, 's'), "k", kNow, kNow + 60), "k",
                                kNow, 0)),
            ErrorCode::kTokenInvalidClaims);
}

}  // namespace
}  // namespace vrouter::core
