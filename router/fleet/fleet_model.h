// The router's model of the video-server fleet: every server's registration, reports, client
// failure reports, operator drains and ejections, turned into states, scores and choices.
//
// Pure and single-threaded: every call passes the router's clock (`now`); the router's own
// per-server user counts are handed in when they change (SetOwn, SetLoad). The app wraps it in a
// mutex (router/service/fleet_controller.h); tests, the incident replay and the fleet simulator
// drive it on simulated time.
//
// Choosing costs the same whatever the fleet's size: each server's score is kept from one event
// to the next (a report, a placement, a change of its user count, a tick, the end of its
// admission interval) and recomputed only when one of them touches it, and the eligible servers
// are indexed per region, region group and fleet (eligible_set.h), so that power of two choices
// draws from them without listing them. Only servers in slow start, whose weight grows with time,
// are rescored on every choice. ChoiceMethod::kFullScan rescores every server on every choice,
// as the model did before; tests hold the two to the same decisions.
//
// A server's state is derived, in this order of precedence:
//   draining  an operator drained it (stays until undrained, whatever else happens)
//   gone      monitored, and no report for `gone_after`
//   ejected   a health rule ejected it and the ejection has not expired
//   stale     monitored, and no report for `stale_after_reports` intervals
//   pending   monitored, and no report yet
//   active    otherwise: it may take new users
// Every transition is returned as a StateChange with its reason, for logs, metrics and the
// `state` push to the server; the last few are kept as the server's history.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/video_server_messages.h"
#include "router/base/time.h"
#include "router/fleet/directory.h"
#include "router/fleet/ejection.h"
#include "router/fleet/eligible_set.h"
#include "router/fleet/registration_policy.h"
#include "router/fleet/scoring.h"
#include "router/fleet/server_health.h"

