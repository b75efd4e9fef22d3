// Latency histogram of the load generator: log-linear buckets (128 per power of two, so each
// bucket is under 0.8% wide) over microseconds, cheap to record (no allocation after
// construction) and mergeable across processes by adding counts of equal lower bounds, which is
// how bench/run combines the generators' reports. Pure: no I/O.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <vector>

namespace vrouter::bench::load {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;  // 128 sub-buckets per power of two
  static constexpr std::uint64_t kMaxValue = std::uint64_t{1} << 40;  // ~12.7 days in µs

  LatencyHistogram();

  void Record(std::uint64_t value);  // values above kMaxValue count as kMaxValue
  void Merge(const LatencyHistogram& other);
  void Reset();

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  // The lower bound of the bucket holding the q-quantile (0 < q <= 1); 0 when empty.
  std::uint64_t Percentile(double q) const;

  // {"unit":"us","buckets":[[lower,count],...]} with empty buckets left out.
  boost::json::value ToJson() const;

  static std::size_t BucketOf(std::uint64_t value);
  static std::uint64_t LowerBound(std::size_t bucket);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace vrouter::bench::load
