#include "router/edge/token.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <string>

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

// ---- claim types (RFC 7519): tokens signed here with exactly the claims JSON given ----

std::string Base64Url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

// An HS256 JWT whose payload is `claims` byte for byte (a real issuer may write any JSON).
std::string SignHs256(std::string_view claims, std::string_view secret) {
  const std::string input = Base64Url(R"({"alg":"HS256","typ":"JWT"})") + "." + Base64Url(claims);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &mac_size);
  return input + "." +
         Base64Url(std::string_view(reinterpret_cast<const char*>(mac.data()), mac_size));
}

// A client token's claims with `extra` appended (e.g. `,"exp":1`).
std::string ClientClaims(std::string_view extra) {
  return R"({"sub":"alice","space":"s")" + std::string(extra) + "}";
}

auto Client(std::string_view extra, std::int64_t leeway = 0) {
  return VerifyToken(SignHs256(ClientClaims(extra), "k"), "k", kNow, leeway);
}

auto Server(std::string_view claims, std::int64_t leeway = 0) {
  return VerifyServerToken(SignHs256(claims, "vk"), "vk", kNow, leeway);
}

ErrorCode ServerErrorOf(const std::variant<ServerTokenClaims, TokenError>& r) {
  EXPECT_TRUE(std::holds_alternative<TokenError>(r));
  return std::holds_alternative<TokenError>(r) ? std::get<TokenError>(r).code
                                               : ErrorCode::kInternal;
}

TEST(TokenClaimsTest, SignedHereTheWayLibjwtSigns) {
  auto r = Client(R"(,"exp":1800000060)");
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(r)) << std::get<TokenError>(r).message;
  EXPECT_EQ(std::get<TokenClaims>(r).expires_at, kNow + 60);
}

// An `exp` that is not a number is a malformed claim, not a date in 1970 (libjwt reads it as 0).
TEST(TokenClaimsTest, ExpThatIsNotANumberIsAnInvalidClaim) {
  for (std::string_view exp :
       {R"("1800000060")", "null", "true", "false", "[1800000060]", R"({"at":1800000060})"}) {
    auto r = Client(R"(,"exp":)" + std::string(exp));
    EXPECT_EQ(ErrorOf(r), ErrorCode::kTokenInvalidClaims) << exp;
    if (auto* err = std::get_if<TokenError>(&r)) {
      EXPECT_NE(err->message.find("'exp'"), std::string::npos) << err->message;
    }
  }
  EXPECT_EQ(ErrorOf(Client("")), ErrorCode::kTokenInvalidClaims);  // missing
}

// RFC 7519 2: a NumericDate may carry a fraction. It counts to the exact instant (in whole
// seconds of the router's clock: a fraction rounds up).
TEST(TokenClaimsTest, ExpWithAFractionIsADate) {
  auto r = Client(R"(,"exp":1800000060.5)");
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(r)) << std::get<TokenError>(r).message;
  EXPECT_EQ(std::get<TokenClaims>(r).expires_at, kNow + 61);
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(R"(,"exp":1800000000.25)")));
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(R"(,"exp":1.80000006e9)")));
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1799999999.5)")), ErrorCode::kTokenExpired);
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1800000000.0)")), ErrorCode::kTokenExpired);
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(R"(,"exp":1799999999.5)", 1)));
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":-1.5)")), ErrorCode::kTokenExpired);
  // Far future, as an integer or a double: valid, and no overflow.
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(R"(,"exp":9223372036854775807)", 3600)));
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(R"(,"exp":1e300)", 3600)));
}

