#include "router/fleet/ejection.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <vector>

namespace vrouter::fleet {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(EjectionParamsTest, DefaultsAreDocumented) {
  const EjectionParams p;
  EXPECT_EQ(p.not_forwarding_reports, 3u);
  EXPECT_EQ(p.failure_share, 0.25);
  EXPECT_EQ(p.failure_min_reporters, 5u);
  EXPECT_EQ(p.failure_window, seconds(30));
  EXPECT_EQ(p.success_stdev_factor, 1.9);
  EXPECT_EQ(p.success_min_hosts, 5u);
  EXPECT_EQ(p.success_min_volume, 20u);
  EXPECT_EQ(p.base_ejection, seconds(30));
  EXPECT_EQ(p.max_ejection, seconds(300));
  EXPECT_EQ(p.max_ejected_share, 0.3);
}

TEST(EjectionTest, ReasonNames) {
  EXPECT_EQ(EjectReasonName(EjectReason::kNotForwarding), "not_forwarding");
  EXPECT_EQ(EjectReasonName(EjectReason::kFailureReports), "failure_reports");
  EXPECT_EQ(EjectReasonName(EjectReason::kSuccessRateOutlier), "success_rate_outlier");
  EXPECT_EQ(EjectReasonName(EjectReason::kRestartLoop), "restart_loop");
  EXPECT_EQ(kEjectReasonCount, 4);
}

// ---- EjectionDuration ----

TEST(EjectionDurationTest, BaseTimesCountCapped) {
  const EjectionParams p;
  EXPECT_EQ(EjectionDuration(0, p), seconds(30));  // treated as the first
  EXPECT_EQ(EjectionDuration(1, p), seconds(30));
  EXPECT_EQ(EjectionDuration(2, p), seconds(60));
  EXPECT_EQ(EjectionDuration(3, p), seconds(90));
  EXPECT_EQ(EjectionDuration(9, p), seconds(270));
  EXPECT_EQ(EjectionDuration(10, p), seconds(300));  // exactly the cap
  EXPECT_EQ(EjectionDuration(11, p), seconds(300));
  EXPECT_EQ(EjectionDuration(1000, p), seconds(300));
}

TEST(EjectionDurationTest, CapBelowBaseStillGivesBase) {
  EjectionParams p;
  p.base_ejection = seconds(30);
  p.max_ejection = seconds(10);
  EXPECT_EQ(EjectionDuration(1, p), seconds(30));
  EXPECT_EQ(EjectionDuration(5, p), seconds(30));
}

TEST(EjectionDurationTest, CapNotAMultipleOfBase) {
  EjectionParams p;
  p.base_ejection = milliseconds(700);
  p.max_ejection = milliseconds(2000);
  EXPECT_EQ(EjectionDuration(2, p), milliseconds(1400));
  EXPECT_EQ(EjectionDuration(3, p), milliseconds(2000));
}

// ---- MaxEjected ----

TEST(MaxEjectedTest, FloorOfTheShareButAtLeastOne) {
  const EjectionParams p;  // 30%
  EXPECT_EQ(MaxEjected(0, p), 1u);
  EXPECT_EQ(MaxEjected(1, p), 1u);
  EXPECT_EQ(MaxEjected(3, p), 1u);  // 0.9 -> 0 -> at least one
  EXPECT_EQ(MaxEjected(6, p), 1u);  // 1.8
  EXPECT_EQ(MaxEjected(7, p), 2u);  // 2.1
  EXPECT_EQ(MaxEjected(9, p), 2u);  // 2.7
  EXPECT_EQ(MaxEjected(10, p), 3u);
  EXPECT_EQ(MaxEjected(20, p), 6u);
  EXPECT_EQ(MaxEjected(100, p), 30u);
  EXPECT_EQ(MaxEjected(1000, p), 300u);
}

TEST(MaxEjectedTest, ExactMultiplesAreNotLostToFloatingPoint) {
  // 90 * 0.7 is 62.999999999999993 in binary floating point; 70% of 90 is 63.
  EjectionParams p;
  p.max_ejected_share = 0.7;
  EXPECT_EQ(MaxEjected(90, p), 63u);
  EXPECT_EQ(MaxEjected(89, p), 62u);  // 62.3
  for (std::size_t n = 0; n <= 2000; n += 10) {
    p.max_ejected_share = 0.3;
    EXPECT_EQ(MaxEjected(n, p), std::max<std::size_t>(1, n * 3 / 10)) << n;
    p.max_ejected_share = 0.7;
    EXPECT_EQ(MaxEjected(n, p), std::max<std::size_t>(1, n * 7 / 10)) << n;
  }
}

TEST(MaxEjectedTest, ShareIsClamped) {
  EjectionParams p;
  p.max_ejected_share = 0;
  EXPECT_EQ(MaxEjected(10, p), 1u);
  p.max_ejected_share = -1;
  EXPECT_EQ(MaxEjected(10, p), 1u);
  p.max_ejected_share = 1;
  EXPECT_EQ(MaxEjected(10, p), 10u);
  p.max_ejected_share = 5;
  EXPECT_EQ(MaxEjected(10, p), 10u);
}

// ---- FailureSharePasses ----

TEST(FailureSharePassesTest, FewerThanMinReportersAlwaysPasses) {
  const EjectionParams p;
  EXPECT_TRUE(FailureSharePasses(0, 0, p));
  EXPECT_TRUE(FailureSharePasses(4, 4, p));    // 100% of its users, but only 4
  EXPECT_TRUE(FailureSharePasses(4, 0, p));    // more reporters than placed users
  EXPECT_TRUE(FailureSharePasses(4, 100, p));  // min_reporters - 1
}

TEST(FailureSharePassesTest, ShareAtTheBoundFailsJustUnderPasses) {
  const EjectionParams p;
  EXPECT_FALSE(FailureSharePasses(5, 20, p));  // exactly 25%
  EXPECT_TRUE(FailureSharePasses(5, 21, p));   // 23.8%
  EXPECT_FALSE(FailureSharePasses(5, 19, p));
  EXPECT_FALSE(FailureSharePasses(10, 40, p));  // exactly 25%
  EXPECT_TRUE(FailureSharePasses(10, 41, p));
  EXPECT_TRUE(FailureSharePasses(24, 100, p));
  EXPECT_FALSE(FailureSharePasses(25, 100, p));
}

TEST(FailureSharePassesTest, MoreReportersThanUsersCountsAsAllOfThem) {
  // Users who already moved away still reported: the base is never below the reporters.
  const EjectionParams p;
  EXPECT_FALSE(FailureSharePasses(5, 0, p));
  EXPECT_FALSE(FailureSharePasses(5, 3, p));
}

TEST(FailureSharePassesTest, ParamsAreHonoured) {
  EjectionParams p;
  p.failure_min_reporters = 2;
  p.failure_share = 0.5;
  EXPECT_TRUE(FailureSharePasses(1, 1, p));
  EXPECT_FALSE(FailureSharePasses(2, 4, p));
  EXPECT_TRUE(FailureSharePasses(2, 5, p));
}

// ---- SuccessRateOutliers ----

// Each sample's reporters are its failing users.
std::vector<SuccessSample> Samples(std::initializer_list<double> rates, std::int64_t volume = 20) {
  std::vector<SuccessSample> out;
  for (double r : rates) {
    out.push_back({r, volume, static_cast<std::uint32_t>(std::lround((1 - r) * volume))});
  }
  return out;
}

TEST(SuccessRateOutliersTest, OneBadServerAmongFiveIsAnOutlier) {
  // mean 0.9, stdev 0.2: threshold 0.9 - 1.9 * 0.2 = 0.52.
  const auto samples = Samples({1, 1, 1, 1, 0.5});
  const auto out = SuccessRateOutliers(samples, EjectionParams{});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], 4u);
}

