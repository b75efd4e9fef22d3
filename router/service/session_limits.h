// What one session may do and how long it may take: the single definition of these limits and
// their defaults. The app's Config holds one (filled from the settings table,
// router/app/settings.cc) and hands it to the Service every session reads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "router/edge/rate_limit.h"

namespace vrouter::service {

struct SessionLimits {
  std::uint32_t max_message_bytes = 128 * 1024;
  std::uint32_t max_batch = 1000;
  std::uint32_t max_watches = 1000;
  std::size_t max_send_queue_bytes = std::size_t{1024} * 1024;
  std::uint32_t max_pings_per_second = 20;
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds hello_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
  // Client connections per replica. 0 (the flag's default) is replaced while the configuration
  // is parsed by the open-files limit minus a reserve, so a running replica never sees 0.
  std::size_t max_connections = 0;
  // Per user: every connection of the user on this replica draws from the same buckets.
  edge::RateLimits rate_limits = edge::RateLimits::Defaults();
  // Hellos from one address (a reconnect storm; generous for offices and carrier NAT).
  edge::RateLimit hellos_per_ip{100, 1000};
  std::uint32_t max_connections_per_ip = 1000;  // 0: no limit
  std::uint32_t max_handshakes = 1024;          // in flight, before listeners pause; 0: no limit
  // Handshakes in flight from one address, counted from accept (idle sockets from one address
  // must not hold every --max-handshakes slot); 0: no limit.
  std::uint32_t max_handshakes_per_ip = 64;
  bool operator==(const SessionLimits&) const = default;
};

}  // namespace vrouter::service
