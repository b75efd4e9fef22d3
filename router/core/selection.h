// Choosing a video server for a join. Pure: inputs in, choice out.
//
// Foundation rule (until health-aware scoring lands): least assigned relative to capacity,
// counted from the router's own assignment table, never from the server's self-report.
// Servers at or above capacity are skipped. Ties go to the lowest id, so the result is
// deterministic for tests.
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "router/core/fleet.h"

namespace vrouter::core {

const VideoServer* PickLeastAssigned(const FleetSnapshot& fleet,
                                     const absl::flat_hash_map<std::string, std::int64_t>& load);

}  // namespace vrouter::core
