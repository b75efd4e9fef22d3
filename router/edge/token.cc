#include "router/edge/token.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "proto/codec.h"
#include "proto/video_server_messages.h"
#include "router/base/result.h"

namespace vrouter::edge {
namespace {

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

JwtPtr Decode(const std::string& token, std::string_view key) {
  jwt_t* raw = nullptr;
  const auto* key_bytes = reinterpret_cast<const unsigned char*>(key.data());
  const int rc = jwt_decode(&raw, token.c_str(), key.empty() ? nullptr : key_bytes,
                            static_cast<int>(key.size()));
  JwtPtr jwt(raw);
  return rc == 0 ? std::move(jwt) : nullptr;
}

// libjwt returns grants as `long`; -1/ENOENT when absent or not an integer.
bool IntGrant(jwt_t* jwt, const char* name, std::int64_t& out) {
  errno = 0;
  const long v = jwt_get_grant_int(jwt, name);
  if (errno != 0) return false;
  out = v;
  return true;
}

}  // namespace

std::string_view TokenAlgName(TokenAlg alg) { return alg == TokenAlg::kEs256 ? "ES256" : "HS256"; }

namespace {

jwt_alg_t LibjwtAlg(TokenAlg alg) {
  return alg == TokenAlg::kEs256 ? JWT_ALG_ES256 : JWT_ALG_HS256;
}

// An ES256 key must be a P-256 public key: anything else would fail every verification later,
// silently, so it is refused when the ring is built.
bool IsP256PublicKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return false;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) return false;
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(key.get(), group, sizeof(group), &len) != 1) return false;
  return std::strcmp(group, "prime256v1") == 0;
}

// Structure, key selection, signature, `exp` and `nbf`: the checks every credential shares. The
// caller then reads its own claims from the verified token.
std::variant<JwtPtr, TokenError> VerifyCommon(std::string_view token, const TokenKeyRing& keys,
                                              std::int64_t now_unix, std::int64_t leeway_seconds,
                                              std::int64_t& expires_at) {
  using proto::ErrorCode;
  if (keys.empty()) return TokenError{ErrorCode::kAuthNotConfigured, "no token key configured"};
  const std::string text(token);
  // Structure first (no key: libjwt parses without verifying), so a garbled token is reported as
  // malformed rather than as a forgery. The unverified header only selects the key.
  JwtPtr header = text.empty() ? nullptr : Decode(text, {});
  if (!header) return TokenError{ErrorCode::kTokenMalformed, "token is not a well-formed JWT"};
  // Unverified, libjwt reports alg "none"; the header's own field says what the token claims.
  const char* alg_header = jwt_get_header(header.get(), "alg");
  const std::string_view alg_name = alg_header == nullptr ? std::string_view() : alg_header;
  const jwt_alg_t alg = alg_name == "HS256"   ? JWT_ALG_HS256
                        : alg_name == "ES256" ? JWT_ALG_ES256
                                              : JWT_ALG_NONE;
  if (alg == JWT_ALG_NONE) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "token algorithm must be HS256 or ES256"};
  }
  const char* kid_header = jwt_get_header(header.get(), "kid");
  const std::string_view kid = kid_header == nullptr ? std::string_view() : kid_header;
  bool kid_known = false;
  JwtPtr jwt;
  for (const VerificationKey& key : keys.keys()) {
    if (key.kid != kid) continue;
    kid_known = true;
    if (LibjwtAlg(key.alg) != alg) continue;  // never verify with a key of another algorithm
    jwt = Decode(text, key.material);
    if (jwt && jwt_get_alg(jwt.get()) == alg) break;
    jwt.reset();
  }
  if (!jwt) {
    if (!kid.empty() && !kid_known) {
      return TokenError{ErrorCode::kTokenBadSignature,
                        "token key id '" + std::string(kid.substr(0, 64)) + "' is not configured"};
    }
    return TokenError{ErrorCode::kTokenBadSignature, "token signature does not verify"};
  }
  if (!IntGrant(jwt.get(), "exp", expires_at)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'exp' missing or not an integer"};
  }
  if (expires_at + leeway_seconds <= now_unix) {
    return TokenError{ErrorCode::kTokenExpired, "token expired"};
  }
  std::int64_t not_before = 0;
  if (IntGrant(jwt.get(), "nbf", not_before) && not_before - leeway_seconds > now_unix) {
    return TokenError{ErrorCode::kTokenNotYetValid, "token not valid yet (nbf)"};
  }
  return jwt;
}

struct Grant {
  const char* name;
  std::string value;
};

std::string Mint(std::initializer_list<Grant> grants, const SigningKey& key,
                 std::int64_t issued_at_unix, std::int64_t expires_at_unix) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return {};
  JwtPtr jwt(raw);
  for (const Grant& g : grants) {
    if (jwt_add_grant(raw, g.name, g.value.c_str()) != 0) return {};
  }
  if (jwt_add_grant_int(raw, "iat", static_cast<long>(issued_at_unix)) != 0 ||
      jwt_add_grant_int(raw, "exp", static_cast<long>(expires_at_unix)) != 0 ||
      jwt_set_alg(raw, LibjwtAlg(key.alg),
                  reinterpret_cast<const unsigned char*>(key.material.data()),
                  static_cast<int>(key.material.size())) != 0) {
    return {};
  }
  if (!key.kid.empty() && jwt_add_header(raw, "kid", key.kid.c_str()) != 0) return {};
  char* encoded = jwt_encode_str(raw);
  if (encoded == nullptr) return {};
  std::string out(encoded);
  std::free(encoded);  // libjwt 1.10 allocates with malloc
  return out;
}

}  // namespace

