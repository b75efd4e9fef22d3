// Why this file is longer than ~600 lines: it is the one event loop where every actor of the
// simulation (servers, replicas, the shared budget, users) meets the measurements taken on them;
// the pure pieces that can stand alone already do (scenario, admission_budget, outcome, report).
#include "bench/fleetsim/simulator.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "bench/fleetsim/admission_budget.h"
#include "bench/load/crowd.h"

namespace vrouter::bench::fleetsim {
namespace {

using base::SteadyTime;
using Ns = std::chrono::nanoseconds;
using std::chrono::duration_cast;

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
constexpr double kHerdBound = 1.1;  // issue 20: no more than 10 % over the cap

double Seconds(Ns d) { return std::chrono::duration<double>(d).count(); }

enum class Kind : std::uint8_t {
  kFault,           // a = fault index
  kRegister,        // a = server: connects to its replica
  kRemoteRegister,  // a = server, b = replica
  kReport,          // a = server
  kRemoteStats,     // a = server, b = replica, d = seq
  kRefresh,         // a = replica: the fleet-wide users per server
  kTick,            // a = replica
  kJoin,            // a = user: a join attempt
  kAdmit,           // a = user, b = server, c = cap, e = room, d = the reply's delay (ns)
  kAdmitReply,      // a = user, b = server, c = count (0: refused), d = remaining (ns)
  kLeave,           // a = user
  kNoMedia,         // a = user, b = server
  kRemoteFailure,   // a = server, b = replica, c = user
  kSample,          // the per-second timeline
};

struct Event {
  SteadyTime at;
  std::uint64_t seq = 0;
  Kind kind = Kind::kSample;
  std::uint32_t a = 0, b = 0, c = 0;
  std::int64_t d = 0;
  std::uint32_t e = 0;
  bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

struct Server {
  fleet::VideoServer info;
  std::uint32_t region = 0;
  std::uint32_t replica = 0;  // the replica its connection is on
  Ns phase{0};                // its reports go out at phase + k intervals
  bool newcomer = false;
  bool registered = false;
  bool reporting = false;
  bool black_hole = false, gone = false, restart_pending = false;
  proto::Stats stats;
  std::vector<std::uint32_t> users;
  std::deque<SteadyTime> arriving;  // placements whose media has not reached it yet
  // Ground truth for the reference cap: when it (re)entered service (its first report).
  std::optional<SteadyTime> in_service;
  // Admissions in its current report interval.
  std::int64_t bin = std::numeric_limits<std::int64_t>::min();
  std::uint32_t bin_count = 0, bin_cap = 0;
  bool over_bound = false;
  bool falsely_ejected = false;  // healthy, yet ejected by some replica
  std::int64_t peak_users = 0;
  // Migrations into it (and out of it) per second.
  std::int64_t in_second = -1, out_second = -1;
  std::uint32_t in_count = 0, out_count = 0;
  // A broken server's record (index into bad_, or kNone).
  std::uint32_t bad = kNone;
};

struct User {
  std::uint32_t replica = 0;
  std::uint32_t region = 0;
  std::uint32_t surge = 0;
  std::uint32_t server = kNone;
  std::uint32_t pos = 0;  // in its server's users
  SteadyTime first_attempt{};
  Ns session{0};  // 0: stays
  std::uint16_t attempts = 0;
  std::uint8_t choice = 0;
  bool joining = false;    // between its first attempt and its placement
  bool in_flight = false;  // an admission round trip is under way
  bool migrating = false;
  std::uint64_t admit_seq = 0;
  SteadyTime chose_at{};  // when its replica chose the server it is being placed on  //
                          // kSharedPerReport: the report the admission is counted against
};

struct Replica {
  std::unique_ptr<fleet::FleetModel> model;
  std::vector<std::int64_t> known;  // users per server, as this replica knows them
  // Its users per server (the sessions it holds), and as it last wrote them to the store.
  std::vector<std::int64_t> placed, written;
  std::vector<std::uint64_t> seq;  // the latest report seq it has of each server
  bool panic = false;
};

// Per broken server: the evidence and what followed.
struct BadRecord {
  std::uint32_t server = 0;
  FaultKind kind = FaultKind::kBlackHole;
  SteadyTime broken_at{};
  std::optional<SteadyTime> evidence;
  std::uint64_t evidence_seq = 0;                     // black hole: the report that showed it
  std::vector<std::optional<SteadyTime>> known_at;    // per replica: evidence received
  std::vector<std::optional<SteadyTime>> ejected_at;  // per replica: first ejection after it
  std::int64_t users_at_evidence = 0;
  std::uint64_t placed_after = 0, placed_after_known = 0, migrated_off = 0;
  std::uint32_t peak_out = 0;
  std::optional<SteadyTime> emptied;  // the first time it had no user left after the evidence
  // Per replica: its first ejection of it ran out (readmitted on probation).
  std::vector<std::optional<SteadyTime>> expired_at;
  std::uint64_t probation_placed = 0;
};

class Simulation {
 public:
  Simulation(const Scenario& s, Admission admission, const fleet::FleetParams& params)
      : s_(s),
        admission_(admission),
        params_(params),
        interval_(params.report_interval),
        rng_(s.seed),
        budget_(s.servers) {
    out_.scenario = s.name;
    out_.admission = admission;
    out_.seed = s.seed;
    out_.join_wait_s.resize(s.surges.size());
    waits_.resize(s.surges.size());
  }

