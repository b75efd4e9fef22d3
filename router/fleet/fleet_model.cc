// Why this file is longer than ~600 lines: it is the one place where every signal about a server
// (reports, client failure reports, operator actions, time) meets the rules that judge it, and
// those rules read and write the same per-server record. The pure pieces that can stand alone
// already do (server_health, scoring, ejection); what is left is their composition.
#include "router/fleet/fleet_model.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "router/base/absl_compat.h"

namespace vrouter::fleet {
namespace {

// State changes kept per server for the admin view.
constexpr std::size_t kHistory = 16;
// Distinct failure reporters remembered per server; a server cannot have more users than this
// reporting within one window in any deployment we size for, and memory stays bounded.
constexpr std::size_t kMaxReporters = 100000;

using Ms = std::chrono::milliseconds;

Ms ToMs(std::chrono::nanoseconds d) { return std::chrono::duration_cast<Ms>(d); }

// The fleet's mean utilization is summed in fixed point, so that it does not depend on the order
// the servers were added in: the kept sum (ChoiceMethod::kIndexed) and the full scan agree to the
// bit (to within 2^-32 of the exact mean). Utilizations are clamped to kMaxUtilization for it,
// far beyond any real server (10^4 * 2^32 * 200,000 servers still fits in 64 bits).
constexpr double kUtilizationScale = 4294967296.0;  // 2^32
constexpr double kMaxUtilization = 1e4;

std::int64_t FixedUtilization(double utilization) {
  return std::llround(std::clamp(utilization, 0.0, kMaxUtilization) * kUtilizationScale);
}

double MeanOf(std::int64_t fixed_sum, std::size_t count) {
  return count == 0
             ? 0
             : static_cast<double>(fixed_sum) / static_cast<double>(count) / kUtilizationScale;
}

bool Swallowing(Forwarding f) {
  return f == Forwarding::kNotForwarding || f == Forwarding::kFrozen;
}

}  // namespace

std::string_view ChangeReasonName(ChangeReason reason) {
  static constexpr std::string_view kNames[] = {"declared",
                                                "declared_unmonitored",
                                                "registered",
                                                "reporting",
                                                "reset",
                                                "drained",
                                                "undrained",
                                                "not_forwarding",
                                                "failure_reports",
                                                "success_rate_outlier",
                                                "restart_loop",
                                                "ejection_renewed",
                                                "ejection_expired",
                                                "stale",
                                                "gone",
                                                "panic_entered",
                                                "panic_exited"};
  static_assert(std::size(kNames) == static_cast<std::size_t>(ChangeReason::kPanicExited) + 1);
  return kNames[static_cast<std::size_t>(reason)];
}

ChangeReason ChangeReasonFor(EjectReason reason) {
  switch (reason) {
    case EjectReason::kNotForwarding:
      return ChangeReason::kNotForwarding;
    case EjectReason::kFailureReports:
      return ChangeReason::kFailureReports;
    case EjectReason::kSuccessRateOutlier:
      return ChangeReason::kSuccessRateOutlier;
    case EjectReason::kRestartLoop:
      return ChangeReason::kRestartLoop;
  }
  return ChangeReason::kNotForwarding;
}

std::optional<EjectReason> EjectReasonOf(ChangeReason reason) {
  switch (reason) {
    case ChangeReason::kNotForwarding:
      return EjectReason::kNotForwarding;
    case ChangeReason::kFailureReports:
      return EjectReason::kFailureReports;
    case ChangeReason::kSuccessRateOutlier:
      return EjectReason::kSuccessRateOutlier;
    case ChangeReason::kRestartLoop:
      return EjectReason::kRestartLoop;
    default:
      return std::nullopt;
  }
}

std::string_view EvacuationCauseName(EvacuationCause cause) {
  static constexpr std::string_view kNames[] = {"drain", "ejected", "gone"};
  static_assert(std::size(kNames) == kEvacuationCauseCount);
  return kNames[static_cast<std::size_t>(cause)];
}

struct FleetModel::Record {
  VideoServer info;
  bool declared = false;
  bool monitored = true;
  bool connected = false;

  // Reports.
  CounterTracker counters;
  std::optional<base::SteadyTime> last_report;
  proto::Stats latest;
  std::optional<StatsRates> rates;
  Forwarding forwarding = Forwarding::kUnknown;
  std::uint32_t bad_reports = 0;
  std::uint64_t stats_accepted = 0, stats_reordered = 0, stats_resets = 0;

  // Placements.
  std::int64_t pending = 0;  // since the last report
  // Since when the router's own count of users there has been above zero, as of the last report
  // (unset while it is zero): they count as peers only once `media_grace` has passed.
  std::optional<base::SteadyTime> own_since;
  // Since when the server has reported peers (unset while it reports none), and whether media
  // has moved since: peers that have not moved media yet are still setting up, and count for
  // the frozen check only once `media_grace` has passed.
  std::optional<base::SteadyTime> peers_since;
  bool peers_moved = false;
  base::SteadyTime interval_start{};
  std::uint32_t new_in_interval = 0;
  // Shared admission: placements there this window by every replica (until its next report), and
  // until when the fleet-wide budget is spent.
  std::uint32_t fleet_admitted = 0;
  base::SteadyTime admission_closed_until{};

  // Client failure reports: user -> when and from which address it last reported. Users count
  // once each, and so do addresses (Reporters()).
  struct Reporter {
    base::SteadyTime at{};
    std::string address;
  };
  absl::flat_hash_map<std::string, Reporter> reporters;
  absl::flat_hash_map<std::string, std::uint32_t> reporter_addresses;  // address -> reporters
  // Counter resets (restarts) within the restart-loop window, oldest first.
  std::deque<base::SteadyTime> resets;

  // Operator and health decisions.
  bool drained = false;
  bool ejected = false;
  EjectReason eject_reason = EjectReason::kNotForwarding;
  base::SteadyTime ejected_until{};
  std::uint32_t ejections = 0;
  std::uint32_t multiplier = 0;  // grows with each ejection, decays while healthy
  base::SteadyTime healthy_since{};
  // Back from an ejection without evidence of health: at most probation_max_users users, one new
  // per interval, and one bad report (not three) or two reporters (one if it holds one user, not
  // five) eject it again. Ends
  // when its counters show it forwarding (if counters ejected it), or after a failure window
  // (whatever ejected it: idle users may never show a rate, and a liar's counters look healthy).
  bool probation = false;
  std::optional<base::SteadyTime> probation_until;
  bool probation_counters = false;  // ejected on its counters: a forwarding report ends it

