#include "router/edge/token.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <boost/json/parse.hpp>  // the claims' types, which libjwt's getters blur
#include <boost/json/value.hpp>
#include <cmath>
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

namespace json = boost::json;

// The verified token's claims, read with their JSON types. libjwt 1.10's typed getters cannot be
// trusted with types: jwt_get_grant_int reads a string, null, true or a fraction as 0 (so
// `"exp": "soon"` was an expired token and a fractional `nbf` no `nbf` at all), and
// jwt_get_grant hides an array `aud`.
std::optional<json::object> ReadClaims(jwt_t* jwt) {
  std::unique_ptr<char, decltype(&std::free)> text(jwt_get_grants_json(jwt, nullptr), &std::free);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  json::value value = json::parse(text.get(), ec);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

const json::string* StringClaim(const json::object& claims, std::string_view name) {
  const json::value* v = claims.if_contains(name);
  return v == nullptr ? nullptr : v->if_string();
}

// Dates are kept in whole seconds, and stay far from overflow when the leeway is added.
constexpr std::int64_t kFarDate = std::int64_t{1} << 62;

// A NumericDate (RFC 7519 2): a JSON number of seconds since the epoch, a fraction allowed, as
// whole seconds rounded up. Against the router's clock, which counts whole seconds, the rounded
// date compares exactly as the number itself would (t > n iff ceil(t) > n for an integer n).
std::optional<std::int64_t> NumericDate(const json::value& v) {
  if (const auto* i = v.if_int64()) return std::clamp(*i, -kFarDate, kFarDate);
  if (v.is_uint64()) return kFarDate;
  if (const auto* d = v.if_double()) {
    if (!std::isfinite(*d)) return std::nullopt;
    const double up = std::ceil(*d);
    return up >= static_cast<double>(kFarDate)    ? kFarDate
           : up <= -static_cast<double>(kFarDate) ? -kFarDate
                                                  : static_cast<std::int64_t>(up);
  }
  return std::nullopt;
}

// `exp` (required) and `nbf` (optional), each a NumericDate when present.
struct TokenTimes {
  std::int64_t expires_at = 0;
  std::optional<std::int64_t> not_before;
};

std::variant<TokenTimes, TokenError> ReadTimes(const json::object& claims) {
  using proto::ErrorCode;
  TokenTimes times;
  const json::value* exp = claims.if_contains("exp");
  const auto expires_at = exp == nullptr ? std::nullopt : NumericDate(*exp);
  if (!expires_at) {
    return TokenError{ErrorCode::kTokenInvalidClaims,
                      "claim 'exp' missing or not a number (seconds since the epoch)"};
  }
  times.expires_at = *expires_at;
  if (const json::value* nbf = claims.if_contains("nbf")) {
    times.not_before = NumericDate(*nbf);
    if (!times.not_before) {
      return TokenError{ErrorCode::kTokenInvalidClaims,
                        "claim 'nbf' is not a number (seconds since the epoch)"};
    }
  }
  return times;
}

// After every claim's shape: a token with a malformed claim is refused for that even when it is
// also out of date, since no clock would ever make it valid.
std::optional<TokenError> CheckTimes(const TokenTimes& times, std::int64_t now_unix,
                                     std::int64_t leeway_seconds) {
  using proto::ErrorCode;
  if (times.expires_at + leeway_seconds <= now_unix) {
    return TokenError{ErrorCode::kTokenExpired, "token expired"};
  }
  if (times.not_before && *times.not_before - leeway_seconds > now_unix) {
    return TokenError{ErrorCode::kTokenNotYetValid, "token not valid yet (nbf)"};
  }
  return std::nullopt;
}

// RFC 7519 4.1.3: `aud` is one string, or an array of strings.
struct Audience {
  bool well_formed = false;  // present, and a string or an array of strings only
  bool names = false;        // one of its strings is the audience asked about
};

Audience AudienceOf(const json::object& claims, std::string_view wanted) {
  const json::value* aud = claims.if_contains("aud");
  if (aud == nullptr) return {};
  if (const auto* one = aud->if_string()) return {true, *one == wanted};
  const auto* many = aud->if_array();
  if (many == nullptr) return {};
  Audience out{true, false};
  for (const json::value& e : *many) {
    const auto* name = e.if_string();
    out.well_formed = out.well_formed && name != nullptr;
    out.names = out.names || (name != nullptr && *name == wanted);
  }
  return out;
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

// Structure, key selection and signature: the checks every credential shares. Returns the
// verified claims; the caller checks their shape (`exp` and `nbf` with ReadTimes, then its own),
// then the time.
std::variant<json::object, TokenError> VerifyCommon(std::string_view token,
                                                    const TokenKeyRing& keys) {
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
  auto claims = ReadClaims(jwt.get());
  if (!claims) return TokenError{ErrorCode::kTokenMalformed, "token claims are not a JSON object"};
  return std::move(*claims);
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
  auto common = VerifyCommon(token, keys);
  if (auto* err = std::get_if<TokenError>(&common)) return std::move(*err);
  const auto& claims = std::get<json::object>(common);
  auto times = ReadTimes(claims);
  if (auto* err = std::get_if<TokenError>(&times)) return std::move(*err);
  if (AudienceOf(claims, kVideoServerAudience).names) {
    return TokenError{ErrorCode::kTokenInvalidClaims,
                      "a video-server credential is not a client token"};
  }
  const json::string* sub = StringClaim(claims, "sub");
  const json::string* space = StringClaim(claims, "space");
  if (sub == nullptr || !proto::IsValidId(*sub)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'sub' (user id) missing or invalid"};
  }
  if (space == nullptr || !proto::IsValidId(*space)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'space' missing or invalid"};
  }
  TokenClaims out;
  out.user = *sub;
  out.space = *space;
  out.expires_at = std::get<TokenTimes>(times).expires_at;
  if (claims.contains("region")) {
    const json::string* region = StringClaim(claims, "region");
    if (region == nullptr || !proto::IsValidId(*region) ||
        region->size() > proto::kMaxRegionBytes) {
      return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'region' is not a valid region"};
    }
    out.region = *region;
  }
  if (auto err = CheckTimes(std::get<TokenTimes>(times), now_unix, leeway_seconds)) {
    return std::move(*err);
  }
  return out;
}

std::variant<ServerTokenClaims, TokenError> VerifyServerToken(std::string_view token,
                                                              std::string_view secret,
                                                              std::int64_t now_unix,
                                                              std::int64_t leeway_seconds) {
  using proto::ErrorCode;
  auto common = VerifyCommon(token, TokenKeyRing::Hs256(secret));
  if (auto* err = std::get_if<TokenError>(&common)) return std::move(*err);
  const auto& claims = std::get<json::object>(common);
  auto times = ReadTimes(claims);
  if (auto* err = std::get_if<TokenError>(&times)) return std::move(*err);
  const Audience audience = AudienceOf(claims, kVideoServerAudience);
  if (!audience.well_formed || !audience.names) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'aud' must be \"" +
                                                          std::string(kVideoServerAudience) +
                                                          "\" or an array of strings holding it"};
  }
  const json::string* sub = StringClaim(claims, "sub");
  if (sub == nullptr || !proto::IsValidId(*sub)) {
    return TokenError{ErrorCode::kTokenInvalidClaims, "claim 'sub' (server id) missing or invalid"};
  }
  if (auto err = CheckTimes(std::get<TokenTimes>(times), now_unix, leeway_seconds)) {
    return std::move(*err);
  }
  return ServerTokenClaims{std::string(*sub), std::get<TokenTimes>(times).expires_at};
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