namespace vrouter::fleet {

using LoadMap = absl::flat_hash_map<std::string, std::int64_t>;

enum class ChoiceMethod : std::uint8_t {
  kIndexed,   // scores kept per event, eligible servers indexed: what the router runs
  kFullScan,  // every server rescored on every choice: the reference kIndexed is tested against
};

struct MigrationParams {
  // Users moved off one server per step, and the pause between steps. 50 users per second per
  // server empties a full 500-user server in 10 s while never asking the rest of the fleet to
  // set up more than 50 new peers per second for it (and each target's per-interval cap still
  // applies on top).
  std::uint32_t batch = 50;
  std::chrono::milliseconds cooldown{1000};
};

struct FleetParams {
  // How often servers report (sent to them in `registered`). 1 s: the black hole must be seen
  // within a couple of seconds, and a report is a few hundred bytes.
  std::chrono::milliseconds report_interval{1000};
  // No report for 3 intervals: stale (no new users, nobody moved: a blip between the server and
  // the router is not a media outage). docs/DESIGN.md: "heartbeat younger than ~3 intervals".
  std::uint32_t stale_after_reports = 3;
  // No report for 15 s: gone, and its users are migrated. Long enough to ride out a router or
  // server reconnect, short enough that users of a dead server are not left waiting for long
  // (their clients also report failures and reconnect on their own).
  std::chrono::milliseconds gone_after{15000};
  // A server that registered itself (not declared in the fleet file) and has been gone this long
  // with no users left is forgotten, so the fleet does not grow without bound.
  std::chrono::milliseconds forget_after{600000};
  ScoringParams scoring;
  EjectionParams ejection;
  RegistrationPolicy registration;
  MigrationParams migration;
};

// Why a server's state changed, or why the fleet entered or left panic. Typed end to end; a
// string only at the edges (ChangeReasonName: JSON, logs, metric labels, the `state` push).
enum class ChangeReason : std::uint8_t {
  kDeclared,             // listed in the fleet file
  kDeclaredUnmonitored,  // listed with "monitored": false
  kRegistered,           // connected and registered
  kReporting,            // a report came in
  kReset,                // its counters restarted (a restart of the server)
  kDrained,
  kUndrained,
  kNotForwarding,       // ejected (EjectReason::kNotForwarding)
  kFailureReports,      // ejected (EjectReason::kFailureReports)
  kSuccessRateOutlier,  // ejected (EjectReason::kSuccessRateOutlier)
  kRestartLoop,         // ejected (EjectReason::kRestartLoop)
  kEjectionRenewed,     // still bad when its ejection ran out
  kEjectionExpired,
  kStale,         // no report for a few intervals
  kGone,          // no report for gone_after
  kPanicEntered,  // fleet-wide (empty server id)
  kPanicExited,   // fleet-wide (empty server id)
};
std::string_view ChangeReasonName(ChangeReason reason);
ChangeReason ChangeReasonFor(EjectReason reason);
// The ejection rule behind `reason`, when it is one.
std::optional<EjectReason> EjectReasonOf(ChangeReason reason);

struct StateChange {
  std::string server;
  ServerState from = ServerState::kPending;
  ServerState to = ServerState::kPending;
  ChangeReason reason = ChangeReason::kDeclared;
  base::SteadyTime at{};
};

// Everything the admin view shows about one server: the state, every signal, the score.
struct ServerView {
  VideoServer server;
  bool declared = false;   // listed in the fleet file
  bool monitored = true;   // reports are expected
  bool connected = false;  // a reporting connection is open
  ServerState state = ServerState::kPending;
  ChangeReason reason = ChangeReason::kDeclared;  // of the last state change
  std::chrono::milliseconds in_state{0};
  std::optional<std::chrono::milliseconds> last_report_age;
  proto::Stats latest;
  std::optional<StatsRates> rates;
  Forwarding forwarding = Forwarding::kUnknown;
  std::uint32_t bad_reports = 0;  // consecutive not-forwarding/frozen reports
  double reported_load = 0;
  double counter_load = 0;
  std::int64_t own = 0;
  std::int64_t pending = 0;
  std::uint32_t failure_reporters = 0;
  double failure_share = 0;
  double weight = 1;
  std::uint32_t new_this_interval = 0;
  Score score;
  std::optional<EjectReason> eject_reason;
  std::optional<std::chrono::milliseconds> ejected_for;  // time left
  std::uint32_t ejections = 0;                           // times ejected, ever
  std::uint32_t ejection_multiplier = 0;
  bool probation = false;             // back from an ejection, not yet seen forwarding
  std::uint32_t recent_restarts = 0;  // counter resets within the restart-loop window
  std::uint64_t stats_accepted = 0, stats_reordered = 0, stats_resets = 0;
  std::vector<StateChange> history;  // oldest first
};

struct FleetView {
  base::SteadyTime taken_at{};
  std::vector<ServerView> servers;
  bool panic = false;
  std::string panic_detail;
  std::size_t max_ejected = 0;
};

// How many servers one placement puts to the shared budget before the join is refused
// (FleetController::Place). Near capacity every replica's view of a server's room lags the
// others' placements, so refusals are common there, and a round trip to the store costs far
// less than the client's retry (250 ms and more): the fleet simulator's surge into a full region
// kept p99 join wait over 5 s with 3 choices, 3.1 s with 8 (BENCHMARKS.md, "Fleet simulator").
inline constexpr int kAdmissionChoices = 8;

struct Pick {
  std::string server;  // empty: nothing eligible
  PickResult detail;
  // What the fleet-wide budget may admit there this window: the server's new users per interval
  // (its score), never more than its room at capacity (scoring.h, AdmissionCap).
  std::uint32_t interval_cap = 0;
  // Its room as this replica sees it (scoring.h, AdmissionRoom): the budget also refuses once the
  // placements of the last few seconds, which the view may not hold yet, fill it.
  std::uint32_t room = 0;
};

// Why a server's users are being moved off it.
enum class EvacuationCause : std::uint8_t { kDrain, kEjected, kGone };
inline constexpr int kEvacuationCauseCount = 3;
std::string_view EvacuationCauseName(EvacuationCause cause);

struct Evacuation {
  std::string server;
  EvacuationCause cause = EvacuationCause::kDrain;
  std::uint32_t batch = 0;
};

class FleetModel {
 public:
  FleetModel(FleetParams params, std::uint64_t seed, ChoiceMethod method = ChoiceMethod::kIndexed);
  ~FleetModel();
  FleetModel(const FleetModel&) = delete;
  FleetModel& operator=(const FleetModel&) = delete;