  // The router's own count of users there (FleetModel::SetOwn).
  std::int64_t own = 0;

  // Kept score (ChoiceMethod::kIndexed): as of the last time something touched this server.
  ScoreInput input;
  Score score;
  std::size_t index = 0;                   // in servers_
  std::int64_t mean_share = 0;             // its share of the mean utilization, when in_mean
  std::optional<base::SteadyTime> wakeup;  // queued in wakeups_ for this time
  std::size_t region_tier = 0, region_pos = 0;
  std::optional<std::size_t> group_tier;
  std::size_t group_pos = 0;
  bool dirty = false;        // in dirty_
  bool slow = false;         // active, weight < 1: rescored on every choice
  bool listed_slow = false;  // in slow_
  bool established = false;  // counted in established_count_
  bool in_mean = false;      // counted in the mean utilization
  bool indexed = false;      // in the eligible index
  bool counted_active = false, counted_suspect = false;

  // Derived state.
  ServerState state = ServerState::kPending;
  ChangeReason reason = ChangeReason::kDeclared;
  base::SteadyTime state_since{};
  std::optional<base::SteadyTime> in_service_since;  // slow start runs from here
  std::deque<StateChange> history;
  base::SteadyTime next_migration{};

  double ReportedLoad() const {
    if (!monitored || !last_report) return 0;
    return std::max<double>(latest.peers, latest.cpu * info.capacity);
  }
  // What the counters say, never more users than there are peers (reported, or placed by the
  // router): a burst of packets counted over a short interval is not a crowd. A server that
  // claims no peers at all while packets flow is not believed: its counters stand.
  double CounterLoad(const ScoringParams& p, std::int64_t own) const {
    if (!rates || p.packets_per_user <= 0) return 0;
    const double implied = rates->packets_in / p.packets_per_user;
    if (latest.peers == 0) return implied;
    return std::min(implied, std::max<double>(latest.peers, static_cast<double>(own)));
  }
  // Distinct reporters: each user once and each address once (one client reconnecting with
  // several tokens from one address counts once). Kept as counts: scoring reads it for every
  // server on every choice.
  std::uint32_t Reporters() const {
    return static_cast<std::uint32_t>(std::min(reporters.size(), reporter_addresses.size()));
  }
  static std::string AddressKey(std::string_view user, std::string_view address) {
    return std::string(address.empty() ? user : address);
  }
  void AddReporter(std::string_view user, std::string_view address, base::SteadyTime now) {
    auto it = reporters.find(AsAbsl(user));
    if (it != reporters.end()) {
      DropAddress(AddressKey(user, it->second.address));
      it->second = {now, std::string(address)};
    } else if (reporters.size() < kMaxReporters) {
      reporters.emplace(std::string(user), Reporter{now, std::string(address)});
    } else {
      return;
    }
    ++reporter_addresses[AddressKey(user, address)];
  }
  void DropAddress(const std::string& key) {
    auto a = reporter_addresses.find(key);
    if (a != reporter_addresses.end() && --a->second == 0) reporter_addresses.erase(a);
  }
  // Forgets the reports older than the window (or all of them, with window zero).
  void ForgetReportsBefore(base::SteadyTime cutoff) {
    for (auto it = reporters.begin(); it != reporters.end();) {
      auto next = std::next(it);
      if (it->second.at <= cutoff) {
        DropAddress(AddressKey(it->first, it->second.address));
        reporters.erase(it);
      }
      it = next;
    }
  }
  double FailureShare(std::int64_t own) const {
    if (reporters.empty()) return 0;
    const double base = static_cast<double>(std::max<std::int64_t>(own, Reporters()));
    return static_cast<double>(Reporters()) / base;
  }
};

FleetModel::FleetModel(FleetParams params, std::uint64_t seed, ChoiceMethod method)
    : params_(std::move(params)), method_(method), rng_(seed) {}

FleetModel::~FleetModel() = default;

FleetModel::Record* FleetModel::Find(std::string_view id) {
  const auto it = index_.find(AsAbsl(id));
  return it == index_.end() ? nullptr : servers_[it->second].get();
}

const FleetModel::Record* FleetModel::Find(std::string_view id) const {
  const auto it = index_.find(AsAbsl(id));
  return it == index_.end() ? nullptr : servers_[it->second].get();
}

void FleetModel::Declare(const std::vector<VideoServer>& servers, base::SteadyTime now) {
  for (const VideoServer& s : servers) {
    Record* r = Find(s.id);
    if (r == nullptr) {
      auto rec = std::make_unique<Record>();
      rec->state_since = now;
      rec->healthy_since = now;
      rec->own = Own(s.id);
      index_.emplace(s.id, servers_.size());
      servers_.push_back(std::move(rec));
      r = servers_.back().get();
      ++directory_version_;
      rebuild_ = true;
    } else if (!(r->info == s)) {
      ++directory_version_;
      rebuild_ = true;
    }
    r->info = s;
    r->declared = true;
    r->monitored = s.monitored || r->connected;
    Touch(*r);
    Refresh(*r, now, s.monitored ? ChangeReason::kDeclared : ChangeReason::kDeclaredUnmonitored);
  }
}

const VideoServer* FleetModel::Declared(std::string_view id) const {
  const Record* r = Find(id);
  return r != nullptr && r->declared ? &r->info : nullptr;
}

ServerState FleetModel::Register(const VideoServer& info, base::SteadyTime now) {
  Record* r = Find(info.id);
  if (r == nullptr) {
    auto rec = std::make_unique<Record>();
    rec->state_since = now;
    rec->healthy_since = now;
    rec->reason = ChangeReason::kRegistered;
    rec->own = Own(info.id);
    index_.emplace(info.id, servers_.size());
    servers_.push_back(std::move(rec));
    r = servers_.back().get();
    ++directory_version_;
    rebuild_ = true;
  }
  VideoServer updated = info;
  updated.monitored = true;  // it reports: from now on its reports are expected
  if (!(r->info == updated)) {
    ++directory_version_;
    rebuild_ = true;
  }
  r->info = std::move(updated);
  r->monitored = true;
  r->connected = true;
  r->counters.NewRegistration();
  Touch(*r);
  Refresh(*r, now, ChangeReason::kRegistered);
  return r->state;
}

void FleetModel::Disconnected(std::string_view id) {
  if (Record* r = Find(id)) r->connected = false;
}

FleetModel::StatsOutcome FleetModel::OnStats(std::string_view id, const proto::Stats& stats,
                                             base::SteadyTime now) {
  Record* r = Find(id);
  if (r == nullptr) return {};
  Touch(*r);
  const std::int64_t own = r->own;
  if (own <= 0) {
    r->own_since.reset();
  } else if (!r->own_since) {
    r->own_since = now;
  }
  if (!started_at_) started_at_ = now;
  const auto result = r->counters.Ingest(stats, now, params_.report_interval);
  if (result.verdict != StatsVerdict::kReordered) {
    // After a restart the peers set up again.
    if (stats.peers <= 0 || result.verdict == StatsVerdict::kReset) {
      r->peers_since.reset();
      r->peers_moved = false;
    }
    if (stats.peers > 0 && !r->peers_since) {
      r->peers_since = now;
    }
  }
  StatsOutcome out{true, result.verdict};
  if (result.verdict == StatsVerdict::kReordered) {
    ++r->stats_reordered;
    return out;
  }
  ++r->stats_accepted;
  r->last_report = now;
  r->latest = stats;
  r->pending = 0;
  r->fleet_admitted = 0;
  r->rates = result.rates;
  if (result.verdict == StatsVerdict::kReset) {
    // The server restarted: whatever it says now about its load starts from nothing, so it
    // ramps up again like a newcomer.
    ++r->stats_resets;
    r->resets.push_back(now);
    r->forwarding = Forwarding::kUnknown;
    // bad_reports is kept: a restart is no evidence of health, and a server that crashes every
    // few reports would otherwise never reach the count (the restart-loop rule also sees it).
    if (r->state == ServerState::kActive) r->in_service_since = now;
    StateChange note{r->info.id, r->state, r->state, ChangeReason::kReset, now};
    changes_.push_back(note);
    r->history.push_back(std::move(note));
    if (r->history.size() > kHistory) r->history.pop_front();
  } else if (result.rates) {
    const auto grace = params_.scoring.forwarding.media_grace;
    const bool settled = r->own_since && now - *r->own_since >= grace;
    if (r->peers_since && !Still(*result.rates)) r->peers_moved = true;
    const bool reported_settled =
        r->peers_since && (r->peers_moved || now - *r->peers_since >= grace);
    const std::int64_t peers =
        std::max<std::int64_t>(reported_settled ? stats.peers : 0, settled ? own : 0);
    r->forwarding = JudgeForwarding(*result.rates, peers, {stats.streams_in, stats.streams_out},
                                    params_.scoring.forwarding);
    r->bad_reports = Swallowing(r->forwarding) ? r->bad_reports + 1 : 0;
    if (r->forwarding == Forwarding::kOk && r->probation_counters) r->probation = false;
  }
  const bool was_active = r->state == ServerState::kActive;
  Refresh(*r, now, ChangeReason::kReporting);
  // A router that has just started meets the fleet all at once. A server whose first report shows
  // it was already carrying media (peers, or counters that moved before this router saw them)
  // was serving before we started: its load is real, it is established. One with no history is a
  // newcomer and ramps up like any other. (Treating everyone as established would believe every
  // newcomer's zero load; treating everyone as new would leave no one to compare with.)
  if (!was_active && r->state == ServerState::kActive && r->stats_accepted == 1 &&
      now - *started_at_ < params_.scoring.slow_start_window &&
      (stats.peers > 0 || stats.packets_in > 0 || stats.packets_out > 0)) {
    r->in_service_since = now - params_.scoring.slow_start_window;
  }
  EjectOnReport(*r, now);
  return out;
}

void FleetModel::EjectOnReport(Record& r, base::SteadyTime now) {
  // The report that completes the count ejects at once, rather than at the next tick (up to an
  // interval later, and later still on replicas whose ticks fall elsewhere): the black hole is
  // out two intervals after its first bad report. Not when others are about to look as bad (one
  // report short of the count, or past it): with them, the suspects might outnumber the cap or be
  // the whole fleet (a fleet-wide signal), and Tick weighs them all together to eject the
  // strongest, or nobody.
  const std::uint32_t needed = r.probation ? 1 : params_.ejection.not_forwarding_reports;
  if (panic_ || r.ejected || r.bad_reports < needed ||
      (r.state != ServerState::kActive && r.state != ServerState::kStale)) {
    return;
  }
  std::size_t fleet = 0, ejected = 0, candidates = 0, suspects = 0;
  for (const auto& rp : servers_) {
    const Record& o = *rp;
    if (o.state == ServerState::kGone) continue;
    ++fleet;
    if (o.ejected) {
      ++ejected;
      continue;
    }
    if (o.state != ServerState::kActive && o.state != ServerState::kStale) continue;
    ++candidates;
    const std::uint32_t short_of = o.probation ? 1 : params_.ejection.not_forwarding_reports;
    if (o.bad_reports + 1 >= short_of) ++suspects;  // `r` itself included
  }
  if (suspects >= candidates || ejected + suspects > MaxEjected(fleet, params_.ejection)) return;
  Eject(r, EjectReason::kNotForwarding, now);
}

bool FleetModel::OnFailureReport(std::string_view server, std::string_view user,
                                 std::string_view address, base::SteadyTime now) {
  Record* r = Find(server);
  if (r == nullptr) return false;
  r->AddReporter(user, address, now);
  Touch(*r);
  return true;
}

bool FleetModel::Drain(std::string_view id, base::SteadyTime now) {
  Record* r = Find(id);
  if (r == nullptr) return false;
  r->drained = true;
  Touch(*r);
  Refresh(*r, now, ChangeReason::kDrained);
  return true;
}

bool FleetModel::Undrain(std::string_view id, base::SteadyTime now) {
  Record* r = Find(id);
  if (r == nullptr) return false;
  r->drained = false;
  r->resets.clear();  // restarts during a drain are maintenance, not a crash loop
  Touch(*r);
  Refresh(*r, now, ChangeReason::kUndrained);
  return true;
}

ServerState FleetModel::Derive(const Record& r, base::SteadyTime now) const {
  if (r.drained) return ServerState::kDraining;
  if (r.monitored && r.last_report) {
    const auto age = now - *r.last_report;
    if (age >= params_.gone_after) return ServerState::kGone;
    if (r.ejected) return ServerState::kEjected;
    if (age >= params_.report_interval * params_.stale_after_reports) return ServerState::kStale;
    return ServerState::kActive;
  }
  if (r.ejected) return ServerState::kEjected;
  return r.monitored ? ServerState::kPending : ServerState::kActive;
}

void FleetModel::Refresh(Record& r, base::SteadyTime now, ChangeReason reason) {
  const ServerState next = Derive(r, now);
  if (next == r.state) return;
  Touch(r);
  StateChange change{r.info.id, r.state, next, reason, now};
  if (next == ServerState::kActive) r.in_service_since = now;  // (re)entering: slow start
  if (next == ServerState::kGone || next == ServerState::kStale)
    r.forwarding = Forwarding::kUnknown;
  r.state = next;
  r.reason = change.reason;
  r.state_since = now;
  r.history.push_back(change);
  if (r.history.size() > kHistory) r.history.pop_front();
  changes_.push_back(std::move(change));
}

bool FleetModel::EstablishedExists(base::SteadyTime now) const {
  for (const auto& r : servers_) {
    if (r->state == ServerState::kActive && r->in_service_since &&
        now - *r->in_service_since >= params_.scoring.slow_start_window) {
      return true;
    }
  }
  return false;
}

double FleetModel::Weight(const Record& r, base::SteadyTime now, bool established_exists) const {
  // A whole fleet starting together has nobody to compare with: everyone at full weight.
  if (!established_exists || !r.in_service_since) return 1;
  return SlowStartWeight(now - *r.in_service_since, params_.scoring);
}

ScoreInput FleetModel::InputFor(const Record& r, std::int64_t own, base::SteadyTime now,
                                bool established) const {
  ScoreInput in;
  in.server = &r.info;
  in.state = r.state;
  in.reported_load = r.ReportedLoad();
  in.counter_load = r.CounterLoad(params_.scoring, own);
  in.own = own;
  // Pending placements are absorbed by the next report; an unmonitored server sends none, so
  // they would pile up for ever. Its load is the router's own count (which includes them).
  in.pending = r.monitored ? std::max<std::int64_t>(r.pending, r.fleet_admitted) : 0;
  in.failure_share = r.FailureShare(own);
  in.forwarding = r.forwarding;
  in.failing_reports = !FailureSharePasses(r.Reporters(), own, params_.ejection);
  in.probation = r.probation;
  in.weight = Weight(r, now, established);
  in.new_this_interval = now - r.interval_start >= params_.report_interval ? 0 : r.new_in_interval;
  in.admission_closed = now < r.admission_closed_until;
  in.cap_share = admission_share_;
  return in;
}

void FleetModel::ScoreAll(base::SteadyTime now, std::vector<ScoreInput>& inputs,
                          std::vector<Score>& scores, Evidence evidence) const {
  const bool established = EstablishedExists(now);
  inputs.clear();
  scores.clear();
  std::int64_t sum = 0;
  std::size_t counted = 0;
  for (const auto& r : servers_) {
    inputs.push_back(InputFor(*r, r->own, now, established));
    scores.push_back(ScoreServer(inputs.back(), params_.scoring, evidence));
    if (r->state == ServerState::kActive && inputs.back().weight >= 1) {
      sum += FixedUtilization(scores.back().utilization);
      ++counted;
    }
  }
  if (counted == 0) return;
  const double mean = MeanOf(sum, counted);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].weight >= 1) continue;
    inputs[i].fleet_utilization = mean;
    scores[i] = ScoreServer(inputs[i], params_.scoring, evidence);
  }
}

