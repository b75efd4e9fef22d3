#include "bench/sim/media_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

namespace vrouter::bench::sim {
namespace {

constexpr std::array<std::pair<Behavior, std::string_view>, 7> kNames = {{
    {Behavior::kHealthy, "healthy"},
    {Behavior::kBlackhole, "blackhole"},
    {Behavior::kFrozen, "frozen"},
    {Behavior::kRestart, "restart"},
    {Behavior::kDead, "dead"},
    {Behavior::kFlapping, "flapping"},
    {Behavior::kGarbage, "garbage"},
}};

constexpr std::uint64_t kMaxFanout = 8;
constexpr double kIdleCpu = 0.05;
constexpr double kLoadCpu = 0.8;

}  // namespace

std::string_view BehaviorName(Behavior behavior) {
  for (const auto& [b, name] : kNames) {
    if (b == behavior) return name;
  }
  return "unknown";
}

std::optional<Behavior> BehaviorFromName(std::string_view name) {
  for (const auto& [b, n] : kNames) {
    if (n == name) return b;
  }
  return std::nullopt;
}

std::uint64_t Fanout(std::uint32_t assigned) {
  if (assigned <= 1) return 0;
  return std::min<std::uint64_t>(assigned - 1, kMaxFanout);
}

MediaModel::MediaModel(BehaviorSpec spec, ModelParams params) : spec_(spec), params_(params) {
  if (params_.capacity == 0) params_.capacity = 1;
  if (!(params_.pps >= 0)) params_.pps = 0;
  if (!(params_.flap_period > 0)) params_.flap_period = 1;
}

bool MediaModel::WantsConnection(double t) const {
  if (!Switched(t)) return true;
  switch (spec_.behavior) {
    case Behavior::kDead:
      return false;
    case Behavior::kFlapping: {
      const auto half = static_cast<std::int64_t>(std::floor((t - spec_.at) / params_.flap_period));
      return half % 2 == 1;  // down first, then up, then down...
    }
    default:
      return true;
  }
}

bool MediaModel::RestartDue(double t) const {
  return spec_.behavior == Behavior::kRestart && Switched(t) && !restarted_;
}

void MediaModel::Restart(double t) {
  seq_ = 0;
  packets_in_exact_ = 0;
  packets_in_ = 0;
  packets_out_ = 0;
  last_t_ = t;
  restarted_ = true;
}

bool MediaModel::GarbageDue(double t) const {
  return spec_.behavior == Behavior::kGarbage && Switched(t) && !garbage_sent_;
}

Behavior MediaModel::MediaBehavior(double t) const {
  if (!Switched(t)) return Behavior::kHealthy;
  switch (spec_.behavior) {
    case Behavior::kBlackhole:
    case Behavior::kFrozen:
      return spec_.behavior;
    default:
      return Behavior::kHealthy;
  }
}

proto::Stats MediaModel::NextStats(double t, std::uint32_t assigned) {
  const double dt = std::max(0.0, t - last_t_);
  last_t_ = std::max(last_t_, t);
  const Behavior behavior = MediaBehavior(t);

  proto::Stats s;
  s.seq = seq_++;
  ++reports_;
  const double healthy_cpu =
      std::min(1.0, kIdleCpu + kLoadCpu * static_cast<double>(assigned) / params_.capacity);
  switch (behavior) {
    case Behavior::kFrozen:
      s.peers = s.media_peers = assigned;
      s.cpu = healthy_cpu;
      break;
    case Behavior::kBlackhole: {
      packets_in_exact_ += static_cast<double>(assigned) * params_.pps * dt;
      packets_in_ = static_cast<std::uint64_t>(packets_in_exact_);
      s.peers = s.media_peers = std::min<std::uint32_t>(assigned, 2);
      s.cpu = kIdleCpu;
      break;
    }
    default: {
      packets_in_exact_ += static_cast<double>(assigned) * params_.pps * dt;
      const auto in = static_cast<std::uint64_t>(packets_in_exact_);
      packets_out_ += (in - packets_in_) * Fanout(assigned);
      packets_in_ = in;
      s.peers = s.media_peers = assigned;
      s.cpu = healthy_cpu;
      break;
    }
  }
  // What it should be forwarding (PROTOCOL.md 14.4.2): a stream in per user with media, each
  // sent to the others of its room. A black hole and a frozen server claim the same: they do not
  // know, or do not say, that nothing leaves.
  s.streams_in = s.peers == 0 && behavior != Behavior::kBlackhole ? 0 : assigned;
  s.streams_out = assigned * static_cast<std::uint32_t>(Fanout(assigned));
  s.packets_in = packets_in_;
  s.packets_out = packets_out_;
  s.bytes_in = packets_in_ * params_.bytes_per_packet;
  s.bytes_out = packets_out_ * params_.bytes_per_packet;
  return s;
}

}  // namespace vrouter::bench::sim
