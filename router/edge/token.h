// Client tokens: JWTs naming the user (`sub`) and the space (`space`), with `exp` required and
// `nbf` honoured (RFC 7519 NumericDates: JSON numbers of seconds, a fraction allowed; any other
// type is a malformed claim), signed HS256 (a shared secret) or ES256 (the issuer keeps the private
// key; the router holds only public keys, several at once so that keys rotate without a flag day,
// chosen by the token's `kid`). Verification is pure (the caller passes the time and the keys) and
// tells apart each way a token can be wrong, because an operator debugging "nobody can connect"
// needs to know which.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/error_code.h"
#include "router/base/mutex.h"
#include "router/base/result.h"

namespace vrouter::edge {

struct TokenClaims {
  std::string user;
  std::string space;
  std::string region;  // optional `region` claim: where the user is, for region-aware choice
  std::int64_t expires_at = 0;  // unix seconds (a fractional `exp` rounded up)
};

struct TokenError {
  proto::ErrorCode code;
  std::string message;
};

enum class TokenAlg { kHs256, kEs256 };
std::string_view TokenAlgName(TokenAlg alg);

// One key a token may be signed with. `material` is the HS256 secret or the ES256 public key
// (PEM, P-256). An empty kid matches tokens that carry no `kid`.
struct VerificationKey {
  std::string kid;
  TokenAlg alg = TokenAlg::kHs256;
  std::string material;
};

// The keys a replica accepts, immutable once built (a reload builds a new ring). Selection:
// a token with a `kid` is checked against that key only, and its header `alg` must be the key's
// (so an ES256 public key can never be used as an HS256 secret: the classic algorithm
// confusion); a token without `kid` is checked against the kid-less keys of its `alg`.
class TokenKeyRing {
 public:
  // Checks every key: non-empty material, a parsable P-256 public key for ES256, unique kids.
  // The error names the offending key.
  static base::Result<TokenKeyRing> Make(std::vector<VerificationKey> keys);
  // One HS256 secret without kid (the --auth-secret case); an empty secret gives an empty ring.
  static TokenKeyRing Hs256(std::string_view secret);

  bool empty() const { return keys_.empty(); }
  std::size_t size() const { return keys_.size(); }
  std::size_t count(TokenAlg alg) const;
  const std::vector<VerificationKey>& keys() const { return keys_; }

 private:
  std::vector<VerificationKey> keys_;
};

// A key ring that a reload swaps while sessions verify tokens on other threads.
class SharedKeyRing {
 public:
  SharedKeyRing() : SharedKeyRing(TokenKeyRing{}) {}
  explicit SharedKeyRing(TokenKeyRing ring)
      : ring_(std::make_shared<const TokenKeyRing>(std::move(ring))) {}
  std::shared_ptr<const TokenKeyRing> Get() const { return ring_.load(); }
  void Set(TokenKeyRing ring) {
    ring_.store(std::make_shared<const TokenKeyRing>(std::move(ring)));
  }

 private:
  AtomicSharedPtr<const TokenKeyRing> ring_;
};

// `leeway_seconds` tolerates clock skew between the token issuer and this replica on exp and nbf.
std::variant<TokenClaims, TokenError> VerifyToken(std::string_view token, const TokenKeyRing& keys,
                                                  std::int64_t now_unix,
                                                  std::int64_t leeway_seconds);
// Shorthand for a ring of one kid-less HS256 secret.
std::variant<TokenClaims, TokenError> VerifyToken(std::string_view token, std::string_view secret,
                                                  std::int64_t now_unix,
                                                  std::int64_t leeway_seconds);

// Video-server credentials: HS256 JWTs signed with the video-server key (never the client key),
// with `sub` = the server id, `aud` = kVideoServerAudience (or an array of strings listing it,
// RFC 7519 4.1.3) and `exp` required. The audience keeps a client token from passing as a server
// credential even if an operator reuses one secret, and a client token whose audience names it is
// refused.
inline constexpr std::string_view kVideoServerAudience = "vrouter.video";

struct ServerTokenClaims {
  std::string server;
  std::int64_t expires_at = 0;
};

std::variant<ServerTokenClaims, TokenError> VerifyServerToken(std::string_view token,
                                                              std::string_view secret,
                                                              std::int64_t now_unix,
                                                              std::int64_t leeway_seconds);

std::string MintServerToken(std::string_view server, std::string_view secret,
                            std::int64_t issued_at_unix, std::int64_t expires_at_unix);

// Signs a token (development and tests; production tokens come from the product's auth service).
// Returns an empty string only if the crypto library fails.
std::string MintToken(std::string_view user, std::string_view space, std::string_view secret,
                      std::int64_t issued_at_unix, std::int64_t expires_at_unix);

// The same with any algorithm: `key` is the HS256 secret or the ES256 private key (PEM); a
// non-empty `kid` goes into the header.
struct SigningKey {
  std::string kid;
  TokenAlg alg = TokenAlg::kHs256;
  std::string material;
};
std::string MintToken(std::string_view user, std::string_view space, const SigningKey& key,
                      std::int64_t issued_at_unix, std::int64_t expires_at_unix);

}  // namespace vrouter::edge