PickResult FleetModel::ChooseByFullScan(const PickRequest& request, base::SteadyTime now) {
  thread_local std::vector<ScoreInput> inputs;
  thread_local std::vector<Score> scores;
  ScoreAll(now, inputs, scores, CurrentEvidence());
  return PickServer(inputs, scores, request, params_.scoring, rng_);
}

Pick FleetModel::Choose(const PickRequest& request, base::SteadyTime now) {
  Pick pick;
  bool every_active_suspect = false;
  if (method_ == ChoiceMethod::kIndexed) {
    Advance(now);
    pick.detail = ChooseIndexed(request);
    every_active_suspect = active_count_ > 0 && suspect_count_ == active_count_;
  } else {
    pick.detail = ChooseByFullScan(request, now);
    every_active_suspect = pick.detail.index < 0 && EveryActiveServerSuspect();
  }
  if (pick.detail.index < 0 && every_active_suspect) {
    // Every server that could take users has concrete evidence against it (a fleet-wide signal:
    // more likely the network or the router's view than every server at once): fail open. A
    // full scan, but only while the whole fleet looks bad.
    thread_local std::vector<ScoreInput> inputs;
    thread_local std::vector<Score> scores;
    ScoreAll(now, inputs, scores, Evidence::kNone);
    pick.detail = PickServer(inputs, scores, request, params_.scoring, rng_);
  }
  if (pick.detail.index < 0) return pick;
  Record& r = *servers_[static_cast<std::size_t>(pick.detail.index)];
  pick.server = r.info.id;
  if (method_ == ChoiceMethod::kIndexed) {
    pick.interval_cap = AdmissionCap(r.input, r.score);
    pick.room = AdmissionRoom(r.input);
  } else {
    const ScoreInput in = InputFor(r, r.own, now, EstablishedExists(now));
    pick.interval_cap = AdmissionCap(in, ScoreServer(in, params_.scoring, CurrentEvidence()));
    pick.room = AdmissionRoom(in);
  }
  if (r.monitored) ++r.pending;
  if (now - r.interval_start >= params_.report_interval) {
    r.interval_start = now;
    r.new_in_interval = 0;
  }
  ++r.new_in_interval;
  Touch(r);
  return pick;
}

