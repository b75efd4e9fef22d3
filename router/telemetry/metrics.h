// Every metric the router exports, declared in one place and passed by reference. Hot-path
// counters are resolved to references at start-up, so incrementing one is an atomic add, never a
// label lookup. Names follow Prometheus conventions (checked by `promtool check metrics` in CI).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>

#include "proto/codec.h"
#include "proto/messages.h"
#include "router/fleet/ejection.h"
#include "router/fleet/fleet_model.h"
#include "router/fleet/scoring.h"
#include "router/fleet/server_health.h"

namespace vrouter::telemetry {

enum class Transport : int { kWs = 0, kWss = 1 };
inline constexpr int kTransportCount = 2;

class Metrics {
 public:
  Metrics(std::string_view version, std::string_view commit);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }

  // Connections and handshakes, per transport.
  std::array<prometheus::Gauge*, kTransportCount> connections{};
  std::array<prometheus::Counter*, kTransportCount> handshakes_ok{};
  std::array<prometheus::Counter*, kTransportCount> handshakes_failed{};
  prometheus::Counter* rejected_overload = nullptr;  // refused with 503 (max connections)
  prometheus::Counter* rejected_per_ip = nullptr;    // refused with 429 (too many from one IP)
  prometheus::Counter* rejected_handshakes_per_ip = nullptr;  // closed at accept (per-IP pending)
  prometheus::Counter* rejected_before_auth = nullptr;  // closed: too many messages before auth
  prometheus::Counter* rejected_origin = nullptr;       // refused with 403 (Origin not allowed)
  prometheus::Counter* rejected_proxy = nullptr;        // bad or untrusted PROXY protocol header
  prometheus::Gauge* handshakes_in_flight = nullptr;    // accepted, not yet a WebSocket
  prometheus::Counter* accept_paused = nullptr;         // listener paused at --max-handshakes
  prometheus::Counter* accept_errors = nullptr;         // accept() failures (EMFILE, ...)
  prometheus::Gauge* max_connections = nullptr;         // the replica's connection cap

  // Messages by type, errors by code, closes by reason.
  std::array<prometheus::Counter*, std::size(proto::kClientTypeNames)> messages_received{};
  std::array<prometheus::Counter*, std::size(proto::kServerTypeNames)> messages_sent{};
  std::array<prometheus::Counter*, proto::kErrorCodeCount> errors{};
  prometheus::Counter* slow_consumer_closes = nullptr;
  prometheus::Counter* sessions_replaced = nullptr;
  prometheus::Counter* protocol_closes = nullptr;    // oversize, binary, ping flood, bad frames
  prometheus::Counter* rate_limit_closes = nullptr;  // kept sending after rate_limited
  std::array<prometheus::Counter*, std::size(proto::kClientTypeNames)> rate_limited{};

  // Files re-read while running: TLS certificate and key, client token keys, region table.
  enum class Reloadable : int { kTls = 0, kAuthKeys = 1, kRegionCidrs = 2 };
  std::array<prometheus::Counter*, 3> reloads_ok{};
  std::array<prometheus::Counter*, 3> reloads_failed{};
  prometheus::Gauge* tls_cert_expiry = nullptr;  // unix seconds of the earliest notAfter

  // State.
  prometheus::Gauge* assignments = nullptr;
  prometheus::Counter* assignments_written = nullptr;
  prometheus::Counter* assignments_expired = nullptr;
  prometheus::Gauge* watches = nullptr;
  prometheus::Gauge* video_servers = nullptr;
  prometheus::Gauge* ready = nullptr;
  std::array<prometheus::Counter*, proto::kFailureReasonCount> media_failure_reports{};

  // Latency of lookups, from decoded request to queued answer.
  prometheus::Histogram* lookup_seconds = nullptr;

  // The shared store (Redis). Client-visible failures and the client's health.
  prometheus::Counter* store_errors = nullptr;  // requests refused: store unreachable/overloaded
  std::array<prometheus::Counter*, 2> lookup_users{};  // answered from: local copy, store read
  prometheus::Histogram* redis_command_seconds = nullptr;
  prometheus::Counter* redis_command_errors = nullptr;  // failed: disconnected, timeout, full
  prometheus::Counter* redis_reconnects = nullptr;      // connection attempts after an outage
  prometheus::Gauge* redis_up = nullptr;
  // Redis Cluster: primaries down and not yet replaced (their shards refuse writes).
  prometheus::Gauge* redis_primaries_down = nullptr;
  prometheus::Gauge* redis_pending = nullptr;    // commands sent and not yet answered
  prometheus::Counter* store_resyncs = nullptr;  // full resynchronizations after an outage
  // Live sessions' assignments written back because Redis no longer held them (a restart, a
  // failover that lost the last writes).
  prometheus::Counter* store_reasserted = nullptr;
  // Shard channels (Redis Cluster) subscribed again: their slot moved, or their node came back.
  prometheus::Counter* store_channels_moved = nullptr;
  prometheus::Counter* store_space_loads = nullptr;  // space snapshots loaded
  prometheus::Gauge* store_local_spaces = nullptr;   // spaces held in local memory
  prometheus::Counter* store_gaps = nullptr;  // change streams that skipped a sequence number
  // Data read from the shared store that failed validation ({kind}: redis::DefectName), change
  // messages not applied as published ({reason}), and fleet messages from other replicas refused
  // ({reason}: GossipAuthErrorName, GossipErrorName). The label values are the store's names; the
  // Redis store adds every series when it starts.
  prometheus::Family<prometheus::Counter>* store_corrupt = nullptr;
  prometheus::Family<prometheus::Counter>* store_changes_rejected = nullptr;
  prometheus::Family<prometheus::Counter>* fleet_gossip_rejected = nullptr;

  // Fleet. Per-server series are added and removed by the fleet controller as servers come and
  // go, so their number is bounded by the fleet size.
  prometheus::Family<prometheus::Gauge>* server_state = nullptr;           // {server,state}: 0|1
  prometheus::Family<prometheus::Gauge>* server_effective_load = nullptr;  // {server}: users
  prometheus::Family<prometheus::Gauge>* server_assigned = nullptr;        // {server}: users
  prometheus::Family<prometheus::Gauge>* server_packet_rate = nullptr;     // {server,direction}
  std::array<prometheus::Gauge*, fleet::kServerStateCount> servers_in_state{};
  std::array<prometheus::Counter*, fleet::kEjectReasonCount> ejections{};
  prometheus::Gauge* fleet_panic = nullptr;
  prometheus::Counter* panics = nullptr;
  std::array<prometheus::Counter*, fleet::kStatsVerdictCount> stats_reports{};
  prometheus::Counter* stats_invalid = nullptr;
  std::array<prometheus::Counter*, fleet::kEvacuationCauseCount> migrations{};
  prometheus::Counter* migrations_failed = nullptr;
  std::array<prometheus::Counter*, 3> picks{};  // region, region_group, anywhere
  prometheus::Counter* picks_space_affinity = nullptr;
  // Shared admission (several replicas): admitted, refused (the server's budget for the interval
  // was spent), unreachable (the store did not answer: this replica's share of the cap applied).
  std::array<prometheus::Counter*, 3> admissions{};
  prometheus::Gauge* video_server_connections = nullptr;
  // Registrations refused, by fleet::RegistrationRefusal; self-registered capacities capped.
  std::array<prometheus::Counter*, 4> registrations_refused{};
  prometheus::Counter* registered_capacity_capped = nullptr;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace vrouter::telemetry
