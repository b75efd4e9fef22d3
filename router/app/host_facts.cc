#include "router/app/host_facts.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>

namespace vrouter::app {
namespace {

// File descriptors kept for everything that is not a client socket: listeners, admin sessions,
// logs, the store, certificate reloads. The rest of RLIMIT_NOFILE is the connection budget.
constexpr std::size_t kReservedFds = 256;

}  // namespace

std::optional<RaisedLimit> RaiseOpenFilesLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return std::nullopt;
  const rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return std::nullopt;
  return RaisedLimit{static_cast<std::uint64_t>(was), static_cast<std::uint64_t>(rl.rlim_cur)};
}

std::size_t ConnectionBudget() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1'000'000;
  return rl.rlim_cur > kReservedFds * 2 ? rl.rlim_cur - kReservedFds : rl.rlim_cur / 2;
}

HostFacts ReadHostFacts() {
  HostFacts facts;
  facts.hardware_threads = std::thread::hardware_concurrency();
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) facts.hostname = host;
  facts.random = static_cast<std::uint32_t>(std::random_device{}());
  facts.connection_budget = std::max<std::size_t>(1, ConnectionBudget());
  return facts;
}

}  // namespace vrouter::app
