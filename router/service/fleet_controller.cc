#include "router/service/fleet_controller.h"

#include <atomic>
#include <limits>

#include "proto/codec.h"
#include "proto/video_server_codec.h"
#include "router/base/absl_compat.h"
#include "router/base/log.h"

namespace vrouter::service {
namespace {

// Per-server metric series are capped so a flood of registrations cannot blow up /metrics.
constexpr std::size_t kMaxServerSeries = 2000;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
// clang 14 deduces no aggregate's template arguments (C++20's P1816 came in clang 17).
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

void FleetController::ShareThrough(std::string replica_id,
                                   std::function<void(std::string)> publish) {
  replica_id_ = std::move(replica_id);
  publish_ = std::move(publish);
}

void FleetController::Share(store::GossipEvent event) {
  if (!publish_) return;
  publish_(store::EncodeGossip({replica_id_, std::move(event)}));
}

void FleetController::RegisterRemote(const fleet::VideoServer& offered) {
  std::vector<fleet::StateChange> changes;
  std::shared_ptr<SessionHandle> stale;
  fleet::VideoServer info;
  {
    vrouter::MutexLock lock(&mu_);
    // The same rules as a registration here: another replica (or whoever can publish on the
    // fleet channel) does not get to say more than the server itself could. A refused offer is
    // counted and logged once, not with each of its stats (replicas with other settings).
    const std::string key = offered.id + '\t' + offered.url + '\t' + offered.region + '\t' +
                            std::to_string(offered.capacity);
    if (refused_remote_.contains(key)) return;
    auto vetted = Vet(offered);
    if (std::holds_alternative<fleet::Refused>(vetted)) {
      if (refused_remote_.size() < kMaxRefusedRemembered) refused_remote_.insert(key);
      return;
    }
    info = std::get<fleet::Accepted>(std::move(vetted)).server;
    model_.Register(info, now_());
    // The server connected to another replica: a connection it had here is a stale one.
    auto it = connections_.find(info.id);
    if (it != connections_.end()) {
      stale = it->second.handle.lock();
      connections_.erase(it);
    }
    changes = model_.TakeChanges();
    PublishDirectoryLocked();
  }
  if (stale) {
    stale->CloseAsync(proto::close_code::kSessionReplaced,
                      std::string(proto::close_reason::kSessionReplaced));
  }
  Publish(changes);
}

void FleetController::OnShared(std::string_view message) {
  auto gossip = store::DecodeGossip(message);
  if (!gossip.ok()) {
    metrics_.stats_invalid->Increment();
    metrics_.fleet_gossip_rejected
        ->Add({{"reason", std::string(store::GossipErrorName(gossip.error()))}})
        .Increment();
    log::Warn("fleet_gossip_malformed", {{"error", store::GossipErrorName(gossip.error())}});
    return;
  }
  if (gossip->replica == replica_id_) return;  // our own echo
  std::visit(Overloaded{
                 [&](const store::GossipRegistered& e) { RegisterRemote(e.server); },
                 [&](const store::GossipStats& e) { OnRemoteStats(e.server, e.stats); },
                 [&](const store::GossipGone& e) {
                   vrouter::MutexLock lock(&mu_);
                   if (!connections_.contains(AsAbsl(e.server))) model_.Disconnected(e.server);
                 },
                 [&](const store::GossipFailureReport& e) {
                   vrouter::MutexLock lock(&mu_);
                   model_.OnFailureReport(e.server, e.user, e.address, now_());
                 },
                 [&](const store::GossipDrain& e) { SetDrained(e.server, e.drained, false); },
             },
             gossip->event);
}

void FleetController::OnRemoteStats(const fleet::VideoServer& info, const proto::Stats& stats) {
  bool known = false;
  {
    vrouter::MutexLock lock(&mu_);
    known = model_.StateOf(info.id).has_value();
  }
  if (!known) RegisterRemote(info);
  std::vector<fleet::StateChange> changes;
  {
    vrouter::MutexLock lock(&mu_);
    SyncLoadLocked();
    model_.OnStats(info.id, stats, now_());
    changes = model_.TakeChanges();
  }
  Publish(changes);
}

FleetController::FleetController(fleet::FleetParams params, store::AssignmentStore& store,
                                 fleet::Directory& directory, telemetry::Metrics& metrics,
                                 SessionRegistry& sessions, std::function<base::SteadyTime()> now,
                                 std::uint64_t seed)
    : store_(store),
      directory_(directory),
      metrics_(metrics),
      sessions_(sessions),
      now_(std::move(now)),
      report_interval_(params.report_interval),
      model_(std::move(params), seed) {}

void FleetController::PublishDirectoryLocked() {
  if (model_.directory_version() == published_directory_) return;
  published_directory_ = model_.directory_version();
  directory_.Replace(model_.Directory());
}

void FleetController::Declare(const std::vector<fleet::VideoServer>& servers) {
  std::vector<fleet::StateChange> changes;
  {
    vrouter::MutexLock lock(&mu_);
    model_.Declare(servers, now_());
    changes = model_.TakeChanges();
    PublishDirectoryLocked();
  }
  Publish(changes);
}

std::variant<fleet::Accepted, fleet::Refused> FleetController::Vet(
    const fleet::VideoServer& offered) {
  auto vetted =
      fleet::VetRegistration(offered, model_.Declared(offered.id), model_.params().registration);
  if (auto* refused = std::get_if<fleet::Refused>(&vetted)) {
    metrics_.registrations_refused[static_cast<int>(refused->reason)]->Increment();
    log::Warn("video_server_registration_refused",
              {{"server", offered.id},
               {"reason", fleet::RegistrationRefusalName(refused->reason)},
               {"detail", refused->detail}});
  } else if (std::get<fleet::Accepted>(vetted).capacity_capped) {
    metrics_.registered_capacity_capped->Increment();
    log::Warn("video_server_capacity_capped",
              {{"server", offered.id},
               {"claimed", offered.capacity},
               {"capped_to", model_.params().registration.max_capacity}});
  }
  return vetted;
}

FleetController::Registration FleetController::Register(const fleet::VideoServer& offered,
                                                        std::uint64_t connection,
                                                        std::weak_ptr<SessionHandle> handle) {
  Registration out;
  std::vector<fleet::StateChange> changes;
  fleet::VideoServer info;
  {
    vrouter::MutexLock lock(&mu_);
    auto vetted = Vet(offered);
    if (auto* refused = std::get_if<fleet::Refused>(&vetted)) {
      out.refused = std::move(*refused);
      return out;
    }
    info = std::get<fleet::Accepted>(std::move(vetted)).server;
    out.state = model_.Register(info, now_());
    Connection& c = connections_[info.id];
    if (c.id != 0 && c.id != connection) out.replaced = c.handle.lock();
    c = {connection, std::move(handle), info};
    changes = model_.TakeChanges();
    PublishDirectoryLocked();
  }
  metrics_.video_server_connections->Increment();
  log::Info("video_server_registered", {{"server", info.id},
                                        {"url", info.url},
                                        {"region", info.region},
                                        {"capacity", info.capacity},
                                        {"state", fleet::ServerStateName(out.state)},
                                        {"replaced_connection", out.replaced != nullptr}});
  Publish(changes);
  Share(store::GossipRegistered{info});
  return out;
}

void FleetController::Disconnected(std::string_view server, std::uint64_t connection) {
  metrics_.video_server_connections->Decrement();
  vrouter::MutexLock lock(&mu_);
  auto it = connections_.find(AsAbsl(server));
  if (it == connections_.end() || it->second.id != connection) return;  // already replaced
  connections_.erase(it);
  model_.Disconnected(server);
  Share(store::GossipGone{std::string(server)});
}

void FleetController::OnStats(std::string_view server, const proto::Stats& stats) {
  std::vector<fleet::StateChange> changes;
  fleet::FleetModel::StatsOutcome outcome;
  {
    vrouter::MutexLock lock(&mu_);
    SyncLoadLocked();
    outcome = model_.OnStats(server, stats, now_());
    changes = model_.TakeChanges();
  }
  metrics_.stats_reports[static_cast<int>(outcome.verdict)]->Increment();
  Publish(changes);
  if (publish_) {
    std::optional<fleet::VideoServer> info;
    {
      vrouter::MutexLock lock(&mu_);
      auto it = connections_.find(AsAbsl(server));
      if (it != connections_.end()) info = it->second.info;
    }
    // The registration rides along, so a replica that started after it still learns the server.
    if (info) Share(store::GossipStats{*info, stats});
  }
}

void FleetController::CloseConnections(std::uint16_t code, std::string_view reason,
                                       std::chrono::milliseconds delay) {
  std::vector<std::shared_ptr<SessionHandle>> handles;
  {
    vrouter::MutexLock lock(&mu_);
    for (auto& [id, c] : connections_) {
      if (auto h = c.handle.lock()) handles.push_back(std::move(h));
    }
  }
  for (auto& h : handles) h->CloseAsync(code, std::string(reason), delay);
}

fleet::Pick FleetController::Choose(std::string_view space, std::string_view region) {
  const auto space_load = store_.SpaceLoad(space);
  fleet::Pick pick;
  {
    vrouter::MutexLock lock(&mu_);
    SyncLoadLocked();
    pick = model_.Choose({region, &space_load}, now_());
  }
  if (pick.server.empty()) return pick;
  metrics_.picks[static_cast<int>(pick.detail.tier) - 1]->Increment();
  if (pick.detail.affinity) metrics_.picks_space_affinity->Increment();
  return pick;
}

void FleetController::Place(std::string_view space, std::string_view region, PlaceDone done) {
  fleet::Pick pick = Choose(space, region);
  if (pick.server.empty() || !store_.SharesAdmission()) return done(std::move(pick.server));
  Admit(pick, std::string(space), std::string(region), 1, std::move(done));
}

void FleetController::Admit(const fleet::Pick& pick, std::string space, std::string region,
                            int attempt, PlaceDone done) {
  const std::string server = pick.server;
  store_.Admit(server, pick.interval_cap, pick.room, report_interval_,
               [this, server, space = std::move(space), region = std::move(region), attempt,
                done = std::move(done)](store::StoreResult<store::Admission> r) mutable {
                 const auto* admission = std::get_if<store::Admission>(&r);
                 if (admission == nullptr) {
                   // The budget cannot be reached: this placement stands (it was counted here), and
                   // until the store answers again this replica takes only its share of each
                   // server's cap.
                   metrics_.admissions[2]->Increment();
                   const std::size_t replicas = store_.LiveReplicas();
                   {
                     vrouter::MutexLock lock(&mu_);
                     model_.SetAdmissionShare(static_cast<std::uint32_t>(std::min<std::size_t>(
                         replicas, std::numeric_limits<std::uint32_t>::max())));
                   }
                   return done(server);
                 }
                 if (admission->admitted) {
                   metrics_.admissions[0]->Increment();
                   {
                     vrouter::MutexLock lock(&mu_);
                     model_.SetAdmissionShare(1);
                     model_.Admitted(server, admission->fleet_count);
                   }
                   return done(server);
                 }
                 metrics_.admissions[1]->Increment();
                 {
                   vrouter::MutexLock lock(&mu_);
                   const base::SteadyTime now = now_();
                   model_.SetAdmissionShare(1);
                   model_.AdmissionRefused(server, now + admission->window_left, now);
                 }
                 if (attempt >= fleet::kAdmissionChoices) return done({});
                 fleet::Pick next = Choose(space, region);
                 if (next.server.empty()) return done({});
                 Admit(next, std::move(space), std::move(region), attempt + 1, std::move(done));
               });
}

bool FleetController::CanKeep(std::string_view server) {
  vrouter::MutexLock lock(&mu_);
  SyncLoadLocked();
  return model_.CanKeep(server, now_());
}

void FleetController::SyncLoadLocked() {
  store_.TakeLoadChanges(load_changes_);
  for (const auto& [server, users] : load_changes_) model_.SetOwn(server, users);
}

bool FleetController::OnFailureReport(std::string_view server, std::string_view user,
                                      std::string_view address) {
  bool counted = false;
  {
    vrouter::MutexLock lock(&mu_);
    SyncLoadLocked();
    counted = model_.OnFailureReport(server, user, address, now_());
  }
  Share(store::GossipFailureReport{std::string(server), std::string(user), std::string(address)});
  return counted;
}

bool FleetController::Drain(std::string_view server) { return SetDrained(server, true, true); }

bool FleetController::Undrain(std::string_view server) { return SetDrained(server, false, true); }

bool FleetController::SetDrained(std::string_view server, bool drained, bool share) {
  std::vector<fleet::StateChange> changes;
  bool found = false;
  {
    vrouter::MutexLock lock(&mu_);
    found = drained ? model_.Drain(server, now_()) : model_.Undrain(server, now_());
    changes = model_.TakeChanges();
  }
  Publish(changes);
  if (found && share) Share(store::GossipDrain{std::string(server), drained});
  return found;
}

fleet::FleetView FleetController::View() {
  vrouter::MutexLock lock(&mu_);
  SyncLoadLocked();
  return model_.View(now_());
}

void FleetController::Tick() {
  std::vector<fleet::StateChange> changes;
  std::vector<fleet::Evacuation> evacuations;
  fleet::FleetView view;
  {
    vrouter::MutexLock lock(&mu_);
    const auto now = now_();
    SyncLoadLocked();
    model_.Tick(now);
    evacuations = model_.DueEvacuations(now);
    changes = model_.TakeChanges();
    PublishDirectoryLocked();
    view = model_.View(now);
  }
  Publish(changes);
  for (const auto& e : evacuations) Migrate(e);
  UpdateServerMetrics(view);
}

void FleetController::Publish(const std::vector<fleet::StateChange>& changes) {
  for (const auto& c : changes) {
    if (c.server.empty()) {  // fleet-wide
      if (c.reason == fleet::ChangeReason::kPanicEntered) {
        metrics_.panics->Increment();
        log::Error("fleet_panic", {{"detail",
                                    "too much of the fleet looks bad at once: "
                                    "health evidence set aside, no more ejections"}});
      } else {
        log::Warn("fleet_panic_over", {});
      }
      continue;
    }
    const auto eject_reason = fleet::EjectReasonOf(c.reason);
    if (c.to == fleet::ServerState::kEjected && c.from != fleet::ServerState::kEjected &&
        eject_reason) {
      metrics_.ejections[static_cast<int>(*eject_reason)]->Increment();
    }
    const bool bad = c.to == fleet::ServerState::kEjected || c.to == fleet::ServerState::kGone;
    (bad ? log::Warn : log::Info)("video_server_state",
                                  {{"server", c.server},
                                   {"from", fleet::ServerStateName(c.from)},
                                   {"to", fleet::ServerStateName(c.to)},
                                   {"reason", fleet::ChangeReasonName(c.reason)}});
    std::shared_ptr<SessionHandle> handle;
    {
      vrouter::MutexLock lock(&mu_);
      auto it = connections_.find(c.server);
      if (it != connections_.end()) handle = it->second.handle.lock();
    }
    if (handle) {
      const proto::RouterToVideoServerMessage push =
          proto::StateChange{std::string(fleet::ServerStateName(c.to)),
                             std::string(fleet::ChangeReasonName(c.reason))};
      handle->Push(std::make_shared<const std::string>(proto::Encode(push)));
    }
  }
}

void FleetController::Migrate(const fleet::Evacuation& evacuation) {
  const auto users = store_.AssignedTo(evacuation.server, evacuation.batch);
  if (users.empty()) return;
  const auto from = directory_.Snapshot()->Find(evacuation.server);
  const std::string region = from != nullptr ? from->region : std::string();
  // Counts the batch's outcomes as the writes complete (inline, or on the store's thread) and
  // logs once when the last one has.
  struct Batch {
    std::string server;
    fleet::EvacuationCause cause = fleet::EvacuationCause::kDrain;
    std::atomic<std::size_t> left{0}, moved{0}, failed{0};
  };
  auto batch = std::make_shared<Batch>();
  batch->server = evacuation.server;
  batch->cause = evacuation.cause;
  batch->left = users.size();
  auto finish_one = [this, batch](bool moved) {
    (moved ? batch->moved : batch->failed).fetch_add(1);
    if (batch->left.fetch_sub(1) != 1) return;
    metrics_.migrations[static_cast<int>(batch->cause)]->Increment(
        static_cast<double>(batch->moved));
    if (batch->failed > 0)
      metrics_.migrations_failed->Increment(static_cast<double>(batch->failed));
    log::Info("migration_batch", {{"server", batch->server},
                                  {"cause", fleet::EvacuationCauseName(batch->cause)},
                                  {"moved", batch->moved.load()},
                                  {"not_moved", batch->failed.load()}});
  };
  for (const assign::Assignment& a : users) {
    // A migration is a new placement for the target: it goes through the same admission.
    Place(a.space, region,
          [this, a, cause = evacuation.cause, finish_one](const std::string& target) {
            if (target.empty() || target == a.server) return finish_one(false);
            assign::Assignment desired = a;
            desired.server = target;
            desired.since = now_();
            // Compare-and-set on the epoch read: if the user rejoined or left meanwhile, theirs
            // wins.
            store_.Put(std::move(desired), a.epoch, 0,
                       [this, user = a.user, target, cause,
                        finish_one](store::StoreResult<assign::PutResult> r) {
                         auto* put = std::get_if<assign::PutResult>(&r);
                         if (put == nullptr || !put->written) return finish_one(false);
                         if (auto session = sessions_.Find(user)) {
                           const proto::ServerMessage push = proto::Migrate{
                               fleet::ServerRefFor(*directory_.Snapshot(), target),
                               put->current.epoch, std::string(fleet::EvacuationCauseName(cause))};
                           metrics_.messages_sent[push.index()]->Increment();
                           session->Push(std::make_shared<const std::string>(proto::Encode(push)));
                         }
                         finish_one(true);
                       });
          });
  }
}

void FleetController::UpdateServerMetrics(const fleet::FleetView& view) {
  std::array<int, fleet::kServerStateCount> per_state{};
  absl::flat_hash_map<std::string, bool> seen;
  for (const auto& v : view.servers) {
    ++per_state[static_cast<int>(v.state)];
    seen[v.server.id] = true;
    auto it = series_.find(v.server.id);
    if (it == series_.end()) {
      if (series_.size() >= kMaxServerSeries) continue;
      ServerSeries s;
      const std::string& id = v.server.id;
      for (int i = 0; i < fleet::kServerStateCount; ++i) {
        s.state[i] = &metrics_.server_state->Add(
            {{"server", id},
             {"state", std::string(fleet::ServerStateName(static_cast<fleet::ServerState>(i)))}});
      }
      s.effective_load = &metrics_.server_effective_load->Add({{"server", id}});
      s.assigned = &metrics_.server_assigned->Add({{"server", id}});
      s.packets_in = &metrics_.server_packet_rate->Add({{"server", id}, {"direction", "in"}});
      s.packets_out = &metrics_.server_packet_rate->Add({{"server", id}, {"direction", "out"}});
      it = series_.emplace(id, s).first;
    }
    ServerSeries& s = it->second;
    for (int i = 0; i < fleet::kServerStateCount; ++i) {
      s.state[i]->Set(static_cast<int>(v.state) == i ? 1 : 0);
    }
    s.effective_load->Set(v.score.effective_load);
    s.assigned->Set(static_cast<double>(v.own));
    s.packets_in->Set(v.rates ? v.rates->packets_in : 0);
    s.packets_out->Set(v.rates ? v.rates->packets_out : 0);
  }
  for (auto it = series_.begin(); it != series_.end();) {
    auto next = std::next(it);
    if (!seen.contains(it->first)) {  // forgotten by the model
      for (auto* g : it->second.state) metrics_.server_state->Remove(g);
      metrics_.server_effective_load->Remove(it->second.effective_load);
      metrics_.server_assigned->Remove(it->second.assigned);
      metrics_.server_packet_rate->Remove(it->second.packets_in);
      metrics_.server_packet_rate->Remove(it->second.packets_out);
      series_.erase(it);
    }
    it = next;
  }
  for (int i = 0; i < fleet::kServerStateCount; ++i) {
    metrics_.servers_in_state[i]->Set(per_state[i]);
  }
  metrics_.fleet_panic->Set(view.panic ? 1 : 0);
}

}  // namespace vrouter::service
