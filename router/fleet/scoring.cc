#include "router/fleet/scoring.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "router/base/absl_compat.h"

namespace vrouter::fleet {

std::string_view ServerStateName(ServerState state) {
  switch (state) {
    case ServerState::kPending:
      return "pending";
    case ServerState::kActive:
      return "active";
    case ServerState::kDraining:
      return "draining";
    case ServerState::kEjected:
      return "ejected";
    case ServerState::kStale:
      return "stale";
    case ServerState::kGone:
      return "gone";
  }
  return "unknown";
}

std::string_view IneligibleName(Ineligible why) {
  switch (why) {
    case Ineligible::kEligible:
      return "eligible";
    case Ineligible::kState:
      return "state";
    case Ineligible::kNotForwarding:
      return "not_forwarding";
    case Ineligible::kFailureReports:
      return "failure_reports";
    case Ineligible::kFull:
      return "full";
    case Ineligible::kIntervalCap:
      return "interval_cap";
    case Ineligible::kProbation:
      return "probation";
  }
  return "unknown";
}

std::string_view PickTierName(PickTier tier) {
  switch (tier) {
    case PickTier::kNone:
      return "none";
    case PickTier::kRegion:
      return "region";
    case PickTier::kRegionGroup:
      return "region_group";
    case PickTier::kAnywhere:
      return "anywhere";
  }
  return "unknown";
}

double SlowStartWeight(std::chrono::nanoseconds elapsed, const ScoringParams& params) {
  const double window = std::chrono::duration<double>(params.slow_start_window).count();
  if (window <= 0) return 1;
  const double t = std::chrono::duration<double>(elapsed).count() / window;
  if (t >= 1) return 1;
  const double floor = std::clamp(params.slow_start_min_weight, 0.01, 1.0);
  return floor + (1 - floor) * std::max(0.0, t);
}

Score ScoreServer(const ScoreInput& in, const ScoringParams& params, Evidence evidence) {
  Score s;
  const double capacity = std::max<double>(1, in.server->capacity);
  const double pending = static_cast<double>(in.pending);
  const bool penalty = evidence == Evidence::kAll;
  const bool concrete = evidence != Evidence::kNone;
  s.effective_load = std::max({in.reported_load + pending, in.counter_load + pending,
                               static_cast<double>(in.own)}) +
                     (penalty ? in.failure_share * capacity * params.failure_penalty_factor : 0);
  const bool swallowing =
      in.forwarding == Forwarding::kNotForwarding || in.forwarding == Forwarding::kFrozen;
  if (swallowing && concrete) s.effective_load = std::max(s.effective_load, capacity);
  const double weight = std::clamp(in.weight, 0.01, 1.0);
  s.utilization = std::max(s.effective_load / capacity, (1 - weight) * in.fleet_utilization);
  const double full_cap =
      std::max(static_cast<double>(params.max_new_users_per_interval),
               std::floor(params.new_users_per_interval_capacity_share * capacity));
  s.interval_cap = std::max<std::uint32_t>(
      1, static_cast<std::uint32_t>(std::floor(std::min(full_cap * weight, 1e9))));
  if (in.cap_share > 1) s.interval_cap = (s.interval_cap + in.cap_share - 1) / in.cap_share;
  if (in.probation) s.interval_cap = 1;
  if (in.state != ServerState::kActive) {
    s.ineligible = Ineligible::kState;
  } else if (swallowing && concrete) {
    s.ineligible = Ineligible::kNotForwarding;
  } else if (in.failing_reports && concrete) {
    s.ineligible = Ineligible::kFailureReports;
  } else if (s.effective_load + 1 > capacity * weight) {
    s.ineligible = Ineligible::kFull;
  } else if (in.admission_closed || in.new_this_interval >= s.interval_cap) {
    s.ineligible = Ineligible::kIntervalCap;
  } else if (in.probation && in.own + in.pending >= params.probation_max_users) {
    s.ineligible = Ineligible::kProbation;
  }
  return s;
}

std::uint32_t AdmissionRoom(const ScoreInput& in) {
  const double capacity =
      std::max<double>(1, in.server->capacity) * std::clamp(in.weight, 0.01, 1.0);
  const double room = std::floor(
      capacity - std::max({in.reported_load, in.counter_load, static_cast<double>(in.own)}));
  if (room < 1) return 0;
  return static_cast<std::uint32_t>(std::min<double>(room, 1e9));
}

std::uint32_t AdmissionCap(const ScoreInput& in, const Score& score) {
  return std::clamp<std::uint32_t>(AdmissionRoom(in), 1,
                                   std::max<std::uint32_t>(score.interval_cap, 1));
}

PickTier TierOf(const VideoServer& server, const PickRequest& request,
                const ScoringParams& params) {
  if (request.region.empty()) return PickTier::kAnywhere;
  if (server.region == request.region) return PickTier::kRegion;
  const auto mine = params.region_group.find(AsAbsl(request.region));
  const auto theirs = params.region_group.find(server.region);
  if (mine != params.region_group.end() && theirs != params.region_group.end() &&
      mine->second == theirs->second) {
    return PickTier::kRegionGroup;
  }
  return PickTier::kAnywhere;
}

PickResult PickServer(std::span<const ScoreInput> inputs, std::span<const Score> scores,
                      const PickRequest& request, const ScoringParams& params,
                      std::mt19937_64& rng) {
  PickResult result;
  // The best (lowest) tier that has an eligible server.
  PickTier best = PickTier::kNone;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!scores[i].eligible()) continue;
    const PickTier tier = TierOf(*inputs[i].server, request, params);
    if (best == PickTier::kNone || tier < best) best = tier;
    if (best == PickTier::kRegion) break;
  }
  if (best == PickTier::kNone) return result;
  result.tier = best;

  thread_local std::vector<int> candidates;
  candidates.clear();
  int affinity = -1;
  std::int64_t affinity_members = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!scores[i].eligible() || TierOf(*inputs[i].server, request, params) != best) continue;
    candidates.push_back(static_cast<int>(i));
    // A server in slow start takes users only through the two choices: its share grows with its
    // record, not with the spaces it happens to hold (affinity would pull whole spaces onto it).
    if (request.space_servers == nullptr || inputs[i].weight < 1 ||
        scores[i].utilization >= params.space_affinity_max_utilization) {
      continue;
    }
    const auto it = request.space_servers->find(inputs[i].server->id);
    if (it == request.space_servers->end() || it->second <= 0) continue;
    // Most members of the space wins; on a tie, the lower utilization.
    if (affinity < 0 || it->second > affinity_members ||
        (it->second == affinity_members && scores[i].utilization < scores[affinity].utilization)) {
      affinity = static_cast<int>(i);
      affinity_members = it->second;
    }
  }
  result.candidates = static_cast<int>(candidates.size());
  if (affinity >= 0) {
    result.index = affinity;
    result.affinity = true;
    return result;
  }
  if (candidates.size() == 1) {
    result.index = candidates[0];
    return result;
  }
  // Power of two choices: two distinct candidates at random, the less utilized wins.
  std::uniform_int_distribution<std::size_t> first(0, candidates.size() - 1);
  std::uniform_int_distribution<std::size_t> second(0, candidates.size() - 2);
  const std::size_t a = first(rng);
  std::size_t b = second(rng);
  if (b >= a) ++b;
  int x = candidates[a], y = candidates[b];
  if (scores[y].utilization < scores[x].utilization) std::swap(x, y);
  result.index = x;
  result.sampled_other = y;
  return result;
}

}  // namespace vrouter::fleet
