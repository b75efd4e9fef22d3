// What every session of a replica shares: limits, state, clocks. Built once by the app, outlives
// every session, and every member is safe to use from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/messages.h"
#include "router/assign/departures.h"
#include "router/assign/watch_hub.h"
#include "router/edge/admin_auth.h"
#include "router/edge/cidr.h"
#include "router/edge/ip_address.h"
#include "router/edge/per_ip_counter.h"
#include "router/edge/rate_limit.h"
#include "router/edge/shared_budgets.h"
#include "router/edge/token.h"
#include "router/fleet/directory.h"
#include "router/service/session_limits.h"
#include "router/service/session_registry.h"
#include "router/store/store.h"
#include "router/telemetry/metrics.h"

namespace vrouter::service {

class FleetController;

struct Service {
  std::string replica_id;
  // Keys of client tokens, swapped when the key files change; empty: no client can authenticate
  // (auth_not_configured).
  edge::SharedKeyRing client_keys;
  // Key of video-server credentials; empty: no video server can register.
  std::string video_server_secret;
  std::int64_t token_leeway_seconds = 30;
  SessionLimits limits;
  edge::AdminCredentials admin;  // who may read and write on the admin port
  base::SteadyTime started_at{};

  store::AssignmentStore& store;
  assign::WatchHub& hub;
  fleet::Directory& fleet;  // the directory (id -> url, region) every lookup reads
  FleetController& fleet_control;
  telemetry::Metrics& metrics;
  SessionRegistry& sessions;

  // Injected clocks (tests substitute their own).
  std::function<std::int64_t()> unix_seconds;
  std::function<base::SteadyTime()> steady_now;

  std::atomic<bool> draining{false};  // on SIGTERM: no new joins or resumes, readiness off
  std::atomic<std::size_t> open_connections{0};  // accepted sockets not yet closed
  std::atomic<std::uint64_t> next_session_id{1};

  // Who the client is behind a load balancer, and admission (SECURITY.md).
  bool proxy_protocol = false;      // client listeners expect PROXY headers from trusted_proxies
  edge::CidrSet trusted_proxies{};  // believed for PROXY headers and X-Forwarded-For
  std::vector<std::string> allowed_origins{};  // browser Origins on either path; empty: any
  edge::PerIpCounter per_ip{};                 // open connections (--max-connections-per-ip)
  edge::PerIpCounter handshakes_per_ip{};      // handshakes in flight (--max-handshakes-per-ip)
  // Rate limits per user (--rate-limits) and hellos per address (--hellos-per-ip), shared by all
  // their connections to this replica.
  edge::SharedBudgets user_budgets{};
  edge::SharedBudgets address_budgets{};
  // Where users who left went from, for --resume-grace-ms: a quick re-join is a return.
  assign::Departures departures{};
  std::chrono::milliseconds rejoin_window{30000};  // = --resume-grace-ms
  // --lookups-across-spaces: lookups and watches see every space, not only the caller's.
  bool lookups_across_spaces = false;
  std::atomic<std::uint32_t> handshakes_in_flight{0};
  // The CIDR -> region table, swapped when its file changes.
  AtomicSharedPtr<const edge::RegionTable> regions{std::make_shared<const edge::RegionTable>()};

  // A slot under --max-handshakes, taken by a listener for the connection it accepted, atomically
  // (every worker thread has its own listener) and handed to the session, which gives it back
  // when its handshake ends. False: the listener holds the connection and pauses; the others
  // wait in the kernel backlog.
  bool ReserveHandshake() {
    std::uint32_t n = handshakes_in_flight.load(std::memory_order_relaxed);
    do {
      if (limits.max_handshakes != 0 && n >= limits.max_handshakes) return false;
    } while (!handshakes_in_flight.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  void ReleaseHandshake() { handshakes_in_flight.fetch_sub(1, std::memory_order_relaxed); }
  // The region of a client address per the table; empty when no range matches.
  std::string RegionOf(const edge::IpAddress& ip) const {
    const auto table = regions.load();
    const auto region = table->RegionOf(ip);
    return region ? std::string(*region) : std::string();
  }

  // The buckets of an address: hellos only (a NAT holds many honest users).
  edge::RateLimits AddressLimits() const {
    edge::RateLimits l;
    l.by_type[proto::kClientTypeIndex<proto::Hello>] = limits.hellos_per_ip;
    l.strikes_to_close = limits.rate_limits.strikes_to_close;
    l.strike_window = limits.rate_limits.strike_window;
    return l;
  }

  proto::Limits WireLimits() const {
    return {limits.max_message_bytes, limits.max_batch, limits.max_watches};
  }
};

}  // namespace vrouter::service
