// The fleet-wide admission budget, with the semantics the Redis store implements
// (store/store.h, AssignmentStore::Admit): one counter per server whose window starts at the first
// admission after the previous window expired (INCR, then PEXPIRE window on the first). While the
// count is under the cap, an admission increments it and returns the new count; at the cap it is
// refused with the window's remaining time. Simulated time; no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "router/base/time.h"

namespace vrouter::bench::fleetsim {

struct AdmitResult {
  bool admitted = false;
  std::uint32_t count = 0;                // admitted: placements in the window, this one too
  std::chrono::nanoseconds remaining{0};  // refused: until the window expires
};

class AdmissionBudget {
 public:
  explicit AdmissionBudget(std::size_t servers) : windows_(servers) {}

  AdmitResult Admit(std::size_t server, std::uint32_t cap, std::chrono::nanoseconds window,
                    base::SteadyTime now);

 private:
  struct Window {
    std::uint32_t count = 0;
    base::SteadyTime expires{};  // count is 0 (the key is absent) from here on
  };
  std::vector<Window> windows_;
};

}  // namespace vrouter::bench::fleetsim