TEST(SuccessRateOutliersTest, JustAboveTheThresholdIsNot) {
  // With one low server among n, its distance is always sqrt(n - 1) stdevs: 2 for five hosts.
  // A factor of 2.01 spares it, 1.99 does not.
  EjectionParams p;
  const auto samples = Samples({1, 1, 1, 1, 0.5});
  p.success_stdev_factor = 2.01;
  EXPECT_TRUE(SuccessRateOutliers(samples, p).empty());
  p.success_stdev_factor = 1.99;
  EXPECT_EQ(SuccessRateOutliers(samples, p).size(), 1u);
}

TEST(SuccessRateOutliersTest, ExactlyAtTheThresholdIsNotAnOutlier) {
  // Three at 1 and three at 0: mean 0.5, stdev 0.5 (exact in binary). Factor 1: threshold 0.
  EjectionParams p;
  p.success_stdev_factor = 1;
  const auto samples = Samples({1, 0, 1, 0, 1, 0});
  EXPECT_TRUE(SuccessRateOutliers(samples, p).empty());
  p.success_stdev_factor = 0.99;
  EXPECT_EQ(SuccessRateOutliers(samples, p), (std::vector<std::size_t>{1, 3, 5}));
}

// Issue 22, case 1: with four servers at 100 %, any failure on the fifth sits at -2.0 deviations.
// One report (or three) of 45 users must not make it an outlier: too few reporters, and too close
// to the mean once the deviation has its floor.
TEST(SuccessRateOutliersTest, AFewReportsAmongManyUsersAreNoOutlier) {
  for (const double failing : {1.0, 3.0}) {
    const auto samples = Samples({1, 1, 1, 1, 1 - failing / 45}, 45);
    EXPECT_TRUE(SuccessRateOutliers(samples, EjectionParams{}).empty()) << failing;
  }
}

