// The live fleet of one replica: the pure FleetModel behind a mutex, wired to what it acts on.
// Video-server sessions feed it registrations and reports; client sessions ask it for servers and
// feed it failure reports; the admin API drains and inspects; a timer ticks it every report
// interval, which applies staleness and ejections, migrates users off drained, ejected and gone
// servers (paced), and turns every state change into a log line, metrics and a `state` push to
// the server concerned.
//
// Thread-safe. The mutex is held only for model calls (microseconds, no I/O): store reads happen
// before it is taken, store writes and pushes after it is released.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "router/base/mutex.h"
#include "router/fleet/directory.h"
#include "router/fleet/fleet_model.h"
#include "router/service/session_registry.h"
#include "router/store/fleet_gossip.h"
#include "router/store/store.h"
#include "router/telemetry/metrics.h"

namespace vrouter::service {

class FleetController {
 public:
  FleetController(fleet::FleetParams params, store::AssignmentStore& store,
                  fleet::Directory& directory, telemetry::Metrics& metrics,
                  SessionRegistry& sessions, std::function<base::SteadyTime()> now,
                  std::uint64_t seed);

  std::chrono::milliseconds report_interval() const { return report_interval_; }

  // Servers from the fleet file.
  void Declare(const std::vector<fleet::VideoServer>& servers);

  // ---- shared evidence (several replicas) ----
  // Every registration, report, disconnection, client failure report and operator drain of this
  // replica is published through `publish`; OnShared feeds those of the other replicas into this
  // replica's model, so every replica scores on the same evidence and ejects the same servers.
  // Set once, before any traffic.
  void ShareThrough(std::string replica_id, std::function<void(std::string)> publish);
  // A message published by any replica (this one's own are ignored). Malformed ones are counted
  // and dropped.
  void OnShared(std::string_view message);

  // ---- video-server connections ----
  struct Registration {
    fleet::ServerState state = fleet::ServerState::kPending;
    std::shared_ptr<SessionHandle> replaced;  // an older connection of the same server
    std::optional<fleet::Refused> refused;    // not registered (RegistrationPolicy)
  };
  Registration Register(const fleet::VideoServer& offered, std::uint64_t connection,
                        std::weak_ptr<SessionHandle> handle);
  void Disconnected(std::string_view server, std::uint64_t connection);
  void OnStats(std::string_view server, const proto::Stats& stats);
  // Shutdown: closes every video-server connection with `code` after `delay`.
  void CloseConnections(std::uint16_t code, std::string_view reason,
                        std::chrono::milliseconds delay);

  // ---- clients ----
  // A server for a new user of `space`: `done(server)`, empty when no server can take the user.
  // With a store that shares admission (several replicas), the choice is put to the server's
  // fleet-wide budget for the interval; a refusal closes that server here for as long as the
  // budget says and the choice is made again (at most fleet::kAdmissionChoices servers are
  // tried); a store that does not answer leaves this replica its share of each server's cap
  // (cap / live replicas) until it answers again. `done` runs inline or on the store's thread.
  using PlaceDone = std::function<void(std::string)>;
  void Place(std::string_view space, std::string_view region, PlaceDone done);
  // Whether a user may stay on (or resume to) `server`.
  bool CanKeep(std::string_view server);
  bool OnFailureReport(std::string_view server, std::string_view user, std::string_view address);

  // ---- operators ----
  bool Drain(std::string_view server);
  bool Undrain(std::string_view server);
  fleet::FleetView View();

  // ---- time ----
  // Every report interval: ejections, staleness, panic, migrations, metrics, pushes.
  void Tick();

 private:
  struct Connection {
    std::uint64_t id = 0;
    std::weak_ptr<SessionHandle> handle;
    fleet::VideoServer info;  // as registered (shared with every stats report)
  };
  // Publishes what a model call changed: logs, metrics, pushes. Called without the mutex, with
  // what was taken under it.
  void Publish(const std::vector<fleet::StateChange>& changes);
  // Installs the model's directory when it changed. Under the mutex, so that two threads cannot
  // install their copies out of order (an older one replacing a newer one for good).
  void PublishDirectoryLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings the model's per-server user counts up to date with the store's (only what changed).
  void SyncLoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Migrate(const fleet::Evacuation& evacuation);
  // The model's choice for a new user of `space`, counted in the metrics.
  fleet::Pick Choose(std::string_view space, std::string_view region);
  void Admit(const fleet::Pick& pick, std::string space, std::string region, int attempt,
             PlaceDone done);
  void UpdateServerMetrics(const fleet::FleetView& view);

  // Tells the other replicas (store/fleet_gossip.h), when there are any.
  void Share(store::GossipEvent event);
  void RegisterRemote(const fleet::VideoServer& offered);
  // What the fleet takes of a registration (RegistrationPolicy), counted and logged when refused
  // or capped.
  std::variant<fleet::Accepted, fleet::Refused> Vet(const fleet::VideoServer& offered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnRemoteStats(const fleet::VideoServer& info, const proto::Stats& stats);
  // An operator's drain or undrain, here or (share = false) through another replica.
  bool SetDrained(std::string_view server, bool drained, bool share);

  std::string replica_id_;
  std::function<void(std::string)> publish_;  // empty: one replica, nothing to share

  store::AssignmentStore& store_;
  fleet::Directory& directory_;
  telemetry::Metrics& metrics_;
  SessionRegistry& sessions_;
  std::function<base::SteadyTime()> now_;
  const std::chrono::milliseconds report_interval_;

  vrouter::Mutex mu_;
  // Remote registrations this replica refused (id, url, region, capacity), bounded.
  static constexpr std::size_t kMaxRefusedRemembered = 10000;
  absl::flat_hash_set<std::string> refused_remote_ ABSL_GUARDED_BY(mu_);
  fleet::FleetModel model_ ABSL_GUARDED_BY(mu_);
  fleet::LoadMap load_changes_ ABSL_GUARDED_BY(mu_);  // SyncLoadLocked's buffer
  std::uint64_t published_directory_ ABSL_GUARDED_BY(mu_) = ~std::uint64_t{0};
  absl::flat_hash_map<std::string, Connection> connections_ ABSL_GUARDED_BY(mu_);

  // Per-server metric series; touched only by Tick (one timer, never concurrent).
  struct ServerSeries {
    std::array<prometheus::Gauge*, fleet::kServerStateCount> state{};
    prometheus::Gauge* effective_load = nullptr;
    prometheus::Gauge* assigned = nullptr;
    prometheus::Gauge* packets_in = nullptr;
    prometheus::Gauge* packets_out = nullptr;
  };
  absl::flat_hash_map<std::string, ServerSeries> series_;
};

}  // namespace vrouter::service