  const FleetParams& params() const { return params_; }

  // Servers from the fleet file. Known ids are updated in place (their state is kept).
  void Declare(const std::vector<VideoServer>& servers, base::SteadyTime now);

  // A server authenticated and registered. Its reports start a new seq sequence.
  ServerState Register(const VideoServer& info, base::SteadyTime now);
  void Disconnected(std::string_view id);

  struct StatsOutcome {
    bool known = false;
    StatsVerdict verdict = StatsVerdict::kBaseline;
  };
  StatsOutcome OnStats(std::string_view id, const proto::Stats& stats, base::SteadyTime now);

  // How many users the router's table has on `id` (fleet-wide for a shared store, as of its last
  // refresh). Kept for ids the model does not know yet: a server may register after its users
  // were counted.
  void SetOwn(std::string_view id, std::int64_t users);
  // Every server's count at once (absent: none).
  void SetLoad(const LoadMap& own);
  std::int64_t Own(std::string_view id) const;

  // A client on `server` reported a media failure. Distinct users count, not reports, and each
  // client address counts once (`address` empty: the user stands for its own address).
  bool OnFailureReport(std::string_view server, std::string_view user, std::string_view address,
                       base::SteadyTime now);

  // Operator actions. False when the server is unknown.
  bool Drain(std::string_view id, base::SteadyTime now);
  bool Undrain(std::string_view id, base::SteadyTime now);

  // Chooses a server for a new user and counts the placement (pending, per-interval cap).
  Pick Choose(const PickRequest& request, base::SteadyTime now);
  // Whether a user whose media is already on `id` may stay there (join with an existing
  // assignment) or return to it (resume): not draining, ejected or gone, not swallowing media and
  // without failure reports over the absolute bound (in panic too), and with room for one more
  // user at full capacity.
  bool CanKeep(std::string_view id, base::SteadyTime now) const;

  // ---- shared admission: several replicas drawing on one budget per server and interval ----
  // (store/store.h, AssignmentStore::Admit.) The budget admitted this replica's last placement on
  // `id`; `fleet_count` placements there in the budget's current window, by every replica. Until
  // the server's next report they count as pending here: a stale "I'm empty" absorbs none of them.
  void Admitted(std::string_view id, std::uint32_t fleet_count);
  // The budget of `id` is spent until `until`: the placement this replica counted there is undone,
  // and `id` takes no new user from this replica before then.
  void AdmissionRefused(std::string_view id, base::SteadyTime until, base::SteadyTime now);
  // The budget cannot be reached: each server's per-interval cap is shared by `replicas`, and this
  // replica admits ceil(cap / replicas) per server and interval rather than the whole cap. 1 (the
  // default): the whole cap (one replica, or the budget is reachable and enforces the cap).
  void SetAdmissionShare(std::uint32_t replicas);
  std::uint32_t admission_share() const { return admission_share_; }

  // Time passes: staleness, ejection expiry and decay, the ejection rules, panic, forgetting.
  void Tick(base::SteadyTime now);

  // Servers whose users must move now, paced: each server at most `batch` users per cooldown.
  std::vector<Evacuation> DueEvacuations(base::SteadyTime now);

  // State changes since the last call (for logs, metrics and pushes to servers).
  std::vector<StateChange> TakeChanges();

  std::optional<ServerState> StateOf(std::string_view id) const;
  // The fleet file's entry for `id`; null when the server is not declared.
  const VideoServer* Declared(std::string_view id) const;
  std::optional<ChangeReason> ReasonOf(std::string_view id) const;
  bool panic() const { return panic_; }
  // Bumped whenever a server is added, forgotten, or changes id/url/region/capacity.
  std::uint64_t directory_version() const { return directory_version_; }
  std::vector<VideoServer> Directory() const;
  FleetView View(base::SteadyTime now) const;
  std::size_t size() const { return servers_.size(); }