void FleetModel::Admitted(std::string_view id, std::uint32_t fleet_count) {
  Record* r = Find(id);
  if (r == nullptr || fleet_count <= r->fleet_admitted) return;
  r->fleet_admitted = fleet_count;
  Touch(*r);
}

void FleetModel::AdmissionRefused(std::string_view id, base::SteadyTime until,
                                  base::SteadyTime now) {
  Record* r = Find(id);
  if (r == nullptr) return;
  if (r->monitored && r->pending > 0) --r->pending;
  if (now - r->interval_start < params_.report_interval && r->new_in_interval > 0) {
    --r->new_in_interval;
  }
  r->admission_closed_until = std::max(r->admission_closed_until, until);
  Touch(*r);
}

void FleetModel::SetAdmissionShare(std::uint32_t replicas) {
  replicas = std::max<std::uint32_t>(replicas, 1);
  if (replicas == admission_share_) return;
  admission_share_ = replicas;
  rebuild_ = true;  // every server's cap changes
}

bool FleetModel::CanKeep(std::string_view id, base::SteadyTime now) const {
  const Record* r = Find(id);
  if (r == nullptr) return false;
  const std::int64_t own = r->own;
  if (r->state == ServerState::kDraining || r->state == ServerState::kEjected ||
      r->state == ServerState::kGone) {
    return false;
  }
  // Concrete evidence that media through it fails keeps a returning user off it, panic or not,
  // unless every server has such evidence (a fleet-wide signal: fail open, as Choose does).
  const bool suspect =
      Swallowing(r->forwarding) || !FailureSharePasses(r->Reporters(), own, params_.ejection);
  if (suspect && !EveryActiveServerSuspect()) return false;
  // The user's media may already be there: no slow start, no interval cap, just real room.
  ScoreInput in = InputFor(*r, own, now, /*established=*/false);
  const Score s = ScoreServer(in, params_.scoring, CurrentEvidence());
  return s.effective_load <= std::max<double>(1, r->info.capacity);
}