base::Result<TokenKeyRing> TokenKeyRing::Make(std::vector<VerificationKey> keys) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const VerificationKey& k = keys[i];
    const std::string name = k.kid.empty() ? "the key without kid" : "key '" + k.kid + "'";
    if (k.material.empty()) return base::Fail(name + ": empty");
    if (k.alg == TokenAlg::kEs256 && !IsP256PublicKey(k.material)) {
      return base::Fail(name + ": not a PEM P-256 (prime256v1) public key");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (keys[j].kid == k.kid && !k.kid.empty()) return base::Fail(name + ": kid listed twice");
    }
  }
  TokenKeyRing ring;
  ring.keys_ = std::move(keys);
  return ring;
}

TokenKeyRing TokenKeyRing::Hs256(std::string_view secret) {
  TokenKeyRing ring;
  if (!secret.empty()) ring.keys_.push_back({"", TokenAlg::kHs256, std::string(secret)});
  return ring;
}

std::size_t TokenKeyRing::count(TokenAlg alg) const {
  std::size_t n = 0;
  for (const auto& k : keys_) n += k.alg == alg ? 1 : 0;
  return n;
}

std::variant<TokenClaims, TokenError> VerifyToken(std::string_view token, std::string_view secret,
                                                  std::int64_t now_unix,
                                                  std::int64_t leeway_seconds) {
  return VerifyToken(token, TokenKeyRing::Hs256(secret), now_unix, leeway_seconds);
}

std::variant<TokenClaims, TokenError> VerifyToken(std::string_view token, const TokenKeyRing& keys,
                                                  std::int64_t now_unix,
                                                  std::int64_t leeway_seconds) {
  using proto::ErrorCode;
  TokenClaims claims;
  auto common = VerifyCommon(token, keys, now_unix, leeway_seconds, claims.expires_at);
  if (auto* err = std::get_if<TokenError>(&common)) return std::move(*err);
  jwt_t* jwt = std::get<JwtPtr>(common).get();
  const char* aud = jwt_get_grant(jwt, "aud");
  if (aud != nullptr && std::string_view(aud) == kVideoServerAudience) {
    return TokenError{ErrorCode::kTokenInvalidClaims,
                      "a video-server credential is not a client token"};
  }
  const char* sub = jwt_get_grant(jwt, "sub");
  const char* space = jwt_get_grant(jwt, "space");
  if (sub == nullptr || !proto::IsValidId(sub)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'sub' (user id) missing or invalid"};
  }
  if (space == nullptr || !proto::IsValidId(space)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'space' missing or invalid"};
  }
  claims.user = sub;
  claims.space = space;
  const char* region = jwt_get_grant(jwt, "region");
  if (region != nullptr) {
    if (!proto::IsValidId(region) || std::string_view(region).size() > proto::kMaxRegionBytes) {
      return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'region' is not a valid region"};
    }
    claims.region = region;
  }
  return claims;
}

std::variant<ServerTokenClaims, TokenError> VerifyServerToken(std::string_view token,
                                                              std::string_view secret,
                                                              std::int64_t now_unix,
                                                              std::int64_t leeway_seconds) {
  using proto::ErrorCode;
  ServerTokenClaims claims;
  auto common =
      VerifyCommon(token, TokenKeyRing::Hs256(secret), now_unix, leeway_seconds, claims.expires_at);
  if (auto* err = std::get_if<TokenError>(&common)) return std::move(*err);
  jwt_t* jwt = std::get<JwtPtr>(common).get();
  const char* aud = jwt_get_grant(jwt, "aud");
  if (aud == nullptr || std::string_view(aud) != kVideoServerAudience) {
    return TokenError{ErrorCode::kTokenInvalidClaims,
                      "claim 'aud' must be \"" + std::string(kVideoServerAudience) + "\""};
  }
  const char* sub = jwt_get_grant(jwt, "sub");
  if (sub == nullptr || !proto::IsValidId(sub)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'sub' (server id) missing or invalid"};
  }
  claims.server = sub;
  return claims;
}

std::string MintToken(std::string_view user, std::string_view space, std::string_view secret,
                      std::int64_t issued_at_unix, std::int64_t expires_at_unix) {
  return MintToken(user, space, SigningKey{"", TokenAlg::kHs256, std::string(secret)},
                   issued_at_unix, expires_at_unix);
}

std::string MintToken(std::string_view user, std::string_view space, const SigningKey& key,
                      std::int64_t issued_at_unix, std::int64_t expires_at_unix) {
  return Mint({{"sub", std::string(user)}, {"space", std::string(space)}}, key, issued_at_unix,
              expires_at_unix);
}

std::string MintServerToken(std::string_view server, std::string_view secret,
                            std::int64_t issued_at_unix, std::int64_t expires_at_unix) {
  return Mint({{"sub", std::string(server)}, {"aud", std::string(kVideoServerAudience)}},
              SigningKey{"", TokenAlg::kHs256, std::string(secret)}, issued_at_unix,
              expires_at_unix);
}

}  // namespace vrouter::edge
