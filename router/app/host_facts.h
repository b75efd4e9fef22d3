// What the machine says that the configuration's defaults derive from (settings.h, HostFacts),
// read once by main before it parses the configuration, so that parsing stays pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "router/app/settings.h"

namespace vrouter::app {

// Raises the soft open-files limit to the hard one (no privilege needed). Container runtimes
// often start processes with a low soft limit (containerd 2.x: 1024) under a high hard one.
// Returns the limits before and after when it raised it.
struct RaisedLimit {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
};
std::optional<RaisedLimit> RaiseOpenFilesLimit();

// Client connections the open-files limit leaves room for: the limit minus the descriptors kept
// for everything else (listeners, admin sessions, logs, the store, certificate reloads).
std::size_t ConnectionBudget();

// Hardware threads, the hostname, a random number, ConnectionBudget().
HostFacts ReadHostFacts();

}  // namespace vrouter::app