bool FleetModel::EveryActiveServerSuspect() const {
  bool any = false;
  for (const auto& r : servers_) {
    if (r->state != ServerState::kActive) continue;
    any = true;
    if (!Swallowing(r->forwarding) && r->Reporters() < params_.ejection.failure_min_reporters) {
      return false;
    }
  }
  return any;
}

void FleetModel::Eject(Record& r, EjectReason reason, base::SteadyTime now) {
  r.ejected = true;
  r.eject_reason = reason;
  ++r.ejections;
  ++r.multiplier;
  r.ejected_until = now + EjectionDuration(r.multiplier, params_.ejection);
  Refresh(r, now, ChangeReasonFor(reason));
}

void FleetModel::Tick(base::SteadyTime now) {
  const auto& ep = params_.ejection;
  rebuild_ = true;  // time passed for every server: the kept scores start over
  // Liveness, failure-report windows, ejection expiry and decay.
  for (auto& rp : servers_) {
    Record& r = *rp;
    r.ForgetReportsBefore(now - ep.failure_window);
    while (!r.resets.empty() && now - r.resets.front() >= ep.restart_loop_window) {
      r.resets.pop_front();
    }
    if (r.ejected && now >= r.ejected_until) {
      if (r.monitored && Swallowing(r.forwarding)) {
        // The last evidence still says it swallows media (however old: silence since is no
        // evidence of health): the ejection is renewed, longer. Only evidence of forwarding (or
        // of nothing left to forward) ends an ejection; a heartbeat alone never does.
        ++r.multiplier;
        r.ejected_until = now + EjectionDuration(r.multiplier, ep);
        StateChange note{r.info.id, r.state, r.state, ChangeReason::kEjectionRenewed, now};
        r.history.push_back(note);
        if (r.history.size() > kHistory) r.history.pop_front();
        changes_.push_back(std::move(note));
      } else {
        r.ejected = false;
        // The evidence behind the ejection has been judged; only new reports count from here
        // (otherwise a server silent at expiry would be re-ejected on its old reports at once).
        r.bad_reports = 0;
        r.reporters.clear();  // reports were about the users it had; they have moved
        r.reporter_addresses.clear();
        r.resets.clear();
        r.healthy_since = now;
        // Readmitted without evidence of health (with no users it had nothing to forward, and
        // nobody was there to complain): on probation.
        const bool report_based = r.eject_reason == EjectReason::kFailureReports ||
                                  r.eject_reason == EjectReason::kSuccessRateOutlier;
        r.probation = r.monitored || report_based;
        // Bounded in time whatever the reason: a server whose users stay idle (alone in their
        // rooms, audio only) may never show a rate to judge.
        r.probation_until = now + ep.failure_window;
        r.probation_counters = !report_based;
        Refresh(r, now, ChangeReason::kEjectionExpired);
      }
    }
    if (r.probation && r.probation_until && now >= *r.probation_until && !r.ejected) {
      r.probation = false;
      r.probation_until.reset();
    }
    if (!r.ejected && r.multiplier > 0 && now - r.healthy_since >= ep.base_ejection) {
      --r.multiplier;
      r.healthy_since = now;
    }
    Refresh(r, now,
            Derive(r, now) == ServerState::kGone ? ChangeReason::kGone : ChangeReason::kStale);
  }

  EjectionParams probation_rules = ep;
  // The ejection rules, over servers that could take users. Each candidate carries the strength
  // of its evidence, so that when more look bad than may be ejected the strongest go first.
  struct Candidate {
    Record* record;
    EjectReason why;
    double strength;  // within a reason: more consecutive bad reports, more failing users, ...
  };
  std::vector<Candidate> bad;
  std::vector<SuccessSample> samples;
  std::vector<Record*> sampled;
  std::size_t fleet = 0, ejected = 0, candidates = 0;
  for (auto& rp : servers_) {
    Record& r = *rp;
    if (r.state == ServerState::kGone) continue;
    ++fleet;
    if (r.ejected) {
      ++ejected;
      continue;
    }
    if (r.state != ServerState::kActive && r.state != ServerState::kStale) continue;
    ++candidates;
    const std::int64_t users = r.own;
    const std::uint32_t reporters = r.Reporters();
    const std::uint32_t bad_needed = r.probation ? 1 : ep.not_forwarding_reports;
    // On probation two reporters suffice, or one when it is the only user there.
    probation_rules.failure_min_reporters = static_cast<std::uint32_t>(
        std::clamp<std::int64_t>(users, 1, std::min<std::uint32_t>(2, ep.failure_min_reporters)));
    const EjectionParams& rules = r.probation ? probation_rules : ep;
    if (r.bad_reports >= bad_needed) {
      bad.push_back({&r, EjectReason::kNotForwarding, static_cast<double>(r.bad_reports)});
    } else if (r.monitored && r.resets.size() >= ep.restart_loop_resets) {
      bad.push_back({&r, EjectReason::kRestartLoop, static_cast<double>(r.resets.size())});
    } else if (!FailureSharePasses(reporters, users, rules)) {
      bad.push_back({&r, EjectReason::kFailureReports, r.FailureShare(users)});
    }
    samples.push_back({1 - r.FailureShare(users), users, reporters});
    sampled.push_back(&r);
  }
  for (std::size_t i : SuccessRateOutliers(samples, ep)) {
    Record* r = sampled[i];
    const bool listed =
        std::any_of(bad.begin(), bad.end(), [&](const Candidate& c) { return c.record == r; });
    if (!listed) bad.push_back({r, EjectReason::kSuccessRateOutlier, 1 - samples[i].success_rate});
  }

  // Panic: more of the fleet looks bad than may be ejected at once, which points at the router's
  // view (or the network between it and everyone) as much as at the servers. The strongest cases
  // are still ejected up to the cap, and concrete evidence (counters, failure reports over the
  // absolute bound) still keeps a server out of new placements and migrations; only the router's
  // own doubtful view is set aside (scoring.h, Evidence::kConcreteOnly). A server that merely
  // swallowed one or two reports is not a suspect: the forwarding signal alone never causes panic.
  const std::size_t cap = MaxEjected(fleet, ep);
  const std::size_t suspects = ejected + bad.size();
  const bool panic = suspects > cap;
  if (panic != panic_) {
    // An empty server id marks a fleet-wide event.
    changes_.push_back({"", ServerState::kActive, ServerState::kActive,
                        panic ? ChangeReason::kPanicEntered : ChangeReason::kPanicExited, now});
  }
  panic_ = panic;
  // When every server that is not already ejected looks bad, the fault is more likely between the
  // router and everyone (or in the router's view) than in every server: nobody is ejected, the
  // fleet fails open (Choose), and ejecting by declaration order would only move people around.
  const bool whole_fleet = candidates > 0 && bad.size() >= candidates;
  panic_detail_ =
      !panic ? ""
             : std::to_string(suspects) + " of " + std::to_string(fleet) +
                   " servers look bad; at most " + std::to_string(cap) + " may be ejected: " +
                   (whole_fleet ? "all look bad, so none is ejected and the fleet fails open"
                                : "the worst are, and servers with concrete evidence against "
                                  "them take no new users");
  std::stable_sort(bad.begin(), bad.end(), [](const Candidate& a, const Candidate& b) {
    if (a.why != b.why) return a.why < b.why;  // EjectReason is ordered by strength
    return a.strength > b.strength;
  });
  const std::size_t slots = whole_fleet ? 0 : (cap > ejected ? cap - ejected : 0);
  for (std::size_t i = 0; i < bad.size() && i < slots; ++i) Eject(*bad[i].record, bad[i].why, now);

  // Forget self-registered servers long gone and empty.
  for (std::size_t i = 0; i < servers_.size();) {
    Record& r = *servers_[i];
    const bool forget = !r.declared && r.state == ServerState::kGone && r.last_report &&
                        now - *r.last_report >= params_.gone_after + params_.forget_after &&
                        r.own == 0;
    if (!forget) {
      ++i;
      continue;
    }
    index_.erase(r.info.id);
    servers_.erase(servers_.begin() + static_cast<std::ptrdiff_t>(i));
    for (std::size_t j = i; j < servers_.size(); ++j) index_[servers_[j]->info.id] = j;
    ++directory_version_;
  }
}

