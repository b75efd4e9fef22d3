#include "router/core/token.h"

#include <jwt.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "proto/codec.h"
#include "proto/fleet_messages.h"

namespace vrouter::core {
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

namespace {

// Structure, signature, algorithm, `exp` and `nbf`: the checks every credential shares. The
// caller then reads its own claims from the verified token.
std::variant<JwtPtr, TokenError> VerifyCommon(std::string_view token, std::string_view secret,
                                              std::int64_t now_unix, std::int64_t leeway_seconds,
                                              std::int64_t& expires_at) {
  using proto::ErrorCode;
  if (secret.empty()) return TokenError{ErrorCode::kAuthNotConfigured, "no token key configured"};
  const std::string text(token);
  // Structure first (no key: libjwt parses without verifying), so a garbled token is reported as
  // malformed rather than as a forgery.
  if (text.empty() || !Decode(text, {})) {
    return TokenError{ErrorCode::kTokenMalformed, "token is not a well-formed JWT"};
  }
  JwtPtr jwt = Decode(text, secret);
  if (!jwt) return TokenError{ErrorCode::kTokenBadSignature, "token signature does not verify"};
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "token algorithm must be HS256"};
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

std::string Mint(std::initializer_list<Grant> grants, std::string_view secret,
                 std::int64_t issued_at_unix, std::int64_t expires_at_unix) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return {};
  JwtPtr jwt(raw);
  for (const Grant& g : grants) {
    if (jwt_add_grant(raw, g.name, g.value.c_str()) != 0) return {};
  }
  if (jwt_add_grant_int(raw, "iat", static_cast<long>(issued_at_unix)) != 0 ||
      jwt_add_grant_int(raw, "exp", static_cast<long>(expires_at_unix)) != 0 ||
      jwt_set_alg(raw, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0) {
    return {};
  }
  char* encoded = jwt_encode_str(raw);
  if (encoded == nullptr) return {};
  std::string out(encoded);
  std::free(encoded);  // libjwt 1.10 allocates with malloc
  return out;
}

}  // namespace

std::variant<TokenClaims, TokenError> VerifyToken(std::string_view token, std::string_view secret,
                                                  std::int64_t now_unix,
                                                  std::int64_t leeway_seconds) {
  using proto::ErrorCode;
  TokenClaims claims;
  auto common = VerifyCommon(token, secret, now_unix, leeway_seconds, claims.expires_at);
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
  auto common = VerifyCommon(token, secret, now_unix, leeway_seconds, claims.expires_at);
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
  return Mint({{"sub", std::string(user)}, {"space", std::string(space)}}, secret, issued_at_unix,
              expires_at_unix);
}

std::string MintServerToken(std::string_view server, std::string_view secret,
                            std::int64_t issued_at_unix, std::int64_t expires_at_unix) {
  return Mint({{"sub", std::string(server)}, {"aud", std::string(kVideoServerAudience)}}, secret,
              issued_at_unix, expires_at_unix);
}

}  // namespace vrouter::core
