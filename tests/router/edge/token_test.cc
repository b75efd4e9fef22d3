#include "router/edge/token.h"

#include <gtest/gtest.h>

#include "tests/support/ec_keys.h"

namespace vrouter::edge {
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

// ---- ES256, kid, rotation ----

TokenKeyRing Ring(std::vector<VerificationKey> keys) {
  auto ring = TokenKeyRing::Make(std::move(keys));
  if (auto* err = ring.error_message()) ADD_FAILURE() << *err;
  return std::holds_alternative<TokenKeyRing>(ring) ? std::get<TokenKeyRing>(std::move(ring))
                                                    : TokenKeyRing{};
}

std::string EsToken(const testing::PemKeyPair& k, std::string kid, std::string user = "alice") {
  return MintToken(user, "s", SigningKey{std::move(kid), TokenAlg::kEs256, k.private_pem}, kNow,
                   kNow + 60);
}

TEST(TokenKeysTest, Es256TokenVerifiesWithItsPublicKeyChosenByKid) {
  const auto k = testing::MakeP256KeyPair();
  const auto ring = Ring({{"k1", TokenAlg::kEs256, k.public_pem}, {"", TokenAlg::kHs256, "hs"}});
  auto r = VerifyToken(EsToken(k, "k1"), ring, kNow, 0);
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(r)) << std::get<TokenError>(r).message;
  EXPECT_EQ(std::get<TokenClaims>(r).user, "alice");
  // The kid-less HS256 secret of the same ring still works.
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(
      VerifyToken(MintToken("bob", "s", "hs", kNow, kNow + 60), ring, kNow, 0)));
}

TEST(TokenKeysTest, TokenFromAnotherImplementationVerifies) {
  // Signed by Node.js crypto (ECDSA P-256, IEEE P1363 signature encoding as JWS requires), not by
  // libjwt: the router accepts what a standard issuer produces.
  const std::string public_pem =
      "-----BEGIN PUBLIC KEY-----\n"
      "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3lwaw1C+4cR4xFXMaagbkGgINiQf\n"
      "0KukAK2qN5c7Us/g60gK8QsuzVBLnMS2ElnUVnGx/cw9N+uhaSzwK0Hv6g==\n"
      "-----END PUBLIC KEY-----\n";
  const std::string token =
      "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Imlzc3Vlci0yMDI2In0."
      "eyJzdWIiOiJhbGljZSIsInNwYWNlIjoic3BhY2UtMSIsImlhdCI6MTgwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ."
      "i2ASZHulQ9swSGTfIIojjlfltrkdhx8BSuKKvEP5bDKaLdVGuOTPdkQdAciwANaYVosPv5qMbedRjW7BLdCq1Q";
  auto r = VerifyToken(token, Ring({{"issuer-2026", TokenAlg::kEs256, public_pem}}), kNow, 0);
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(r)) << std::get<TokenError>(r).message;
  EXPECT_EQ(std::get<TokenClaims>(r).space, "space-1");
}

TEST(TokenKeysTest, RotationAcceptsOldAndNewUntilTheOldKeyIsRetired) {
  const auto old_key = testing::MakeP256KeyPair();
  const auto new_key = testing::MakeP256KeyPair();
  const auto both = Ring({{"2026-10", TokenAlg::kEs256, old_key.public_pem},
                          {"2026-11", TokenAlg::kEs256, new_key.public_pem}});
  EXPECT_TRUE(
      std::holds_alternative<TokenClaims>(VerifyToken(EsToken(old_key, "2026-10"), both, kNow, 0)));
  EXPECT_TRUE(
      std::holds_alternative<TokenClaims>(VerifyToken(EsToken(new_key, "2026-11"), both, kNow, 0)));
  const auto retired = Ring({{"2026-11", TokenAlg::kEs256, new_key.public_pem}});
  auto r = VerifyToken(EsToken(old_key, "2026-10"), retired, kNow, 0);
  EXPECT_EQ(ErrorOf(r), ErrorCode::kTokenBadSignature);
  EXPECT_NE(std::get<TokenError>(r).message.find("'2026-10' is not configured"), std::string::npos);
}

TEST(TokenKeysTest, WrongKeyUnderAKnownKidIsABadSignature) {
  const auto real = testing::MakeP256KeyPair();
  const auto forger = testing::MakeP256KeyPair();
  const auto ring = Ring({{"k1", TokenAlg::kEs256, real.public_pem}});
  EXPECT_EQ(ErrorOf(VerifyToken(EsToken(forger, "k1"), ring, kNow, 0)),
            ErrorCode::kTokenBadSignature);
  // Without a kid, an ES256 token only matches kid-less ES256 keys: there are none.
  EXPECT_EQ(ErrorOf(VerifyToken(EsToken(real, ""), ring, kNow, 0)), ErrorCode::kTokenBadSignature);
}

TEST(TokenKeysTest, PublicKeyIsNeverUsedAsAnHmacSecret) {
  // The classic algorithm confusion: the attacker knows the public key (it is public) and signs
  // an HS256 token with its PEM text as the HMAC secret, naming the ES256 key's kid.
  const auto k = testing::MakeP256KeyPair();
  const auto ring = Ring({{"k1", TokenAlg::kEs256, k.public_pem}});
  const auto forged =
      MintToken("mallory", "s", SigningKey{"k1", TokenAlg::kHs256, k.public_pem}, kNow, kNow + 60);
  ASSERT_FALSE(forged.empty());
  EXPECT_EQ(ErrorOf(VerifyToken(forged, ring, kNow, 0)), ErrorCode::kTokenBadSignature);
  const auto forged_no_kid =
      MintToken("mallory", "s", SigningKey{"", TokenAlg::kHs256, k.public_pem}, kNow, kNow + 60);
  EXPECT_EQ(ErrorOf(VerifyToken(forged_no_kid, ring, kNow, 0)), ErrorCode::kTokenBadSignature);
}

TEST(TokenKeysTest, Es256HonoursExpAndNbfWithLeeway) {
  const auto k = testing::MakeP256KeyPair();
  const auto ring = Ring({{"k1", TokenAlg::kEs256, k.public_pem}});
  const auto expired =
      MintToken("a", "s", SigningKey{"k1", TokenAlg::kEs256, k.private_pem}, kNow - 100, kNow - 10);
  EXPECT_EQ(ErrorOf(VerifyToken(expired, ring, kNow, 0)), ErrorCode::kTokenExpired);
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(VerifyToken(expired, ring, kNow, 30)));
}

TEST(TokenKeysTest, RingRefusesKeysThatCouldNeverVerify) {
  const auto k = testing::MakeP256KeyPair();
  auto err = [](std::vector<VerificationKey> keys) {
    auto r = TokenKeyRing::Make(std::move(keys));
    return !r.ok() ? r.error().message : std::string();
  };
  EXPECT_NE(err({{"k1", TokenAlg::kEs256, "not a pem"}}).find("key 'k1'"), std::string::npos);
  // A private key where the public key belongs is refused too (never ship private keys here).
  EXPECT_NE(err({{"k1", TokenAlg::kEs256, k.private_pem}}), "");
  EXPECT_NE(err({{"k1", TokenAlg::kHs256, ""}}), "");
  EXPECT_NE(
      err({{"k1", TokenAlg::kHs256, "a"}, {"k1", TokenAlg::kEs256, k.public_pem}}).find("twice"),
      std::string::npos);
  EXPECT_EQ(err({{"k1", TokenAlg::kEs256, k.public_pem}, {"", TokenAlg::kHs256, "a"}}), "");
}

}  // namespace
}  // namespace vrouter::edge
