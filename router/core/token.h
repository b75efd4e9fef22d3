// Client tokens: HS256 JWTs naming the user (`sub`) and the space (`space`), with `exp` required
// and `nbf` honoured. Verification is pure (the caller passes the time) and tells apart each way a
// token can be wrong, because an operator debugging "nobody can connect" needs to know which.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "proto/error_code.h"

namespace vrouter::core {

struct TokenClaims {
  std::string user;
  std::string space;
  std::string region;  // optional `region` claim: where the user is, for region-aware choice
  std::int64_t expires_at = 0;  // unix seconds
};

struct TokenError {
  proto::ErrorCode code;
  std::string message;
};

// `leeway_seconds` tolerates clock skew between the token issuer and this replica on exp and nbf.
std::variant<TokenClaims, TokenError> VerifyToken(std::string_view token, std::string_view secret,
                                                  std::int64_t now_unix,
                                                  std::int64_t leeway_seconds);

// Video-server credentials: HS256 JWTs signed with the video-server key (never the client key),
// with `sub` = the server id, `aud` = kVideoServerAudience and `exp` required. The audience keeps
// a client token from passing as a server credential even if an operator reuses one secret.
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

}  // namespace vrouter::core