std::vector<Evacuation> FleetModel::DueEvacuations(base::SteadyTime now) {
  std::vector<Evacuation> out;
  for (auto& rp : servers_) {
    Record& r = *rp;
    std::optional<EvacuationCause> cause;
    if (r.state == ServerState::kDraining) cause = EvacuationCause::kDrain;
    if (r.state == ServerState::kEjected) cause = EvacuationCause::kEjected;
    if (r.state == ServerState::kGone) cause = EvacuationCause::kGone;
    if (!cause || r.own == 0 || now < r.next_migration) continue;
    r.next_migration = now + params_.migration.cooldown;
    out.push_back({r.info.id, *cause, params_.migration.batch});
  }
  return out;
}

std::vector<StateChange> FleetModel::TakeChanges() {
  std::vector<StateChange> out;
  out.swap(changes_);
  return out;
}

std::optional<ServerState> FleetModel::StateOf(std::string_view id) const {
  const Record* r = Find(id);
  return r == nullptr ? std::nullopt : std::optional<ServerState>(r->state);
}

std::optional<ChangeReason> FleetModel::ReasonOf(std::string_view id) const {
  const Record* r = Find(id);
  return r == nullptr ? std::nullopt : std::optional<ChangeReason>(r->reason);
}

std::vector<VideoServer> FleetModel::Directory() const {
  std::vector<VideoServer> out;
  out.reserve(servers_.size());
  for (const auto& r : servers_) out.push_back(r->info);
  return out;
}

