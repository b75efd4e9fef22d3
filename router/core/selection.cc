#include "router/core/selection.h"

namespace vrouter::core {

const VideoServer* PickLeastAssigned(const FleetSnapshot& fleet,
                                     const absl::flat_hash_map<std::string, std::int64_t>& load) {
  const VideoServer* best = nullptr;
  double best_utilization = 0;
  for (const VideoServer& s : fleet.servers()) {
    auto it = load.find(s.id);
    const std::int64_t assigned = it == load.end() ? 0 : it->second;
    if (assigned >= static_cast<std::int64_t>(s.capacity)) continue;
    const double utilization = static_cast<double>(assigned) / s.capacity;
    if (best == nullptr || utilization < best_utilization ||
        (utilization == best_utilization && s.id < best->id)) {
      best = &s;
      best_utilization = utilization;
    }
  }
  return best;
}

}  // namespace vrouter::core
