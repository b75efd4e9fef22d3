#include "router/edge/rate_limit.h"

#include <algorithm>
#include <charconv>

#include "router/base/result.h"

namespace vrouter::edge {
namespace {

std::size_t TypeIndex(std::string_view name) {
  for (std::size_t i = 0; i < kClientMessageTypes; ++i) {
    if (proto::kClientTypeNames[i] == name) return i;
  }
  return kClientMessageTypes;
}

bool ParseNumber(std::string_view text, double& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::int64_t Ms(base::SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

RateLimits RateLimits::Defaults() {
  RateLimits l;
  auto set = [&l](std::string_view type, double rate, double burst) {
    l.by_type[TypeIndex(type)] = {rate, burst};
  };
  set("hello", 1, 3);  // a second hello is an error anyway; this bounds the token checks
  set("join", 2, 10);
  set("resume", 2, 10);
  set("lookup", 50, 200);  // heartbeats, neighbours appearing, coalesced batches
  set("watch", 20, 100);
  set("unwatch", 20, 100);
  set("report", 2, 10);  // media-failure reports: one per failure, not a stream
  set("leave", 2, 10);
  return l;
}

RateLimits RateLimits::Unlimited() {
  RateLimits l;
  l.strikes_to_close = 0;
  return l;
}

base::Result<RateLimit> ParseRateLimit(std::string_view text) {
  const auto colon = text.find(':');
  RateLimit limit;
  if (colon == std::string_view::npos || !ParseNumber(text.substr(0, colon), limit.per_second) ||
      !ParseNumber(text.substr(colon + 1), limit.burst) || limit.per_second < 0 ||
      limit.burst < 1 || limit.per_second > 1e6 || limit.burst > 1e6) {
    return base::Fail(std::string(
        "RATE:BURST with RATE in [0, 1e6] (0: unlimited) and BURST in [1, 1e6] expected"));
  }
  return limit;
}

base::Result<RateLimits> ParseRateLimits(std::string_view text, RateLimits base) {
  if (text == "off") return RateLimits::Unlimited();
  if (text.ends_with(',')) return base::Fail("'" + std::string(text) + "' ends with a comma");
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto eq = entry.find('=');
    const auto colon = entry.find(':');
    const std::string bad = "'" + std::string(entry) + "'";
    if (eq == std::string_view::npos || colon == std::string_view::npos || colon < eq) {
      return base::Fail(bad + " is not TYPE=RATE:BURST (e.g. lookup=50:200)");
    }
    const std::size_t type = TypeIndex(entry.substr(0, eq));
    if (type == kClientMessageTypes) return base::Fail(bad + ": unknown message type");
    auto limit = ParseRateLimit(entry.substr(eq + 1));
    if (auto* error = limit.error_message()) return base::Fail(bad + ": " + *error);
    base.by_type[type] = std::get<RateLimit>(limit);
  }
  return base;
}

RateLimiter::Verdict RateLimiter::Admit(std::size_t type, base::SteadyTime now,
                                        const RateLimits& limits) {
  const RateLimit& limit = limits.by_type[type];
  if (limit.per_second <= 0) return Verdict::kAllow;
  const std::int64_t now_ms = Ms(now);
  Bucket& b = buckets_[type];
  if (b.last_ms == kNever) {
    b.tokens = static_cast<float>(limit.burst);
  } else if (now_ms > b.last_ms) {
    const double refill = limit.per_second * static_cast<double>(now_ms - b.last_ms) / 1000.0;
    b.tokens = static_cast<float>(std::min(limit.burst, b.tokens + refill));
  }
  b.last_ms = std::max(b.last_ms, now_ms);
  if (b.tokens >= 1.0f) {
    b.tokens -= 1.0f;
    return Verdict::kAllow;
  }
  if (limits.strikes_to_close == 0) return Verdict::kRefuse;
  if (strike_window_start_ms_ == kNever ||
      now_ms - strike_window_start_ms_ >= limits.strike_window.count()) {
    strike_window_start_ms_ = now_ms;
    strikes_ = 0;
  }
  return ++strikes_ >= limits.strikes_to_close ? Verdict::kClose : Verdict::kRefuse;
}

}  // namespace vrouter::edge