FleetView FleetModel::View(base::SteadyTime now) const {
  FleetView view;
  view.taken_at = now;
  view.panic = panic_;
  view.panic_detail = panic_detail_;
  std::size_t fleet = 0;
  std::vector<ScoreInput> inputs;
  std::vector<Score> scores;
  ScoreAll(now, inputs, scores, CurrentEvidence());
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    const Record& r = *servers_[i];
    if (r.state != ServerState::kGone) ++fleet;
    ServerView v;
    v.server = r.info;
    v.declared = r.declared;
    v.monitored = r.monitored;
    v.connected = r.connected;
    v.state = r.state;
    v.reason = r.reason;
    v.in_state = ToMs(now - r.state_since);
    if (r.last_report) v.last_report_age = ToMs(now - *r.last_report);
    v.latest = r.latest;
    v.rates = r.rates;
    v.forwarding = r.forwarding;
    v.bad_reports = r.bad_reports;
    v.own = r.own;
    const ScoreInput& in = inputs[i];
    v.reported_load = in.reported_load;
    v.counter_load = in.counter_load;
    v.pending = in.pending;
    v.failure_reporters = r.Reporters();
    v.failure_share = in.failure_share;
    v.weight = in.weight;
    v.new_this_interval = in.new_this_interval;
    v.score = scores[i];
    if (r.ejected) {
      v.eject_reason = r.eject_reason;
      v.ejected_for =
          ToMs(r.ejected_until > now ? r.ejected_until - now : base::SteadyTime::duration{});
    }
    v.ejections = r.ejections;
    v.ejection_multiplier = r.multiplier;
    v.probation = r.probation;
    v.recent_restarts = static_cast<std::uint32_t>(r.resets.size());
    v.stats_accepted = r.stats_accepted;
    v.stats_reordered = r.stats_reordered;
    v.stats_resets = r.stats_resets;
    v.history.assign(r.history.begin(), r.history.end());
    view.servers.push_back(std::move(v));
  }
  view.max_ejected = MaxEjected(fleet, params_.ejection);
  return view;
}

// ------------------------------------------------------------------ the router's own counts

void FleetModel::SetOwn(std::string_view id, std::int64_t users) {
  users = std::max<std::int64_t>(users, 0);
  if (users == 0) {
    own_.erase(AsAbsl(id));
  } else {
    own_[AsAbsl(id)] = users;
  }
  Record* r = Find(id);
  if (r == nullptr || r->own == users) return;
  r->own = users;
  Touch(*r);
}

void FleetModel::SetLoad(const LoadMap& own) {
  std::vector<std::string> gone;
  for (const auto& [id, users] : own_) {
    if (!own.contains(id)) gone.push_back(id);
  }
  for (const auto& id : gone) SetOwn(id, 0);
  for (const auto& [id, users] : own) SetOwn(id, users);
}

std::int64_t FleetModel::Own(std::string_view id) const {
  const auto it = own_.find(AsAbsl(id));
  return it == own_.end() ? 0 : it->second;
}

// ------------------------------------------------------------------ kept scores and the index

void FleetModel::Touch(Record& r) {
  if (method_ != ChoiceMethod::kIndexed || rebuild_ || r.dirty) return;
  r.dirty = true;
  dirty_.push_back(r.index);
}

double FleetModel::MeanUtilization() const { return MeanOf(utilization_sum_, utilization_count_); }

void FleetModel::ScoreKept(Record& r, base::SteadyTime now) {
  const bool active = r.state == ServerState::kActive;
  r.input = InputFor(r, r.own, now, established_);
  r.score = ScoreServer(r.input, params_.scoring, evidence_);
  r.slow = active && r.input.weight < 1;

  const bool established = active && r.in_service_since &&
                           now - *r.in_service_since >= params_.scoring.slow_start_window;
  if (established != r.established) {
    r.established = established;
    established_count_ = established ? established_count_ + 1 : established_count_ - 1;
  }
  if (active && !established && r.in_service_since) {
    const base::SteadyTime at = *r.in_service_since + params_.scoring.slow_start_window;
    if (!next_established_at_ || at < *next_established_at_) next_established_at_ = at;
  }

  const bool in_mean = active && r.input.weight >= 1;
  const std::int64_t share = in_mean ? FixedUtilization(r.score.utilization) : 0;
  if (r.in_mean) {
    utilization_sum_ -= r.mean_share;
    --utilization_count_;
  }
  if (in_mean) {
    utilization_sum_ += share;
    ++utilization_count_;
  }
  r.in_mean = in_mean;
  r.mean_share = share;

  const bool suspect = active && (Swallowing(r.forwarding) ||
                                  r.Reporters() >= params_.ejection.failure_min_reporters);
  if (active != r.counted_active) active_count_ = active ? active_count_ + 1 : active_count_ - 1;
  if (suspect != r.counted_suspect) {
    suspect_count_ = suspect ? suspect_count_ + 1 : suspect_count_ - 1;
  }
  r.counted_active = active;
  r.counted_suspect = suspect;

  // Its interval cap lifts when its interval ends, or when the fleet-wide budget opens again:
  // look at it again then.
  std::optional<base::SteadyTime> next;
  if (r.input.new_this_interval > 0) next = r.interval_start + params_.report_interval;
  if (r.input.admission_closed && (!next || r.admission_closed_until < *next)) {
    next = r.admission_closed_until;
  }
  if (next && r.wakeup != next) {
    r.wakeup = next;
    wakeups_.push({*next, r.index});
  }
}

void FleetModel::Index(Record& r) {
  const bool in = r.score.eligible();
  if (in == r.indexed) return;
  r.indexed = in;
  eligible_.Set(r.index, in);
  region_tiers_[r.region_tier].eligible.Set(r.region_pos, in);
  if (r.group_tier) group_tiers_[*r.group_tier].eligible.Set(r.group_pos, in);
}

void FleetModel::ScoreSlowStarters() {
  const double mean = MeanUtilization();
  for (std::size_t i : slow_) {
    Record& r = *servers_[i];
    r.input.fleet_utilization = mean;
    r.score = ScoreServer(r.input, params_.scoring, evidence_);
    Index(r);
  }
}