  Outcome Run();

 private:
  void Push(SteadyTime at, Kind kind, std::uint32_t a = 0, std::uint32_t b = 0, std::uint32_t c = 0,
            std::int64_t d = 0, std::uint32_t e = 0) {
    queue_.push({at, seq_++, kind, a, b, c, d, e});
  }
  Ns Uniform(double min_ms, double max_ms) {
    std::uniform_real_distribution<double> d(min_ms, max_ms);
    return duration_cast<Ns>(std::chrono::duration<double, std::milli>(d(rng_)));
  }
  Ns PubSub() { return Uniform(s_.pubsub_min_ms, s_.pubsub_max_ms); }
  double Elapsed(SteadyTime t) const { return Seconds(t - start_); }
  fleet::FleetModel& Model(std::uint32_t r) { return *replicas_[r].model; }
  std::uint32_t ServerIndex(std::string_view id) const {
    std::uint32_t i = kNone;
    std::from_chars(id.data() + 1, id.data() + id.size(), i);
    return i;
  }

  void Setup();
  void Dispatch(const Event& e);
  void OnFault(const Fault& f);
  void OnReport(std::uint32_t s);
  void OnRemoteStats(std::uint32_t s, std::uint32_t r, std::uint64_t seq);
  void OnRefresh(std::uint32_t r);
  void OnTick(std::uint32_t r);
  void Migrate(std::uint32_t r, const fleet::Evacuation& e);
  void TryChoose(std::uint32_t u);
  bool Budgeted() const {
    return admission_ == Admission::kShared || admission_ == Admission::kSharedPerReport;
  }
  // Asks the shared budget (a round trip) to admit user `u` on server `s`.
  void RequestAdmission(std::uint32_t u, std::uint32_t s, const fleet::Pick& pick);
  // How long the budget remembers an admission against a server's room: as the Redis store
  // (RedisStore AdmissionHorizon), two load refreshes and a margin.
  Ns AdmissionHorizon() const { return 2 * s_.load_refresh + Ms(250); }
  void OnAdmitReply(const Event& e);
  void Refuse(std::uint32_t u);
  void Place(std::uint32_t u, std::uint32_t s);
  void Unplace(std::uint32_t u);
  void SetKnown(std::uint32_t r, std::uint32_t s, std::int64_t users);
  void CountAdmission(Server& srv);
  void CloseInterval(Server& srv);
  void CountMigration(Server& from, Server& to);
  void OnNoMedia(std::uint32_t u, std::uint32_t s);
  void Evidence(BadRecord& b, std::uint32_t r);
  void Sample();
  std::uint32_t ReferenceCap(const Server& srv) const;
  void Finish();

