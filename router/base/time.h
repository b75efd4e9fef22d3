// The clock every time-dependent rule reads: a steady (monotonic) time point, injected by the
// caller so that pure logic never reads a clock itself.
#pragma once

#include <chrono>

namespace vrouter::base {

using SteadyTime = std::chrono::steady_clock::time_point;

}  // namespace vrouter::base