void FleetModel::Rebuild(base::SteadyTime now) {
  rebuild_ = false;
  dirty_.clear();
  slow_.clear();
  wakeups_ = {};
  region_tiers_.clear();
  group_tiers_.clear();
  region_tier_of_.clear();
  group_tier_of_.clear();
  eligible_.Reset(servers_.size());
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    Record& r = *servers_[i];
    r.index = i;
    const auto [region, added] = region_tier_of_.try_emplace(r.info.region, region_tiers_.size());
    if (added) region_tiers_.emplace_back();
    r.region_tier = region->second;
    r.region_pos = region_tiers_[r.region_tier].members.size();
    region_tiers_[r.region_tier].members.push_back(i);
    r.group_tier.reset();
    const auto group = params_.scoring.region_group.find(r.info.region);
    if (group != params_.scoring.region_group.end()) {
      const auto [g, fresh] = group_tier_of_.try_emplace(group->second, group_tiers_.size());
      if (fresh) group_tiers_.emplace_back();
      r.group_tier = g->second;
      r.group_pos = group_tiers_[g->second].members.size();
      group_tiers_[g->second].members.push_back(i);
    }
  }
  for (auto& t : region_tiers_) t.eligible.Reset(t.members.size());
  for (auto& t : group_tiers_) t.eligible.Reset(t.members.size());

  evidence_ = CurrentEvidence();
  established_ = EstablishedExists(now);
  established_count_ = 0;
  next_established_at_.reset();
  utilization_sum_ = 0;
  utilization_count_ = 0;
  active_count_ = suspect_count_ = 0;
  for (auto& rp : servers_) {
    Record& r = *rp;
    r.dirty = r.listed_slow = r.established = r.in_mean = r.indexed = false;
    r.counted_active = r.counted_suspect = false;
    r.wakeup.reset();
    ScoreKept(r, now);
    if (r.slow) {
      r.listed_slow = true;
      slow_.push_back(r.index);
    } else {
      Index(r);
    }
  }
  ScoreSlowStarters();
}

void FleetModel::Advance(base::SteadyTime now) {
  if (rebuild_ || evidence_ != CurrentEvidence() ||
      (!established_ && next_established_at_ && now >= *next_established_at_)) {
    return Rebuild(now);
  }
  while (!wakeups_.empty() && wakeups_.top().at <= now) {
    Record& r = *servers_[wakeups_.top().index];
    if (r.wakeup == wakeups_.top().at) r.wakeup.reset();
    wakeups_.pop();
    Touch(r);
  }
  // Servers in slow start first look at the time: those whose slow start ended join the mean.
  for (std::size_t i : slow_) {
    Record& r = *servers_[i];
    if (!r.dirty) ScoreKept(r, now);
  }
  for (std::size_t i : dirty_) {
    Record& r = *servers_[i];
    r.dirty = false;
    ScoreKept(r, now);
    if (!r.slow) {
      Index(r);
    } else if (!r.listed_slow) {
      r.listed_slow = true;
      slow_.push_back(i);
    }
  }
  dirty_.clear();
  // The first server past its slow start, or the last one gone: every weight changes.
  if (established_ != (established_count_ > 0)) return Rebuild(now);
  std::erase_if(slow_, [this](std::size_t i) {
    Record& r = *servers_[i];
    if (r.slow) return false;
    r.listed_slow = false;
    Index(r);
    return true;
  });
  ScoreSlowStarters();
}

PickResult FleetModel::ChooseIndexed(const PickRequest& request) {
  // The tiers as PickServer finds them: the user's region when it has an eligible server, else its
  // region group, else anywhere (where, by then, no server of the region or group is eligible).
  const Tier* region = nullptr;
  const Tier* group = nullptr;
  if (!request.region.empty()) {
    if (const auto it = region_tier_of_.find(AsAbsl(request.region)); it != region_tier_of_.end()) {
      region = &region_tiers_[it->second];
    }
    const auto name = params_.scoring.region_group.find(AsAbsl(request.region));
    if (name != params_.scoring.region_group.end()) {
      if (const auto it = group_tier_of_.find(name->second); it != group_tier_of_.end()) {
        group = &group_tiers_[it->second];
      }
    }
  }
  PickResult result;
  const Tier* tier = nullptr;  // null: the whole fleet
  if (region != nullptr && region->eligible.size() > 0) {
    result.tier = PickTier::kRegion;
    tier = region;
  } else if (group != nullptr && group->eligible.size() > 0) {
    result.tier = PickTier::kRegionGroup;
    tier = group;
  } else if (eligible_.size() > 0) {
    result.tier = PickTier::kAnywhere;
  } else {
    return result;
  }
  const EligibleSet& set = tier != nullptr ? tier->eligible : eligible_;
  auto nth = [&](std::size_t k) {
    const std::size_t pos = set.Nth(k);
    return static_cast<int>(tier != nullptr ? tier->members[pos] : pos);
  };
  result.candidates = static_cast<int>(set.size());

  // Space affinity, over the servers the space is on (PickServer's rules; on a full tie the server
  // declared first, as its scan finds it).
  if (request.space_servers != nullptr) {
    const Record* best = nullptr;
    std::int64_t best_members = 0;
    for (const auto& [id, members] : *request.space_servers) {
      if (members <= 0) continue;
      const Record* r = Find(id);
      if (r == nullptr || !r->indexed || r->input.weight < 1 ||
          r->score.utilization >= params_.scoring.space_affinity_max_utilization ||
          TierOf(r->info, request, params_.scoring) != result.tier) {
        continue;
      }
      const bool better =
          best == nullptr || members > best_members ||
          (members == best_members &&
           (r->score.utilization < best->score.utilization ||
            (r->score.utilization == best->score.utilization && r->index < best->index)));
      if (better) {
        best = r;
        best_members = members;
      }
    }
    if (best != nullptr) {
      result.index = static_cast<int>(best->index);
      result.affinity = true;
      return result;
    }
  }
  if (set.size() == 1) {
    result.index = nth(0);
    return result;
  }
  // Power of two choices, with PickServer's draws.
  std::uniform_int_distribution<std::size_t> first(0, set.size() - 1);
  std::uniform_int_distribution<std::size_t> second(0, set.size() - 2);
  const std::size_t a = first(rng_);
  std::size_t b = second(rng_);
  if (b >= a) ++b;
  int x = nth(a), y = nth(b);
  if (servers_[static_cast<std::size_t>(y)]->score.utilization <
      servers_[static_cast<std::size_t>(x)]->score.utilization) {
    std::swap(x, y);
  }
  result.index = x;
  result.sampled_other = y;
  return result;
}

}  // namespace vrouter::fleet
