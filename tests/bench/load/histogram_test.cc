#include "bench/load/histogram.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace vrouter::bench::load {
namespace {

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  for (std::uint64_t v = 0; v < 128; ++v) {
    EXPECT_EQ(LatencyHistogram::LowerBound(LatencyHistogram::BucketOf(v)), v);
  }
}

TEST(LatencyHistogramTest, BucketsAreUnderOnePercentWideAndContainTheirValues) {
  for (std::uint64_t v = 128; v < (std::uint64_t{1} << 36); v = v * 3 / 2 + 7) {
    const auto b = LatencyHistogram::BucketOf(v);
    const auto lower = LatencyHistogram::LowerBound(b);
    const auto next = LatencyHistogram::LowerBound(b + 1);
    EXPECT_LE(lower, v);
    EXPECT_GT(next, v);
    EXPECT_LT(static_cast<double>(next - lower) / static_cast<double>(lower), 0.008) << v;
  }
}

TEST(LatencyHistogramTest, PercentilesOfAUniformRun) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 10000; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.max(), 10000u);
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.5)), 5000, 5000 * 0.01);
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.99)), 9900, 9900 * 0.01);
  EXPECT_NEAR(static_cast<double>(h.Percentile(0.999)), 9990, 9990 * 0.01);
  EXPECT_EQ(h.Percentile(0.0001), 1u);
  EXPECT_EQ(LatencyHistogram().Percentile(0.5), 0u);
}

TEST(LatencyHistogramTest, OneSlowRequestInAThousandIsTheP999) {
  LatencyHistogram h;
  for (int i = 0; i < 999; ++i) h.Record(100);
  h.Record(50'000);
  EXPECT_EQ(h.Percentile(0.99), 100u);
  EXPECT_EQ(h.Percentile(0.999), 100u);  // rank 999 of 1000
  EXPECT_NEAR(static_cast<double>(h.Percentile(1.0)), 50'000, 500);
}

TEST(LatencyHistogramTest, MergeAddsCountsAndResetEmpties) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.Record(10);
  b.Record(10);
  b.Record(1'000'000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 1'000'000u);
  a.Reset();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.Percentile(0.5), 0u);
}

TEST(LatencyHistogramTest, HugeValuesAreClamped) {
  LatencyHistogram h;
  h.Record(~std::uint64_t{0});
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValue);
  EXPECT_LE(h.Percentile(1.0), LatencyHistogram::kMaxValue);
}

TEST(LatencyHistogramTest, JsonListsNonEmptyBucketsByLowerBound) {
  LatencyHistogram h;
  h.Record(5);
  h.Record(5);
  h.Record(300);
  const auto v = h.ToJson();
  EXPECT_EQ(v.at("unit"), "us");
  const auto& buckets = v.at("buckets").as_array();
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(buckets[0].as_array()[0].to_number<int>(), 5);
  EXPECT_EQ(buckets[0].as_array()[1].to_number<int>(), 2);
  EXPECT_EQ(buckets[1].as_array()[0].to_number<std::uint64_t>(),
            LatencyHistogram::LowerBound(LatencyHistogram::BucketOf(300)));
}

}  // namespace
}  // namespace vrouter::bench::load
