// Per-session rate limits by client message type: one token bucket per type, refilled at `rate`
// per second up to `burst`. A refused message gets the typed error `rate_limited`; a client that
// keeps sending anyway (too many refusals within a window) is closed. Pure: the caller passes the
// time, so every rule is unit-tested without sleeping.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "proto/codec.h"
#include "router/base/result.h"
#include "router/base/time.h"

namespace vrouter::edge {

inline constexpr std::size_t kClientMessageTypes = std::size(proto::kClientTypeNames);

struct RateLimit {
  double per_second = 0;  // 0: unlimited
  double burst = 0;       // bucket size: messages accepted at once after a quiet period
  bool operator==(const RateLimit&) const = default;
};

struct RateLimits {
  // Indexed like proto::ClientMessage (kClientTypeNames).
  std::array<RateLimit, kClientMessageTypes> by_type{};
  // Refusals within `strike_window` that close the connection (1008): a client that backs off
  // after `rate_limited` never gets near it; a flood does within a second.
  std::uint32_t strikes_to_close = 50;
  std::chrono::milliseconds strike_window{10000};
  bool operator==(const RateLimits&) const = default;

  // What a browser client needs with room to spare (SECURITY.md explains each): a hello is once
  // per connection, joins and leaves are rare, lookups and watches follow a person walking
  // around a space, reports follow media failures.
  static RateLimits Defaults();
  static RateLimits Unlimited();
};

// "RATE:BURST" (e.g. "100:1000"). Errors say what is wrong.
base::Result<RateLimit> ParseRateLimit(std::string_view text);

// "lookup=50:200,watch=20:100" overrides the named types of `base` (RATE per second, BURST);
// "off" disables every limit. Errors name the bad entry.
base::Result<RateLimits> ParseRateLimits(std::string_view text, RateLimits base);

class RateLimiter {
 public:
  enum class Verdict { kAllow, kRefuse, kClose };
  // Charges one message of type `type` (a ClientMessage index) at `now`.
  Verdict Admit(std::size_t type, base::SteadyTime now, const RateLimits& limits);

 private:
  struct Bucket {
    float tokens = 0;
    std::int64_t last_ms = kNever;  // last refill, ms on the steady clock
  };
  static constexpr std::int64_t kNever = INT64_MIN;
  std::array<Bucket, kClientMessageTypes> buckets_{};
  std::uint32_t strikes_ = 0;
  std::int64_t strike_window_start_ms_ = kNever;
};

}  // namespace vrouter::edge
