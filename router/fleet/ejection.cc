#include "router/fleet/ejection.h"

#include <algorithm>
#include <cmath>

namespace vrouter::fleet {

std::string_view EjectReasonName(EjectReason reason) {
  switch (reason) {
    case EjectReason::kNotForwarding:
      return "not_forwarding";
    case EjectReason::kRestartLoop:
      return "restart_loop";
    case EjectReason::kFailureReports:
      return "failure_reports";
    case EjectReason::kSuccessRateOutlier:
      return "success_rate_outlier";
  }
  return "unknown";
}

std::chrono::milliseconds EjectionDuration(std::uint32_t times, const EjectionParams& params) {
  const auto scaled = params.base_ejection * std::max<std::uint32_t>(1, times);
  return std::min(scaled, std::max(params.max_ejection, params.base_ejection));
}

std::size_t MaxEjected(std::size_t fleet_size, const EjectionParams& params) {
  // The epsilon keeps exact products exact: 90 * 0.7 is 62.999999999999993 in binary.
  const auto share = static_cast<std::size_t>(std::floor(
      static_cast<double>(fleet_size) * std::clamp(params.max_ejected_share, 0.0, 1.0) + 1e-9));
  return std::max<std::size_t>(1, share);
}

bool FailureSharePasses(std::uint32_t reporters, std::int64_t users, const EjectionParams& params) {
  if (reporters < params.failure_min_reporters) return true;
  const double base = static_cast<double>(std::max<std::int64_t>(users, reporters));
  return static_cast<double>(reporters) / base < params.failure_share;
}

std::vector<std::size_t> SuccessRateOutliers(std::span<const SuccessSample> samples,
                                             const EjectionParams& params) {
  std::vector<std::size_t> out;
  double sum = 0;
  std::size_t hosts = 0;
  for (const auto& s : samples) {
    if (s.volume < params.success_min_volume) continue;
    sum += s.success_rate;
    ++hosts;
  }
  if (hosts < params.success_min_hosts || hosts == 0) return out;
  const double mean = sum / static_cast<double>(hosts);
  double variance = 0;
  for (const auto& s : samples) {
    if (s.volume < params.success_min_volume) continue;
    variance += (s.success_rate - mean) * (s.success_rate - mean);
  }
  const double stdev =
      std::max(std::sqrt(variance / static_cast<double>(hosts)), params.success_min_stdev);
  const double threshold = mean - params.success_stdev_factor * stdev;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].volume >= params.success_min_volume && samples[i].success_rate < threshold &&
        samples[i].reporters >= params.failure_min_reporters) {
      out.push_back(i);
    }
  }
  return out;
}

}  // namespace vrouter::fleet
