#include "bench/fleetsim/admission_budget.h"

namespace vrouter::bench::fleetsim {

AdmitResult AdmissionBudget::Admit(std::size_t server, std::uint32_t cap,
                                   std::chrono::nanoseconds window, base::SteadyTime now) {
  Window& w = windows_.at(server);
  if (now >= w.expires) w.count = 0;  // the key expired
  if (w.count >= cap) return {false, w.count, w.expires - now};
  if (++w.count == 1) w.expires = now + window;  // PEXPIRE on the first INCR
  return {true, w.count, {}};
}

}  // namespace vrouter::bench::fleetsim
