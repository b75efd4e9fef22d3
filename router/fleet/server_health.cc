#include "router/fleet/server_health.h"

#include <algorithm>

namespace vrouter::fleet {

std::string_view StatsVerdictName(StatsVerdict verdict) {
  switch (verdict) {
    case StatsVerdict::kAccepted:
      return "accepted";
    case StatsVerdict::kBaseline:
      return "baseline";
    case StatsVerdict::kReset:
      return "reset";
    case StatsVerdict::kReordered:
      return "reordered";
  }
  return "unknown";
}

std::string_view ForwardingName(Forwarding f) {
  switch (f) {
    case Forwarding::kUnknown:
      return "unknown";
    case Forwarding::kIdle:
      return "idle";
    case Forwarding::kOk:
      return "ok";
    case Forwarding::kNotForwarding:
      return "not_forwarding";
    case Forwarding::kFrozen:
      return "frozen";
  }
  return "unknown";
}

CounterTracker::Result CounterTracker::Ingest(const proto::Stats& stats, base::SteadyTime now,
                                              std::chrono::milliseconds interval) {
  if (seq_known_ && last_ && stats.seq <= last_->seq) return {StatsVerdict::kReordered, {}};
  // Reports the counters' deltas span: by sequence number within a connection, else one.
  const std::uint64_t spanned = seq_known_ && last_ ? stats.seq - last_->seq : 1;
  const bool had_previous = last_.has_value();
  const proto::Stats previous = had_previous ? *last_ : proto::Stats{};
  const base::SteadyTime previous_at = last_at_;
  last_ = stats;
  last_at_ = now;
  seq_known_ = true;
  if (!had_previous) return {StatsVerdict::kBaseline, {}};
  if (stats.packets_in < previous.packets_in || stats.packets_out < previous.packets_out ||
      stats.bytes_in < previous.bytes_in || stats.bytes_out < previous.bytes_out) {
    return {StatsVerdict::kReset, {}};
  }
  const double arrival_gap = std::chrono::duration<double>(now - previous_at).count();
  const double floor = std::chrono::duration<double>(interval).count() *
                       static_cast<double>(std::min<std::uint64_t>(spanned, 1000));
  const double seconds = std::max(arrival_gap, floor);
  if (seconds <= 0) return {StatsVerdict::kBaseline, {}};  // no interval known, one clock tick
  StatsRates rates;
  rates.seconds = seconds;
  rates.packets_in = static_cast<double>(stats.packets_in - previous.packets_in) / seconds;
  rates.packets_out = static_cast<double>(stats.packets_out - previous.packets_out) / seconds;
  rates.bytes_in = static_cast<double>(stats.bytes_in - previous.bytes_in) / seconds;
  rates.bytes_out = static_cast<double>(stats.bytes_out - previous.bytes_out) / seconds;
  return {StatsVerdict::kAccepted, rates};
}

bool Still(const StatsRates& rates) {
  return rates.packets_in == 0 && rates.packets_out == 0 && rates.bytes_in == 0 &&
         rates.bytes_out == 0;
}

Forwarding JudgeForwarding(const StatsRates& rates, std::int64_t peers,
                           const ForwardingExpectation& expected, const ForwardingParams& params) {
  // Peers connected, yet not one packet moved, not even RTCP: the process is wedged (or lying).
  if (Still(rates) && peers > 0) return Forwarding::kFrozen;
  if (rates.packets_in < params.min_packets_in_rate) return Forwarding::kIdle;
  if (expected.streams_out == 0u) return Forwarding::kIdle;  // nothing to forward
  double expected_out = rates.packets_in;
  if (expected.streams_in && expected.streams_out && *expected.streams_in > 0) {
    expected_out *= static_cast<double>(*expected.streams_out) / *expected.streams_in;
  }
  if (rates.packets_out < params.min_out_in_ratio * expected_out) {
    return Forwarding::kNotForwarding;
  }
  return Forwarding::kOk;
}

}  // namespace vrouter::fleet
