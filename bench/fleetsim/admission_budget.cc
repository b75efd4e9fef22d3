#include "bench/fleetsim/admission_budget.h"

#include <algorithm>

namespace vrouter::bench::fleetsim {

AdmitResult AdmissionBudget::Admit(std::size_t server, std::uint32_t cap, std::uint32_t room,
                                   std::chrono::nanoseconds window,
                                   std::chrono::nanoseconds horizon, base::SteadyTime now) {
  Window& w = windows_.at(server);
  if (now >= w.expires) w.count = 0;  // the key expired
  if (w.count >= cap) return {false, w.count, w.expires - now};
  while (!w.recent.empty() && w.recent.front() <= now - horizon) w.recent.pop_front();
  if (w.recent.size() >= room) {
    const auto wait = w.recent.empty() ? window : w.recent.front() + horizon - now;
    return {false, w.count, std::max<std::chrono::nanoseconds>(wait, std::chrono::milliseconds(1))};
  }
  if (++w.count == 1) w.expires = now + window;  // PEXPIRE on the first INCR
  w.recent.push_back(now);
  return {true, w.count, {}};
}

AdmitResult AdmissionBudget::AdmitInReport(std::size_t server, std::uint64_t seq, std::uint32_t cap,
                                           std::chrono::nanoseconds interval,
                                           base::SteadyTime now) {
  ReportCounts& r = reports_.at(server);
  if (seq > r.current.seq) {
    r.previous = r.current;
    r.current = {seq, 0, now};
  }
  ReportCount& c = seq == r.previous.seq && seq != r.current.seq ? r.previous : r.current;
  if (c.count >= cap) {
    const auto left = c.opened + interval - now;
    return {false, c.count, std::max<std::chrono::nanoseconds>(left, std::chrono::milliseconds(1))};
  }
  if (c.count++ == 0) c.opened = now;
  return {true, c.count, {}};
}

}  // namespace vrouter::bench::fleetsim