TEST(SuccessRateOutliersTest, TheDeviationHasAFloor) {
  // Five reporters of 100 users (95 %) among servers at 100 %: the fleet's own deviation is 0.02,
  // which would put the threshold at 0.952. The floor (0.05) puts it at 0.895.
  const auto samples = Samples({1, 1, 1, 1, 0.95}, 100);
  EXPECT_TRUE(SuccessRateOutliers(samples, EjectionParams{}).empty());
  EjectionParams no_floor;
  no_floor.success_min_stdev = 0;
  EXPECT_EQ(SuccessRateOutliers(samples, no_floor), (std::vector<std::size_t>{4}));
}

TEST(SuccessRateOutliersTest, AnOutlierNeedsTheMinimumOfDistinctReporters) {
  auto samples = Samples({1, 1, 1, 1, 0.5});  // ten of twenty fail
  samples[4].reporters = 4;                   // ... said by four distinct reporters
  EXPECT_TRUE(SuccessRateOutliers(samples, EjectionParams{}).empty());
  samples[4].reporters = 5;
  EXPECT_EQ(SuccessRateOutliers(samples, EjectionParams{}).size(), 1u);
}

TEST(SuccessRateOutliersTest, ZeroStdevGivesNoOutliers) {
  EXPECT_TRUE(SuccessRateOutliers(Samples({0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9}), {}).empty());
  EXPECT_TRUE(SuccessRateOutliers(Samples({0.1, 0.1, 0.1, 0.1, 0.1}), {}).empty());
  EXPECT_TRUE(SuccessRateOutliers(Samples({1, 1, 1, 1, 1}), {}).empty());
  EjectionParams p;
  p.success_stdev_factor = 0;  // threshold = mean: nobody is strictly under it
  EXPECT_TRUE(SuccessRateOutliers(Samples({0.7, 0.7, 0.7, 0.7, 0.7}), p).empty());
}

TEST(SuccessRateOutliersTest, TooFewQualifyingHostsGivesNone) {
  // Four hosts (min_hosts - 1), one terrible.
  EXPECT_TRUE(SuccessRateOutliers(Samples({1, 1, 1, 0}), {}).empty());
  // Five hosts but one under the volume: still four qualifying.
  auto samples = Samples({1, 1, 1, 1, 0});
  samples[0].volume = 19;
  EXPECT_TRUE(SuccessRateOutliers(samples, {}).empty());
  EXPECT_TRUE(SuccessRateOutliers({}, {}).empty());
}

TEST(SuccessRateOutliersTest, LowVolumeHostsAreNeitherCountedNorEjected) {
  auto samples = Samples({1, 1, 1, 1, 0.5});
  samples.push_back({0.0, 19, 19});  // terrible but too small to judge
  samples.push_back({0.0, 0, 0});
  const auto out = SuccessRateOutliers(samples, {});
  // The small ones do not drag the mean down (which would hide index 4) and are not returned.
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], 4u);
}

TEST(SuccessRateOutliersTest, VolumeExactlyAtTheMinimumQualifies) {
  auto samples = Samples({1, 1, 1, 1, 0.5}, 20);
  EXPECT_EQ(SuccessRateOutliers(samples, {}).size(), 1u);
  samples[4].volume = 19;
  EXPECT_TRUE(SuccessRateOutliers(samples, {}).empty());
}

TEST(SuccessRateOutliersTest, MinHostsParamIsHonoured) {
  EjectionParams p;
  p.success_min_hosts = 3;
  p.success_stdev_factor = 1.0;
  // Three hosts: 1, 1, 0: mean 2/3, stdev sqrt(2)/3 = 0.471; threshold 0.195.
  const auto out = SuccessRateOutliers(Samples({1, 1, 0}), p);
  EXPECT_EQ(out, (std::vector<std::size_t>{2}));
  p.success_min_hosts = 4;
  EXPECT_TRUE(SuccessRateOutliers(Samples({1, 1, 0}), p).empty());
}

TEST(SuccessRateOutliersTest, SeveralOutliersInALargeFleet) {
  // Eighteen at 1, two at 0: mean 0.9, stdev 0.3, threshold 0.33.
  std::vector<SuccessSample> samples(20, SuccessSample{1, 100});
  samples[3] = {0, 100, 100};
  samples[17] = {0, 100, 100};
  EXPECT_EQ(SuccessRateOutliers(samples, {}), (std::vector<std::size_t>{3, 17}));
}

}  // namespace
}  // namespace vrouter::fleet