// `nbf` is optional; when present it is a NumericDate like `exp`, checked the same way.
TEST(TokenClaimsTest, NbfIsANumericDateWhenPresent) {
  const std::string exp = R"(,"exp":1800000060)";
  EXPECT_EQ(ErrorOf(Client(exp + R"(,"nbf":1800000100.5)")), ErrorCode::kTokenNotYetValid);
  EXPECT_EQ(ErrorOf(Client(exp + R"(,"nbf":1800000000.5)")), ErrorCode::kTokenNotYetValid);
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(exp + R"(,"nbf":1800000000.5)", 1)));
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(exp + R"(,"nbf":1799999999.5)")));
  for (std::string_view nbf : {R"("later")", "null", "true", "[]"}) {
    EXPECT_EQ(ErrorOf(Client(exp + R"(,"nbf":)" + std::string(nbf))),
              ErrorCode::kTokenInvalidClaims)
        << nbf;
  }
  // `iat` is not read: any value passes.
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(exp + R"(,"iat":"yesterday")")));
}

// PROTOCOL.md 7.1's order: every claim's shape first (token_invalid_claims), then time.
TEST(TokenClaimsTest, MalformedClaimsWinOverExpiry) {
  EXPECT_EQ(ErrorOf(VerifyToken(SignHs256(R"({"space":"s","exp":1})", "k"), "k", kNow, 0)),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1800000060,"nbf":"x","region":7)")),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1,"region":"")")), ErrorCode::kTokenInvalidClaims);
  // A region that is not a string is malformed like an empty one (it was ignored).
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1800000060,"region":7)")), ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ServerErrorOf(Server(R"({"sub":"sfu-1","aud":"someone","exp":1})")),
            ErrorCode::kTokenInvalidClaims);
}

// RFC 7519 4.1.3: `aud` is one string or an array of strings; a server credential's audience
// must hold "vrouter.video" either way (PROTOCOL.md 14.6).
TEST(TokenClaimsTest, ServerAudienceMayBeAnArrayHoldingOurs) {
  for (std::string_view aud :
       {R"("vrouter.video")", R"(["vrouter.video"])", R"(["sfu-admin","vrouter.video"])"}) {
    auto r = Server(R"({"sub":"sfu-1","exp":1800000060,"aud":)" + std::string(aud) + "}");
    ASSERT_TRUE(std::holds_alternative<ServerTokenClaims>(r))
        << aud << ": " << std::get<TokenError>(r).message;
    EXPECT_EQ(std::get<ServerTokenClaims>(r).server, "sfu-1");
  }
  for (std::string_view aud :
       {R"("vrouter")", R"([])", R"(["vrouter.client","x"])", R"([1,2])", R"(["vrouter.video",7])",
        R"([["vrouter.video"]])", "null", R"({"vrouter.video":true})", "7"}) {
    auto r = Server(R"({"sub":"sfu-1","exp":1800000060,"aud":)" + std::string(aud) + "}");
    EXPECT_EQ(ServerErrorOf(r), ErrorCode::kTokenInvalidClaims) << aud;
    if (auto* err = std::get_if<TokenError>(&r)) {
      EXPECT_NE(err->message.find("'aud'"), std::string::npos) << err->message;
    }
  }
  EXPECT_EQ(ServerErrorOf(Server(R"({"sub":"sfu-1","exp":1800000060})")),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ServerErrorOf(Server(R"({"sub":"sfu-1","exp":"soon","aud":"vrouter.video"})")),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_TRUE(std::holds_alternative<ServerTokenClaims>(
      Server(R"({"sub":"sfu-1","exp":1800000060.5,"aud":"vrouter.video"})")));
}

// A server credential never admits a client, whichever way its audience is written.
TEST(TokenClaimsTest, ServerCredentialIsNoClientTokenEvenWithAnArrayAudience) {
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1800000060,"aud":"vrouter.video")")),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1800000060,"aud":["app","vrouter.video"])")),
            ErrorCode::kTokenInvalidClaims);
  EXPECT_EQ(ErrorOf(Client(R"(,"exp":1800000060,"aud":[7,"vrouter.video"])")),
            ErrorCode::kTokenInvalidClaims);
  // Other audiences, in any shape, are not the router's business on client tokens.
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(Client(R"(,"exp":1800000060,"aud":["app",3])")));
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
