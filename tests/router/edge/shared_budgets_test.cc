#include "router/edge/shared_budgets.h"

#include <gtest/gtest.h>

namespace vrouter::edge {
namespace {

using namespace std::chrono_literals;
using Verdict = RateLimiter::Verdict;
constexpr std::size_t kLookup = 3;

RateLimits LookupLimit(double rate, double burst) {
  RateLimits l;
  l.by_type[kLookup] = {rate, burst};
  return l;
}

TEST(SharedBudgets, EveryHolderOfAKeyDrawsFromTheSameBuckets) {
  SharedBudgets budgets;
  const base::SteadyTime t{std::chrono::seconds(100)};
  const auto limits = LookupLimit(1, 3);
  auto first = budgets.Get("alice");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(first->Admit(kLookup, t, limits), Verdict::kAllow);
  // A new connection of the same user (a reconnect) gets the same, empty, buckets.
  auto second = budgets.Get("alice");
  EXPECT_EQ(second.get(), first.get());
  first.reset();
  EXPECT_EQ(second->Admit(kLookup, t, limits), Verdict::kRefuse);
  // Another key has its own.
  EXPECT_EQ(budgets.Get("bob")->Admit(kLookup, t, limits), Verdict::kAllow);
}

TEST(SharedBudgets, SweepForgetsOnlyIdleBudgetsNobodyHolds) {
  SharedBudgets budgets;
  const base::SteadyTime t{std::chrono::seconds(100)};
  const auto limits = LookupLimit(1, 1);
  auto held = budgets.Get("held");
  held->Admit(kLookup, t, limits);
  budgets.Get("idle")->Admit(kLookup, t, limits);
  budgets.Get("recent")->Admit(kLookup, t + 50s, limits);
  EXPECT_EQ(budgets.size(), 3u);
  EXPECT_EQ(budgets.Sweep(t + 10s), 1u);  // "idle": unheld and unused since t
  EXPECT_EQ(budgets.size(), 2u);
  held.reset();
  EXPECT_EQ(budgets.Sweep(t + 60s), 2u);
  EXPECT_EQ(budgets.size(), 0u);
}

}  // namespace
}  // namespace vrouter::edge