 private:
  struct Record;
  Record* Find(std::string_view id);
  const Record* Find(std::string_view id) const;
  ServerState Derive(const Record& r, base::SteadyTime now) const;
  void Refresh(Record& r, base::SteadyTime now, ChangeReason reason);
  double Weight(const Record& r, base::SteadyTime now, bool established_exists) const;
  bool EstablishedExists(base::SteadyTime now) const;
  ScoreInput InputFor(const Record& r, std::int64_t own, base::SteadyTime now,
                      bool established) const;
  void Eject(Record& r, EjectReason reason, base::SteadyTime now);
  // Ejects `r` on the report that completed its count of bad reports, when the cap allows.
  void EjectOnReport(Record& r, base::SteadyTime now);
  // Scores every server into `inputs`/`scores` (indexed like servers_), with the slow-start
  // floor taken from the established servers' mean utilization.
  void ScoreAll(base::SteadyTime now, std::vector<ScoreInput>& inputs, std::vector<Score>& scores,
                Evidence evidence) const;
  PickResult ChooseByFullScan(const PickRequest& request, base::SteadyTime now);

  // ---- the kept scores and the eligible index (ChoiceMethod::kIndexed) ----
  // `r`'s score must be recomputed before the next choice.
  void Touch(Record& r);
  // Brings every kept score up to `now`: the touched servers, the servers in slow start, and the
  // servers whose interval ended; everything at once when a fleet-wide input changed.
  void Advance(base::SteadyTime now);
  void Rebuild(base::SteadyTime now);
  // Scores `r` at `now` without the fleet's mean utilization (which only slow start uses) and
  // updates the fleet-wide counts it contributes to.
  void ScoreKept(Record& r, base::SteadyTime now);
  // Scores the servers in slow start, whose utilization floor is a share of the fleet's mean.
  void ScoreSlowStarters();
  // Puts `r` in or out of the eligible index per its kept score.
  void Index(Record& r);
  double MeanUtilization() const;
  PickResult ChooseIndexed(const PickRequest& request);
  Evidence CurrentEvidence() const { return panic_ ? Evidence::kConcreteOnly : Evidence::kAll; }
  // True when every active server has concrete evidence against it (and there is one).
  bool EveryActiveServerSuspect() const;

  FleetParams params_;
  ChoiceMethod method_;
  std::mt19937_64 rng_;
  LoadMap own_;  // SetOwn/SetLoad, for every id (known to the model or not)
  std::uint32_t admission_share_ = 1;
  std::vector<std::unique_ptr<Record>> servers_;  // stable order: declaration/registration
  absl::flat_hash_map<std::string, std::size_t> index_;
  std::vector<StateChange> changes_;
  bool panic_ = false;
  std::string panic_detail_;
  // The first time the model saw a report: the router's own start, for the warm-up rule (OnStats).
  std::optional<base::SteadyTime> started_at_;
  std::uint64_t directory_version_ = 0;

  // kIndexed only. Servers' positions in servers_, per region and per region group.
  struct Tier {
    std::vector<std::size_t> members;  // indices into servers_, ascending
    EligibleSet eligible;              // positions into `members`
  };
  EligibleSet eligible_;  // positions into servers_
  std::vector<Tier> region_tiers_, group_tiers_;
  absl::flat_hash_map<std::string, std::size_t> region_tier_of_, group_tier_of_;
  bool rebuild_ = true;             // the next Advance recomputes everything
  std::vector<std::size_t> dirty_;  // touched since the last Advance
  std::vector<std::size_t> slow_;   // active servers in slow start: rescored on every choice
  struct Wakeup {
    base::SteadyTime at;
    std::size_t index;
    bool operator>(const Wakeup& o) const { return at > o.at; }
  };
  std::priority_queue<Wakeup, std::vector<Wakeup>, std::greater<>> wakeups_;
  Evidence evidence_ = Evidence::kAll;  // what the kept scores were computed with
  bool established_ = false;            // EstablishedExists as of the kept scores
  std::size_t established_count_ = 0;
  // When !established_: the earliest time an active server's slow start ends (then every weight
  // changes at once).
  std::optional<base::SteadyTime> next_established_at_;
  std::int64_t utilization_sum_ = 0;  // fixed point (kUtilizationScale), over active, weight 1
  std::size_t utilization_count_ = 0;
  std::size_t active_count_ = 0, suspect_count_ = 0;  // EveryActiveServerSuspect, kept
};

}  // namespace vrouter::fleet
