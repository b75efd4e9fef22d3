#include "bench/load/histogram.h"

#include <algorithm>
#include <bit>
#include <boost/json.hpp>
#include <cmath>

namespace vrouter::bench::load {
namespace {
constexpr std::uint64_t kSubCount = std::uint64_t{1} << LatencyHistogram::kSubBits;
}  // namespace

std::size_t LatencyHistogram::BucketOf(std::uint64_t value) {
  value = std::min(value, kMaxValue);
  if (value < kSubCount) return static_cast<std::size_t>(value);
  // value in [2^(kSubBits+e), 2^(kSubBits+e+1)): shift by e keeps kSubBits+1 significant bits.
  const int e = std::bit_width(value) - 1 - kSubBits;
  return static_cast<std::size_t>((e + 1) * kSubCount + (value >> e) - kSubCount);
}

std::uint64_t LatencyHistogram::LowerBound(std::size_t bucket) {
  if (bucket < kSubCount) return bucket;
  const std::size_t e = bucket / kSubCount - 1;
  return (kSubCount + bucket % kSubCount) << e;
}

LatencyHistogram::LatencyHistogram() : counts_(BucketOf(kMaxValue) + 1, 0) {}

void LatencyHistogram::Record(std::uint64_t value) {
  ++counts_[BucketOf(value)];
  ++count_;
  max_ = std::max(max_, std::min(value, kMaxValue));
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::Reset() {
  if (count_ == 0) return;
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  max_ = 0;
}

std::uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(
      std::max(1.0, std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return LowerBound(i);
  }
  return LowerBound(counts_.size() - 1);
}

boost::json::value LatencyHistogram::ToJson() const {
  boost::json::array buckets;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    buckets.push_back(boost::json::array{LowerBound(i), counts_[i]});
  }
  return boost::json::object{{"unit", "us"}, {"buckets", std::move(buckets)}};
}

}  // namespace vrouter::bench::load