  const Scenario& s_;
  Admission admission_;
  fleet::FleetParams params_;
  Ns interval_;
  std::mt19937_64 rng_;
  AdmissionBudget budget_;
  SteadyTime start_ = SteadyTime{} + std::chrono::hours(1);
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::uint64_t seq_ = 0;
  SteadyTime now_{};
  std::vector<std::string> region_names_;
  std::vector<Server> servers_;
  std::vector<Replica> replicas_;
  std::vector<std::int64_t> written_total_;  // per server: the sum of the replicas' `written`
  std::vector<User> users_;
  std::vector<BadRecord> bad_;
  std::vector<std::vector<std::uint32_t>> fault_servers_;  // per fault
  std::optional<SteadyTime> established_at_;               // the first server past its slow start
  std::vector<std::vector<double>> waits_;                 // per surge, seconds
  TimelineRow row_;
  std::uint64_t waiting_ = 0, online_ = 0;
  Outcome out_;
};

void Simulation::Setup() {
  for (std::uint32_t g = 0; g < s_.regions; ++g) region_names_.push_back("r" + std::to_string(g));
  for (std::uint32_t g = 0; g < s_.regions; ++g) {
    params_.scoring.region_group[region_names_[g]] = "g" + std::to_string(g / 2);
  }
  replicas_.resize(s_.replicas);
  written_total_.assign(s_.servers, 0);
  for (std::uint32_t r = 0; r < s_.replicas; ++r) {
    replicas_[r].model = std::make_unique<fleet::FleetModel>(params_, s_.seed * 1000 + r);
    replicas_[r].known.assign(s_.servers, 0);
    replicas_[r].placed.assign(s_.servers, 0);
    replicas_[r].written.assign(s_.servers, 0);
    replicas_[r].seq.assign(s_.servers, 0);
    // The budget is unreachable from the start: each replica admits its share of every cap.
    if (admission_ == Admission::kLocalShare) replicas_[r].model->SetAdmissionShare(s_.replicas);
  }
  // Servers; the newcomers are the last ones of region r0.
  std::vector<std::uint32_t> region0;
  servers_.resize(s_.servers);
  std::uniform_int_distribution<std::uint32_t> replica_of(0, s_.replicas - 1);
  for (std::uint32_t i = 0; i < s_.servers; ++i) {
    Server& srv = servers_[i];
    srv.region = i % s_.regions;
    srv.info = {"s" + std::to_string(i), "wss://s" + std::to_string(i) + ".test/",
                region_names_[srv.region], s_.capacity, true};
    srv.replica = replica_of(rng_);
    srv.phase = Uniform(1, static_cast<double>(interval_.count()) / 1e6);
    if (srv.region == 0) region0.push_back(i);
  }
  std::vector<std::uint32_t> established;
  for (std::uint32_t k = 0; k < s_.newcomers; ++k) {
    servers_[region0[region0.size() - 1 - k]].newcomer = true;
  }
  for (std::uint32_t i = 0; i < s_.servers; ++i) {
    Server& srv = servers_[i];
    Push(start_ + (srv.newcomer ? s_.newcomers_at : Ms(0)), Kind::kRegister, i);
    if (!srv.newcomer) established.push_back(i);
  }
  // The faulty servers: a seeded draw among the established ones, disjoint across faults.
  std::shuffle(established.begin(), established.end(), rng_);
  std::size_t next = 0;
  for (std::uint32_t f = 0; f < s_.faults.size(); ++f) {
    fault_servers_.emplace_back(
        established.begin() + static_cast<std::ptrdiff_t>(next),
        established.begin() + static_cast<std::ptrdiff_t>(next + s_.faults[f].servers));
    next += s_.faults[f].servers;
    Push(start_ + s_.faults[f].at, Kind::kFault, f);
  }
  // Replicas tick staggered over the interval; each refreshes its counts at its own phase.
  for (std::uint32_t r = 0; r < s_.replicas; ++r) {
    Push(start_ + interval_ * (r + 1) / s_.replicas, Kind::kTick, r);
    Push(start_ + Uniform(0, static_cast<double>(s_.load_refresh.count())), Kind::kRefresh, r);
  }
  // Users: the arrivals (and session lengths) are drawn before anything else happens, so every
  // admission mode sees the same people at the same times.
  std::uniform_int_distribution<std::uint32_t> region_of(0, s_.regions - 1);
  std::exponential_distribution<double> session(
      s_.session_mean.count() > 0 ? 1.0 / static_cast<double>(s_.session_mean.count()) : 1.0);
  for (std::uint32_t g = 0; g < s_.surges.size(); ++g) {
    const Surge& surge = s_.surges[g];
    for (std::uint32_t k = 0; k < surge.users; ++k) {
      User u;
      u.replica = replica_of(rng_);
      u.region = surge.region ? *surge.region : region_of(rng_);
      u.surge = g;
      if (s_.session_mean.count() > 0) {
        u.session = duration_cast<Ns>(std::chrono::duration<double, std::milli>(session(rng_)));
      }
      const Ns offset = surge.over * k / std::max<std::uint32_t>(surge.users, 1);
      users_.push_back(u);
      Push(start_ + surge.at + offset, Kind::kJoin, static_cast<std::uint32_t>(users_.size() - 1));
    }
  }
  Push(start_ + std::chrono::seconds(1), Kind::kSample);
}

Outcome Simulation::Run() {
  const auto wall = std::chrono::steady_clock::now();
  Setup();
  const SteadyTime end = start_ + s_.duration;
  while (!queue_.empty() && queue_.top().at <= end) {
    const Event e = queue_.top();
    queue_.pop();
    now_ = e.at;
    Dispatch(e);
    ++out_.events;
  }
  now_ = end;
  Finish();
  out_.wall_s = Seconds(std::chrono::steady_clock::now() - wall);
  return std::move(out_);
}

void Simulation::Dispatch(const Event& e) {
  switch (e.kind) {
    case Kind::kFault:
      return OnFault(s_.faults[e.a]);
    case Kind::kRegister: {
      Server& srv = servers_[e.a];
      srv.registered = srv.reporting = true;
      Model(srv.replica).Register(srv.info, now_);
      for (std::uint32_t r = 0; r < s_.replicas; ++r) {
        if (r != srv.replica) Push(now_ + PubSub(), Kind::kRemoteRegister, e.a, r);
      }
      Push(now_ + srv.phase, Kind::kReport, e.a);
      return;
    }
    case Kind::kRemoteRegister:
      Model(e.b).Register(servers_[e.a].info, now_);
      return;
    case Kind::kReport:
      return OnReport(e.a);
    case Kind::kRemoteStats:
      return OnRemoteStats(e.a, e.b, static_cast<std::uint64_t>(e.d));
    case Kind::kRefresh:
      return OnRefresh(e.a);
    case Kind::kTick:
      return OnTick(e.a);
    case Kind::kJoin: {
      User& u = users_[e.a];
      if (!u.joining) {
        u.joining = true;
        u.first_attempt = now_;
        ++waiting_;
      }
      u.choice = 0;
      return TryChoose(e.a);
    }
    case Kind::kAdmit: {
      const AdmitResult r =
          admission_ == Admission::kSharedPerReport
              ? budget_.AdmitInReport(e.b, users_[e.a].admit_seq, e.c, interval_, now_)
              : budget_.Admit(e.b, e.c, e.e, interval_, AdmissionHorizon(), now_);
      Push(now_ + Ns(e.d), Kind::kAdmitReply, e.a, e.b, r.admitted ? r.count : 0,
           r.remaining.count());
      return;
    }
    case Kind::kAdmitReply:
      return OnAdmitReply(e);
    case Kind::kLeave:
      if (users_[e.a].in_flight) {  // a migration's admission is under way: leave right after
        Push(now_ + Ms(10), Kind::kLeave, e.a);
      } else if (users_[e.a].server != kNone) {
        Unplace(e.a);
      }
      return;
    case Kind::kNoMedia:
      return OnNoMedia(e.a, e.b);
    case Kind::kRemoteFailure: {
      Model(e.b).OnFailureReport(servers_[e.a].info.id, "u" + std::to_string(e.c), "", now_);
      Server& srv = servers_[e.a];
      if (srv.bad != kNone) Evidence(bad_[srv.bad], e.b);
      return;
    }
    case Kind::kSample:
      Sample();
      Push(now_ + std::chrono::seconds(1), Kind::kSample);
      return;
  }
}

void Simulation::OnFault(const Fault& f) {
  const auto index = static_cast<std::size_t>(&f - s_.faults.data());
  for (std::uint32_t s : fault_servers_[index]) {
    Server& srv = servers_[s];
    if (f.kind == FaultKind::kRestart) {
      srv.restart_pending = true;
      continue;
    }
    if (srv.bad == kNone) {
      BadRecord b;
      b.server = s;
      b.kind = f.kind;
      b.broken_at = now_;
      b.known_at.resize(s_.replicas);
      b.ejected_at.resize(s_.replicas);
      b.expired_at.resize(s_.replicas);
      srv.bad = static_cast<std::uint32_t>(bad_.size());
      bad_.push_back(std::move(b));
    }
    if (f.kind == FaultKind::kBlackHole) srv.black_hole = true;
    if (f.kind == FaultKind::kGone) {
      srv.gone = true;
      srv.reporting = false;
      Model(srv.replica).Disconnected(srv.info.id);
    }
    for (std::uint32_t u : srv.users) {
      Push(now_ + s_.no_media_report_after, Kind::kNoMedia, u, s);
    }
  }
}

void Simulation::OnReport(std::uint32_t s) {
  Server& srv = servers_[s];
  if (!srv.reporting) return;
  Push(now_ + interval_, Kind::kReport, s);
  if (srv.restart_pending) {
    // The process restarted: a new connection, seq and every counter from zero.
    srv.restart_pending = false;
    srv.stats = proto::Stats{};
    srv.in_service.reset();
    Model(srv.replica).Register(srv.info, now_);
    for (std::uint32_t r = 0; r < s_.replicas; ++r) {
      if (r != srv.replica) Push(now_ + PubSub(), Kind::kRemoteRegister, s, r);
    }
  }
  if (!srv.in_service) {
    srv.in_service = now_;
    const SteadyTime established = now_ + params_.scoring.slow_start_window;
    if (!established_at_ || established < *established_at_) established_at_ = established;
  }
  const double pps = params_.scoring.packets_per_user;
  while (!srv.arriving.empty() && now_ - srv.arriving.front() >= s_.media_after) {
    srv.arriving.pop_front();
  }
  // The users whose media it has (a recent arrival that left again is not told apart).
  const auto n = static_cast<std::uint64_t>(srv.users.size() -
                                            std::min(srv.users.size(), srv.arriving.size()));
  const auto dt = static_cast<std::uint64_t>(std::max<double>(1, Seconds(interval_)));
  const std::uint64_t in = n * static_cast<std::uint64_t>(pps) * dt;
  const std::uint64_t streams_out = n >= 2 ? n * s_.fanout : 0;
  srv.stats.seq += 1;
  srv.stats.packets_in += in;
  srv.stats.bytes_in += in * 1000;
  srv.stats.streams_in = static_cast<std::uint32_t>(n);
  srv.stats.streams_out = static_cast<std::uint32_t>(streams_out);
  if (!srv.black_hole) {
    const std::uint64_t out = streams_out * static_cast<std::uint64_t>(pps) * dt;
    srv.stats.packets_out += out;
    srv.stats.bytes_out += out * 1000;
    srv.stats.peers = static_cast<std::uint32_t>(n);
    srv.stats.media_peers = static_cast<std::uint32_t>(n);
    srv.stats.cpu = std::min(1.0, 0.05 + 0.8 * static_cast<double>(n) / s_.capacity);
  } else {
    // The black hole: low load reported, media received, nothing forwarded.
    srv.stats.peers = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, 2));
    srv.stats.media_peers = srv.stats.peers;
    srv.stats.cpu = 0.05;
    BadRecord& b = bad_[srv.bad];
    if (!b.evidence && static_cast<double>(in) / static_cast<double>(dt) >=
                           params_.scoring.forwarding.min_packets_in_rate) {
      b.evidence_seq = srv.stats.seq;
      Evidence(b, srv.replica);
    }
  }
  Model(srv.replica).OnStats(srv.info.id, srv.stats, now_);
  replicas_[srv.replica].seq[s] = srv.stats.seq;
  for (std::uint32_t r = 0; r < s_.replicas; ++r) {
    if (r != srv.replica) {
      Push(now_ + PubSub(), Kind::kRemoteStats, s, r, 0, static_cast<std::int64_t>(srv.stats.seq));
    }
  }
}

void Simulation::OnRemoteStats(std::uint32_t s, std::uint32_t r, std::uint64_t seq) {
  Server& srv = servers_[s];
  fleet::FleetModel& model = Model(r);
  // The registration rides along with the stats (a replica that missed it learns the server).
  if (!model.StateOf(srv.info.id)) model.Register(srv.info, now_);
  model.OnStats(srv.info.id, srv.stats, now_);
  replicas_[r].seq[s] = std::max(replicas_[r].seq[s], seq);
  if (srv.bad != kNone) {
    BadRecord& b = bad_[srv.bad];
    if (b.evidence && b.kind == FaultKind::kBlackHole && seq >= b.evidence_seq) Evidence(b, r);
  }
}

void Simulation::Evidence(BadRecord& b, std::uint32_t r) {
  if (!b.evidence) {
    b.evidence = now_;
    b.users_at_evidence = static_cast<std::int64_t>(servers_[b.server].users.size());
  }
  if (!b.known_at[r]) b.known_at[r] = now_;
}

void Simulation::SetKnown(std::uint32_t r, std::uint32_t s, std::int64_t users) {
  std::int64_t& known = replicas_[r].known[s];
  users = std::max<std::int64_t>(users, 0);
  if (known == users) return;
  known = users;
  Model(r).SetOwn(servers_[s].info.id, users);
}

// As the Redis store's housekeeping: the replica writes its own users per server, then reads the
// sum of what every replica last wrote (each at its own phase, so up to a refresh old).
void Simulation::OnRefresh(std::uint32_t r) {
  Replica& rep = replicas_[r];
  for (std::uint32_t s = 0; s < s_.servers; ++s) {
    written_total_[s] += rep.placed[s] - rep.written[s];
    rep.written[s] = rep.placed[s];
  }
  for (std::uint32_t s = 0; s < s_.servers; ++s) SetKnown(r, s, written_total_[s]);
  Push(now_ + s_.load_refresh, Kind::kRefresh, r);
}

void Simulation::OnTick(std::uint32_t r) {
  Push(now_ + interval_, Kind::kTick, r);
  fleet::FleetModel& model = Model(r);
  model.Tick(now_);
  const auto evacuations = model.DueEvacuations(now_);
  for (const fleet::StateChange& c : model.TakeChanges()) {
    if (c.server.empty()) {
      if (c.reason == fleet::ChangeReason::kPanicEntered && !replicas_[r].panic) {
        replicas_[r].panic = true;
        ++out_.replicas_panicked;
        if (!out_.first_panic_s) out_.first_panic_s = Elapsed(now_);
      }
      continue;
    }
    Server& srv = servers_[ServerIndex(c.server)];
    if (c.reason == fleet::ChangeReason::kEjectionExpired && srv.bad != kNone) {
      auto& expired = bad_[srv.bad].expired_at[r];
      if (!expired) expired = c.at;
    }
    if (c.to != fleet::ServerState::kEjected || c.from == fleet::ServerState::kEjected) continue;
    if (srv.bad == kNone) {
      if (!srv.falsely_ejected) ++out_.healthy_ejected;
      srv.falsely_ejected = true;
      continue;
    }
    BadRecord& b = bad_[srv.bad];
    // When the model ejected it (on a report, or in this tick), not when this tick looked.
    if (!b.ejected_at[r]) b.ejected_at[r] = c.at;
  }
  for (const fleet::Evacuation& e : evacuations) Migrate(r, e);
}

void Simulation::Migrate(std::uint32_t r, const fleet::Evacuation& e) {
  const std::uint32_t s = ServerIndex(e.server);
  Server& from = servers_[s];
  // This replica's users there (the store's AssignedTo: the sessions this replica holds).
  std::vector<std::uint32_t> batch;
  for (std::uint32_t u : from.users) {
    if (batch.size() >= e.batch) break;
    if (users_[u].replica == r && !users_[u].in_flight) batch.push_back(u);
  }
  fleet::FleetModel& model = Model(r);
  for (std::uint32_t u : batch) {
    // As FleetController::Migrate: a new server in the region of the one being left.
    const fleet::Pick pick = model.Choose({from.info.region, nullptr}, now_);
    if (pick.server.empty() || pick.server == e.server) continue;
    const std::uint32_t to = ServerIndex(pick.server);
    if (Budgeted()) {
      users_[u].migrating = true;
      RequestAdmission(u, to, pick);
      continue;
    }
    CountMigration(from, servers_[to]);
    users_[u].chose_at = now_;
    Place(u, to);
  }
}

void Simulation::TryChoose(std::uint32_t u) {
  User& user = users_[u];
  const fleet::Pick pick = Model(user.replica).Choose({region_names_[user.region], nullptr}, now_);
  if (pick.server.empty()) return Refuse(u);
  const std::uint32_t s = ServerIndex(pick.server);
  user.chose_at = now_;
  if (!Budgeted()) return Place(u, s);
  RequestAdmission(u, s, pick);
}

void Simulation::RequestAdmission(std::uint32_t u, std::uint32_t s, const fleet::Pick& pick) {
  User& user = users_[u];
  user.in_flight = true;
  user.chose_at = now_;
  user.admit_seq = replicas_[user.replica].seq[s];
  const Ns rtt = Uniform(s_.admit_rtt_min_ms, s_.admit_rtt_max_ms);
  Push(now_ + rtt / 2, Kind::kAdmit, u, s, pick.interval_cap, (rtt - rtt / 2).count(), pick.room);
}

void Simulation::OnAdmitReply(const Event& e) {
  User& user = users_[e.a];
  user.in_flight = false;
  Server& srv = servers_[e.b];
  fleet::FleetModel& model = Model(user.replica);
  if (e.c > 0) {
    model.Admitted(srv.info.id, e.c);
    if (user.migrating) {
      user.migrating = false;
      if (user.server == kNone || user.server == e.b) return;  // left meanwhile
      CountMigration(servers_[user.server], srv);
    }
    return Place(e.a, e.b);
  }
  ++out_.budget_refusals;
  model.AdmissionRefused(srv.info.id, now_ + Ns(e.d), now_);
  if (user.migrating) {  // stays where it is; its replica's next batch tries again
    user.migrating = false;
    return;
  }
  if (++user.choice < s_.choices_per_join) return TryChoose(e.a);
  Refuse(e.a);
}

void Simulation::Refuse(std::uint32_t u) {
  User& user = users_[u];
  ++out_.join_refusals;
  ++row_.refused;
  std::uniform_real_distribution<double> unit(0, 1);
  const Ms delay = load::FullJitterBackoff(user.attempts++, unit(rng_), load::kJoinRetryBase,
                                           load::kJoinRetryCap);
  Push(now_ + delay, Kind::kJoin, u);
}

void Simulation::CountMigration(Server& from, Server& to) {
  ++out_.migrations;
  ++row_.migrated;
  const std::int64_t second = static_cast<std::int64_t>(Elapsed(now_));
  if (to.in_second != second) {
    to.in_second = second;
    to.in_count = 0;
  }
  if (++to.in_count > out_.peak_migrations_into_target_per_s) {
    out_.peak_migrations_into_target_per_s = to.in_count;
    out_.peak_migration_target = to.info.id;
  }
  if (from.out_second != second) {
    from.out_second = second;
    from.out_count = 0;
  }
  ++from.out_count;
  if (from.bad != kNone) {
    BadRecord& b = bad_[from.bad];
    ++b.migrated_off;
    b.peak_out = std::max(b.peak_out, from.out_count);
  }
}

void Simulation::Unplace(std::uint32_t u) {
  User& user = users_[u];
  Server& srv = servers_[user.server];
  const std::uint32_t last = srv.users.back();
  srv.users[user.pos] = last;
  users_[last].pos = user.pos;
  srv.users.pop_back();
  --replicas_[user.replica].placed[user.server];  // the store's count: at the next refresh
  if (srv.bad != kNone && srv.users.empty() && bad_[srv.bad].evidence) {
    if (!bad_[srv.bad].emptied) bad_[srv.bad].emptied = now_;
  }
  user.server = kNone;
  --online_;
}

void Simulation::Place(std::uint32_t u, std::uint32_t s) {
  User& user = users_[u];
  const bool joining = user.joining;
  if (user.server != kNone) Unplace(u);
  Server& srv = servers_[s];
  user.server = s;
  user.pos = static_cast<std::uint32_t>(srv.users.size());
  srv.users.push_back(u);
  ++online_;
  if (s_.media_after.count() > 0) srv.arriving.push_back(now_);
  ++replicas_[user.replica].placed[s];
  CountAdmission(srv);
  const auto users = static_cast<std::int64_t>(srv.users.size());
  srv.peak_users = std::max(srv.peak_users, users);
  if (srv.bad != kNone) {
    BadRecord& b = bad_[srv.bad];
    if (b.evidence) {
      const auto& expired = b.expired_at[user.replica];
      if (expired && *expired <= user.chose_at) {
        ++b.probation_placed;  // readmitted by that replica after its ejection ran out
      } else {
        ++b.placed_after;
        const auto& known = b.known_at[user.replica];
        if (known && *known <= user.chose_at) ++b.placed_after_known;
      }
    }
    Push(now_ + s_.no_media_report_after, Kind::kNoMedia, u, s);
  }
  if (!joining) return;
  user.joining = false;
  --waiting_;
  ++out_.joins_placed;
  ++row_.joined;
  waits_[user.surge].push_back(Seconds(now_ - user.first_attempt));
  if (user.session.count() > 0) Push(now_ + user.session, Kind::kLeave, u);
}

std::uint32_t Simulation::ReferenceCap(const Server& srv) const {
  const auto& p = params_.scoring;
  double weight = 1;
  // A whole fleet starting together has nobody to compare with: everyone at full weight
  // (FleetModel::Weight).
  if (srv.in_service && established_at_ && now_ >= *established_at_) {
    weight = fleet::SlowStartWeight(now_ - *srv.in_service, p);
  }
  // The cap as scoring computes it (the larger of the fixed number and the capacity share, times
  // the weight), for an active server with nothing else against it.
  fleet::ScoreInput in;
  in.server = &srv.info;
  in.state = fleet::ServerState::kActive;
  in.weight = weight;
  return fleet::ScoreServer(in, p, fleet::Evidence::kAll).interval_cap;
}

void Simulation::CountAdmission(Server& srv) {
  const std::int64_t bin = (now_ - start_ - srv.phase) / interval_;
  if (bin != srv.bin) {
    CloseInterval(srv);
    srv.bin = bin;
    srv.bin_count = 0;
    srv.bin_cap = 0;
  }
  ++srv.bin_count;
  srv.bin_cap = std::max(srv.bin_cap, ReferenceCap(srv));
}

void Simulation::CloseInterval(Server& srv) {
  if (srv.bin_count == 0) return;
  const double ratio = static_cast<double>(srv.bin_count) / std::max<std::uint32_t>(srv.bin_cap, 1);
  row_.max_admission_ratio = std::max(row_.max_admission_ratio, ratio);
  if (ratio > out_.max_admission_ratio) {
    out_.max_admission_ratio = ratio;
    out_.worst_admissions = srv.bin_count;
    out_.worst_cap = srv.bin_cap;
    out_.worst_server = srv.info.id;
    out_.worst_at_s = Seconds(srv.phase + interval_ * srv.bin);
  }
  if (srv.newcomer &&
      (!out_.newcomer_max_admission_ratio || ratio > *out_.newcomer_max_admission_ratio)) {
    out_.newcomer_max_admission_ratio = ratio;
    out_.newcomer_worst_admissions = srv.bin_count;
    out_.newcomer_worst_cap = srv.bin_cap;
  }
  if (ratio > kHerdBound) {
    ++out_.intervals_over_bound;
    if (!srv.over_bound) ++out_.servers_over_bound;
    srv.over_bound = true;
  }
  srv.bin_count = 0;
}

void Simulation::OnNoMedia(std::uint32_t u, std::uint32_t s) {
  User& user = users_[u];
  Server& srv = servers_[s];
  if (user.server != s || srv.bad == kNone) return;
  const std::string id = "u" + std::to_string(u);
  Model(user.replica).OnFailureReport(srv.info.id, id, "", now_);
  Evidence(bad_[srv.bad], user.replica);
  for (std::uint32_t r = 0; r < s_.replicas; ++r) {
    if (r != user.replica) Push(now_ + PubSub(), Kind::kRemoteFailure, s, r, u);
  }
  Push(now_ + s_.no_media_report_every, Kind::kNoMedia, u, s);
}

void Simulation::Sample() {
  row_.t_s = Elapsed(now_);
  row_.online = online_;
  row_.waiting = waiting_;
  row_.on_bad = 0;
  for (const BadRecord& b : bad_) row_.on_bad += servers_[b.server].users.size();
  row_.replicas_in_panic = 0;
  for (const Replica& r : replicas_) row_.replicas_in_panic += r.model->panic() ? 1 : 0;
  out_.timeline.push_back(row_);
  row_ = {};
}

void Simulation::Finish() {
  for (Server& srv : servers_) {
    CloseInterval(srv);
    const double utilization = static_cast<double>(srv.peak_users) / s_.capacity;
    if (utilization > out_.peak_utilization) {
      out_.peak_utilization = utilization;
      out_.fullest_server = srv.info.id;
    }
    if (srv.peak_users > static_cast<std::int64_t>(s_.capacity)) ++out_.servers_over_capacity;
    if (srv.newcomer) out_.newcomer_peak_users = std::max(out_.newcomer_peak_users, srv.peak_users);
  }
  std::vector<double> all;
  for (std::size_t g = 0; g < waits_.size(); ++g) {
    all.insert(all.end(), waits_[g].begin(), waits_[g].end());
    out_.join_wait_s[g] = QuantilesOf(waits_[g]);
  }
  out_.all_join_wait_s = QuantilesOf(all);
  out_.never_placed = waiting_;
  out_.evidence_spread_s = s_.pubsub_max_ms / 1000.0;
  for (const BadRecord& b : bad_) {
    BadServer o;
    o.server = servers_[b.server].info.id;
    o.kind = b.kind;
    o.broken_at_s = Elapsed(b.broken_at);
    o.users_at_evidence = b.users_at_evidence;
    o.placed_after_evidence = b.placed_after;
    o.placed_after_evidence_known = b.placed_after_known;
    o.probation_placed = b.probation_placed;
    o.migrated_off = b.migrated_off;
    o.peak_migrations_out_per_s = b.peak_out;
    o.users_at_end = static_cast<std::int64_t>(servers_[b.server].users.size());
    if (b.evidence) {
      o.first_evidence_s = Elapsed(*b.evidence);
      std::vector<double> ejections;
      for (const auto& at : b.ejected_at) {
        if (at) ejections.push_back(Seconds(*at - *b.evidence));
      }
      o.ejected_on = static_cast<std::uint32_t>(ejections.size());
      if (!ejections.empty()) {
        std::sort(ejections.begin(), ejections.end());
        o.eject_min_s = ejections.front();
        o.eject_median_s = ejections[ejections.size() / 2];
        o.eject_max_s = ejections.back();
      }
      if (b.emptied) o.emptied_after_s = Seconds(*b.emptied - *b.evidence);
    }
    out_.bad.push_back(std::move(o));
  }
}

}  // namespace

Outcome Simulate(const Scenario& scenario, Admission admission, const fleet::FleetParams& params) {
  Simulation sim(scenario, admission, params);
  return sim.Run();
}

}  // namespace vrouter::bench::fleetsim
