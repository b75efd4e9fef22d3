#include "proto/error_code.h"

#include <array>

namespace vrouter::proto {
namespace {

constexpr std::array<std::string_view, kErrorCodeCount> kNames = {
    "invalid_json",
    "invalid_message",
    "unknown_type",
    "not_authenticated",
    "already_authenticated",
    "auth_not_configured",
    "token_malformed",
    "token_bad_signature",
    "token_expired",
    "token_not_yet_valid",
    "token_invalid_claims",
    "not_joined",
    "no_video_server",
    "batch_too_large",
    "too_many_watches",
    "unknown_server",
    "unavailable",
    "shutting_down",
    "forbidden",
    "not_registered",
    "already_registered",
    "rate_limited",
    "internal",
};

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) { return kNames[static_cast<int>(code)]; }

std::optional<ErrorCode> ErrorCodeFromName(std::string_view name) {
  for (int i = 0; i < kErrorCodeCount; ++i) {
    if (kNames[i] == name) return static_cast<ErrorCode>(i);
  }
  return std::nullopt;
}

bool IsRetryable(ErrorCode code) {
  return code == ErrorCode::kNoVideoServer || code == ErrorCode::kUnavailable ||
         code == ErrorCode::kShuttingDown || code == ErrorCode::kRateLimited ||
         code == ErrorCode::kInternal;
}

}  // namespace vrouter::proto
