#include "router/edge/rate_limit.h"

#include <gtest/gtest.h>

namespace vrouter::edge {
namespace {

using Verdict = RateLimiter::Verdict;
using std::chrono::milliseconds;

constexpr std::size_t kLookup = 3;  // kClientTypeNames: hello, join, resume, lookup, ...
const base::SteadyTime kT0 = base::SteadyTime{} + std::chrono::hours(1);

RateLimits LookupLimit(double rate, double burst, std::uint32_t strikes = 50) {
  RateLimits l = RateLimits::Unlimited();
  l.by_type[kLookup] = {rate, burst};
  l.strikes_to_close = strikes;
  return l;
}

TEST(RateLimitTest, BurstThenRefusedUntilTheBucketRefills) {
  static_assert(proto::kClientTypeNames[kLookup] == "lookup");
  const RateLimits limits = LookupLimit(10, 5);
  RateLimiter r;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kAllow) << i;
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kRefuse);
  // 10 per second: one token every 100 ms, never more than the burst.
  EXPECT_EQ(r.Admit(kLookup, kT0 + milliseconds(99), limits), Verdict::kRefuse);
  EXPECT_EQ(r.Admit(kLookup, kT0 + milliseconds(200), limits), Verdict::kAllow);
  EXPECT_EQ(r.Admit(kLookup, kT0 + milliseconds(200), limits), Verdict::kAllow);
  EXPECT_EQ(r.Admit(kLookup, kT0 + milliseconds(200), limits), Verdict::kRefuse);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(r.Admit(kLookup, kT0 + std::chrono::hours(1), limits), Verdict::kAllow) << i;
  }
  EXPECT_EQ(r.Admit(kLookup, kT0 + std::chrono::hours(1), limits), Verdict::kRefuse);
}

TEST(RateLimitTest, SustainedAbuseCloses) {
  const RateLimits limits = LookupLimit(1, 1, /*strikes=*/3);
  RateLimiter r;
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kAllow);
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kRefuse);
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kRefuse);
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kClose);
}

TEST(RateLimitTest, StrikesAgeOutWithTheWindow) {
  const RateLimits limits = LookupLimit(1, 1, /*strikes=*/3);
  RateLimiter r;
  base::SteadyTime t = kT0;
  // A client that backs off after each refusal is never closed.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(r.Admit(kLookup, t, limits), Verdict::kAllow) << i;
    EXPECT_EQ(r.Admit(kLookup, t, limits), Verdict::kRefuse) << i;
    t += limits.strike_window;
  }
}

TEST(RateLimitTest, TypesHaveSeparateBucketsAndUnlimitedTypesPass) {
  RateLimits limits = LookupLimit(1, 1);
  RateLimiter r;
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kAllow);
  EXPECT_EQ(r.Admit(kLookup, kT0, limits), Verdict::kRefuse);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(r.Admit(kLookup + 1, kT0, limits), Verdict::kAllow);
}

TEST(RateLimitTest, DefaultsLimitEveryType) {
  const RateLimits d = RateLimits::Defaults();
  for (std::size_t i = 0; i < kClientMessageTypes; ++i) {
    EXPECT_GT(d.by_type[i].per_second, 0) << proto::kClientTypeNames[i];
    EXPECT_GE(d.by_type[i].burst, 1) << proto::kClientTypeNames[i];
  }
  EXPECT_GT(d.strikes_to_close, 0u);
}

TEST(RateLimitTest, ParsesOverridesAndOff) {
  auto parsed = ParseRateLimits("lookup=5:7,watch=0:1", RateLimits::Defaults());
  ASSERT_TRUE(std::holds_alternative<RateLimits>(parsed)) << parsed.error().message;
  const auto& l = std::get<RateLimits>(parsed);
  EXPECT_EQ(l.by_type[kLookup], (RateLimit{5, 7}));
  EXPECT_EQ(l.by_type[kLookup + 1].per_second, 0);  // watch: unlimited
  EXPECT_EQ(l.by_type[0], RateLimits::Defaults().by_type[0]);
  EXPECT_EQ(std::get<RateLimits>(ParseRateLimits("off", RateLimits::Defaults())),
            RateLimits::Unlimited());
  for (const char* bad : {"lookup", "lookup=5", "nope=1:1", "lookup=-1:5", "lookup=5:0",
                          "lookup=x:1", "lookup=1:1,", "=1:1"}) {
    auto r = ParseRateLimits(bad, RateLimits::Defaults());
    EXPECT_TRUE(!r.ok()) << bad;
  }
}

}  // namespace
}  // namespace vrouter::edge
