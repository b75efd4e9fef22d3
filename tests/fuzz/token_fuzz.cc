// libFuzzer target: client and video-server token verification. A token is the first thing an
// anonymous peer sends; whatever its bytes, verification must return a typed answer, never crash,
// and never accept a token that no configured key signed. The ring mixes a kid-less HS256 secret,
// an HS256 key with a kid and an ES256 public key, so key selection, the algorithm checks and
// both signature paths all see fuzzed input.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target token_fuzz
//   build/fuzz/tests/token_fuzz -max_total_time=600 tests/fuzz/corpus/token
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/codec.h"
#include "router/edge/token.h"

namespace {

using vrouter::edge::TokenAlg;
using vrouter::edge::TokenClaims;
using vrouter::edge::TokenKeyRing;

// The public half of the key that signed tests/fuzz/corpus/token/es256_issuer (made with Node.js
// crypto); the private half was never kept.
constexpr std::string_view kEs256Public =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3lwaw1C+4cR4xFXMaagbkGgINiQf\n"
    "0KukAK2qN5c7Us/g60gK8QsuzVBLnMS2ElnUVnGx/cw9N+uhaSzwK0Hv6g==\n"
    "-----END PUBLIC KEY-----\n";

const TokenKeyRing& Ring() {
  static const TokenKeyRing ring = [] {
    auto r = TokenKeyRing::Make({{"", TokenAlg::kHs256, "fuzz-secret"},
                                 {"hs-kid", TokenAlg::kHs256, "fuzz-kid-secret"},
                                 {"issuer-2026", TokenAlg::kEs256, std::string(kEs256Public)}});
    if (!std::holds_alternative<TokenKeyRing>(r)) std::abort();
    return std::get<TokenKeyRing>(std::move(r));
  }();
  return ring;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16 * 1024) return 0;  // hello tokens are capped far below this by the codec
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  constexpr std::int64_t kNow = 1'800'000'000;
  auto r = vrouter::edge::VerifyToken(token, Ring(), kNow, 30);
  if (auto* claims = std::get_if<TokenClaims>(&r)) {
    // Accepted: the claims a session will trust must be what the protocol allows.
    if (!vrouter::proto::IsValidId(claims->user) || !vrouter::proto::IsValidId(claims->space) ||
        claims->expires_at + 30 <= kNow) {
      std::abort();
    }
  } else if (std::get<vrouter::edge::TokenError>(r).message.empty()) {
    std::abort();
  }
  auto s = vrouter::edge::VerifyServerToken(token, "fuzz-server-secret", kNow, 30);
  if (auto* claims = std::get_if<vrouter::edge::ServerTokenClaims>(&s)) {
    if (!vrouter::proto::IsValidId(claims->server)) std::abort();
  }
  return 0;
}
