// The fleet-wide admission budget, with the semantics the Redis store implements
// (store/store.h, AssignmentStore::Admit; store/redis_schema.cc, kAdmitScript): one counter per
// server whose window starts at the first admission after the previous window expired. While the
// count is under the cap, an admission increments it and returns the new count; at the cap it is
// refused with the window's remaining time. Each admission is also remembered for `horizon`, and
// none is admitted while those remembered fill the caller's `room` (refused until the oldest is
// forgotten). Simulated time; no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
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
  explicit AdmissionBudget(std::size_t servers) : windows_(servers), reports_(servers) {}

  AdmitResult Admit(std::size_t server, std::uint32_t cap, std::uint32_t room,
                    std::chrono::nanoseconds window, std::chrono::nanoseconds horizon,
                    base::SteadyTime now);
  // The proposal (scenario.h, Admission::kSharedPerReport): one count per server and report seq
  // (the seq of the report the caller's view of the server is based on), kept for that seq and
  // the one before it (a replica the newer report has not reached yet keeps counting there). A
  // refusal's remaining time is the rest of an interval from the seq's first admission.
  AdmitResult AdmitInReport(std::size_t server, std::uint64_t seq, std::uint32_t cap,
                            std::chrono::nanoseconds interval, base::SteadyTime now);

 private:
  struct Window {
    std::uint32_t count = 0;
    base::SteadyTime expires{};           // count is 0 (the key is absent) from here on
    std::deque<base::SteadyTime> recent;  // admissions, oldest first
  };
  std::vector<Window> windows_;
  struct ReportCount {
    std::uint64_t seq = 0;
    std::uint32_t count = 0;
    base::SteadyTime opened{};
  };
  struct ReportCounts {
    ReportCount current, previous;
  };
  std::vector<ReportCounts> reports_;
};

}  // namespace vrouter::bench::fleetsim
