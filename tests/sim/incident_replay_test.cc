// The NeurIPS 2020 load-test incident, replayed on simulated time: 20 video servers, 6,000 users
// joining over five minutes, and one server that turns into a black hole two minutes in (it keeps
// reporting low load, stops forwarding, and its users start reporting failures). The router's
// model must stop sending it users within two report intervals, eject it and migrate its users;
// the naive least-reported-load picker, run on the same trace, must be shown to fail.
#include <gtest/gtest.h>

#include <iostream>

#include "tests/sim/fleet_sim.h"

namespace vrouter::sim {
namespace {

constexpr int kServers = 20;
constexpr std::uint32_t kCapacity = 500;
constexpr int kJoinsPerSecond = 20;
constexpr int kBadAt = 120;  // seconds into the run
constexpr int kRunFor = 300;
constexpr int kBlackHole = 7;

struct Outcome {
  int swallowed = 0;            // users placed on the black hole after it turned bad
  int swallowed_late = 0;       // ... more than two report intervals after its first bad report
  int probation = 0;            // ... after its first ejection expired (probation readmissions)
  std::int64_t left_on_it = 0;  // at the end
  std::optional<double> eject_seconds;  // from turning bad to ejection
  int migrated = 0;
  int unplaced = 0;
  int users = 0;
};

Outcome ReplayIncident(Picker picker) {
  FleetSim sim(kServers, kCapacity, picker);
  sim.Register(0, kServers);
  for (int t = 0; t < kBadAt; ++t) sim.Step(kJoinsPerSecond);
  sim.Set(kBlackHole, Behaviour::kBlackHole);
  const SteadyTime bad_at = sim.now();
  // Its first report after turning bad is the next step's; two intervals after that, nothing new.
  const SteadyTime first_bad_report = bad_at + Seconds(1);
  const SteadyTime deadline = first_bad_report + Seconds(2);
  for (int t = kBadAt; t < kRunFor; ++t) sim.Step(kJoinsPerSecond);
  Outcome o;
  o.swallowed = sim.PlacedOnSince(kBlackHole, bad_at);
  // New users from the deadline until its first ejection expires. After that it is readmitted
  // on probation (slow start, a small interval cap) and takes a handful of users before its
  // reports give it away again: counted separately.
  const auto ejection = sim.first_ejection(kBlackHole);
  o.swallowed_late = sim.PlacedOnSince(kBlackHole, deadline) -
                     (ejection ? sim.PlacedOnSince(kBlackHole, *ejection + Seconds(30)) : 0);
  o.probation = ejection ? sim.PlacedOnSince(kBlackHole, *ejection + Seconds(30)) : 0;
  o.left_on_it = sim.UsersOn(kBlackHole);
  if (auto at = sim.first_ejection(kBlackHole)) {
    o.eject_seconds = std::chrono::duration<double>(*at - bad_at).count();
  }
  o.migrated = sim.migrated();
  o.unplaced = sim.unplaced();
  o.users = static_cast<int>(sim.users().size());
  return o;
}

TEST(IncidentReplay, RouterStopsFeedingTheBlackHoleEjectsItAndMigratesItsUsers) {
  const Outcome o = ReplayIncident(Picker::kRouter);
  std::cout << "[replay] router: swallowed=" << o.swallowed << " late=" << o.swallowed_late
            << " left_on_black_hole=" << o.left_on_it
            << " eject_after_s=" << (o.eject_seconds ? *o.eject_seconds : -1)
            << " probation=" << o.probation << " migrated=" << o.migrated
            << " unplaced=" << o.unplaced << " users=" << o.users << "\n";
  EXPECT_EQ(o.swallowed_late, 0) << "new users after two report intervals";
  // Within the first bad interval it may still take its per-interval share, no more.
  EXPECT_LE(o.swallowed - o.probation, kJoinsPerSecond);
  ASSERT_TRUE(o.eject_seconds.has_value());
  EXPECT_LE(*o.eject_seconds, 5.0);  // three bad reports, plus the tick that sees the third
  EXPECT_EQ(o.left_on_it, 0);        // everyone it swallowed (and had before) was migrated
  // Each probation admits at most probation_max_users (2) before its first bad report; the
  // run sees at most three readmissions.
  EXPECT_LE(o.probation, 6);
  EXPECT_GT(o.migrated, 0);
  EXPECT_EQ(o.unplaced, 0);
}

TEST(IncidentReplay, NaiveLeastLoadedPickerIsSwallowedByTheBlackHole) {
  const Outcome naive = ReplayIncident(Picker::kNaiveLeastReported);
  const Outcome router = ReplayIncident(Picker::kRouter);
  std::cout << "[replay] naive: swallowed=" << naive.swallowed
            << " left_on_black_hole=" << naive.left_on_it << " of "
            << (kRunFor - kBadAt) * kJoinsPerSecond << " joins after it turned bad\n";
  // The incident: it reports ~empty, so it takes (nearly) every join from then on.
  EXPECT_GE(naive.swallowed, (kRunFor - kBadAt) * kJoinsPerSecond * 9 / 10);
  EXPECT_GT(naive.swallowed, 50 * std::max(router.swallowed, 1));
}

// Half the fleet turning bad at once is more than may be ejected (30 %): the fleet panics. It
// still ejects the worst up to the cap, and the bad servers it may not eject take no new users
// (issue 22, case 2: panic used to set all evidence aside and feed the black holes).
TEST(IncidentReplay, HalfTheFleetTurningBadEjectsUpToTheCapAndFeedsNoneOfThem) {
  FleetSim sim(kServers, kCapacity, Picker::kRouter);
  sim.Register(0, kServers);
  for (int t = 0; t < 60; ++t) sim.Step(kJoinsPerSecond);
  for (int i = 0; i < kServers / 2; ++i) sim.Set(i, Behaviour::kBlackHole);
  const SteadyTime bad_at = sim.now();
  bool panicked = false;
  for (int t = 0; t < 20; ++t) {
    sim.Step(kJoinsPerSecond);
    panicked = panicked || sim.model().panic();
  }
  EXPECT_TRUE(panicked);
  const auto view = sim.model().View(sim.now());
  EXPECT_TRUE(view.panic);
  EXPECT_NE(view.panic_detail.find("10 of 20"), std::string::npos) << view.panic_detail;
  int ejected = 0;
  for (const auto& v : view.servers) ejected += v.state == fleet::ServerState::kEjected ? 1 : 0;
  EXPECT_EQ(ejected, 6);  // the cap: 30 % of 20
  int fed = 0;
  for (int i = 0; i < kServers / 2; ++i) fed += sim.PlacedOnSince(i, bad_at + Seconds(2));
  std::cout << "[replay] half bad: ejected=" << ejected
            << " placed_on_bad_after_first_report=" << fed << " unplaced=" << sim.unplaced()
            << "\n";
  EXPECT_EQ(fed, 0) << "users placed on known-bad servers after their first bad report";
  EXPECT_EQ(sim.unplaced(), 0);  // the healthy half takes everyone
  // Once they forward again and their users' failure reports have aged out of the window, the
  // fleet leaves panic by itself.
  for (int i = 0; i < kServers; ++i) sim.Set(i, Behaviour::kHealthy);
  for (int t = 0; t < 35; ++t) sim.Step(kJoinsPerSecond);
  EXPECT_FALSE(sim.model().panic());
}

TEST(IncidentReplay, FreshServerJoiningABusyFleetIsNotStampeded) {
  for (const Picker picker : {Picker::kRouter, Picker::kNaiveLeastReported}) {
    FleetSim sim(kServers, kCapacity, picker);
    sim.Register(0, kServers - 1);
    for (int t = 0; t < 150; ++t) sim.Step(kJoinsPerSecond * 2);  // 19 servers ~63% full
    sim.Register(kServers - 1, kServers);
    const SteadyTime joined = sim.now();
    std::vector<int> per_second;
    for (int t = 0; t < 10; ++t) {
      const int before = sim.PlacedOnSince(kServers - 1, joined);
      sim.Step(kJoinsPerSecond * 2);
      per_second.push_back(sim.PlacedOnSince(kServers - 1, joined) - before);
    }
    const int first10 = sim.PlacedOnSince(kServers - 1, joined);
    std::cout << "[newcomer] " << (picker == Picker::kRouter ? "router" : "naive")
              << ": first 10 s " << first10 << " of " << 10 * kJoinsPerSecond * 2 << " joins\n";
    if (picker == Picker::kRouter) {
      // Slow start: its zero load is not believed; at most its (ramped) interval cap per second.
      for (int n : per_second) EXPECT_LE(n, 40);
      EXPECT_LE(first10, 10 * kJoinsPerSecond * 2 / 5);
      // ... and not starved either: once slow start is over it takes its share and catches up.
      for (int t = 0; t < 60; ++t) sim.Step(kJoinsPerSecond * 2);
      std::cout << "[newcomer] router: after 70 s " << sim.UsersOn(kServers - 1) << " users\n";
      EXPECT_GE(sim.UsersOn(kServers - 1), 100);
    } else {
      EXPECT_GE(first10, 10 * kJoinsPerSecond * 2 / 2);  // the stampede
    }
  }
}

TEST(IncidentReplay, FlappingServerIsNotReadmittedAtFullWeight) {
  FleetSim sim(kServers, kCapacity, Picker::kRouter);
  sim.Register(0, kServers);
  for (int t = 0; t < 60; ++t) sim.Step(kJoinsPerSecond);
  auto run_until = [&](fleet::ServerState state) {
    for (int t = 0; t < 400; ++t) {
      if (sim.model().StateOf("sfu-3") == state) return true;
      sim.Step(kJoinsPerSecond);
    }
    return false;
  };
  auto server3 = [&] { return sim.model().View(sim.now()).servers[3]; };

  // It goes quiet long enough to be gone (its users, getting no media, report failures), then
  // comes back: it returns on probation, in slow start, never at full weight.
  sim.Set(3, Behaviour::kSilent);
  for (int t = 0; t < 20; ++t) sim.Step(kJoinsPerSecond);
  EXPECT_EQ(sim.model().StateOf("sfu-3"), fleet::ServerState::kGone);
  EXPECT_EQ(sim.UsersOn(3), 0);  // its users were migrated
  sim.Set(3, Behaviour::kHealthy);
  ASSERT_TRUE(run_until(fleet::ServerState::kActive));
  EXPECT_LT(server3().weight, 0.2);
  EXPECT_LE(server3().score.interval_cap, 20u);
  const std::uint32_t before = server3().ejections;

  // Then it swallows media: ejected; on expiry it returns on probation (slow start again); when
  // it swallows media again the next ejection lasts longer.
  sim.Set(3, Behaviour::kBlackHole);
  ASSERT_TRUE(run_until(fleet::ServerState::kEjected));
  const auto first = server3();
  EXPECT_EQ(first.ejections, before + 1);
  ASSERT_TRUE(run_until(fleet::ServerState::kActive));
  EXPECT_EQ(server3().reason, fleet::ChangeReason::kEjectionExpired);
  EXPECT_LT(server3().weight, 0.2);
  ASSERT_TRUE(run_until(fleet::ServerState::kEjected));
  const auto second = server3();
  EXPECT_EQ(second.ejections, before + 2);
  EXPECT_EQ(second.ejection_multiplier, first.ejection_multiplier + 1);
  EXPECT_GT(second.ejected_for->count(), first.ejected_for->count() + 25000);
}

// ---- Issue 22: the defense under an adversary and under ordinary crowds ----
// The independent simulator's settings: 5 servers of capacity 200, people in rooms of 6, reports
// every 250 ms.

fleet::FleetParams FastReports() {
  fleet::FleetParams p;
  p.report_interval = Ms(250);
  return p;
}

// 300 people placed on five healthy servers, then `seconds` of quiet.
void Crowd(FleetSim& sim, int people = 300) {
  sim.users_per_space = 6;
  sim.Register(0, 5);
  for (int placed = 0; placed < people; placed += 10) sim.Step(10);
  for (int t = 0; t < 40; ++t) sim.Step(0);
}

int Ejections(FleetSim& sim) {
  int n = 0;
  for (const auto& v : sim.model().View(sim.now()).servers) n += static_cast<int>(v.ejections);
  return n;
}

// Case 1: one false `no_media` report (1 of ~60 on the server), then three, then a storm from
// one client that reconnects with a fresh token each time: no ejection, nobody moved.
TEST(IncidentReplay, FalseReportsNeverEjectAHealthyServer) {
  FleetSim sim(5, 200, Picker::kRouter, FastReports());
  Crowd(sim);
  auto users_on = [&](int server) {
    std::vector<std::string> out;
    for (const auto& u : sim.users()) {
      if (u.server == sim.server(server).info.id) out.push_back(u.id);
    }
    return out;
  };
  const auto victims = users_on(4);
  ASSERT_GE(victims.size(), 20u);
  sim.model().OnFailureReport(sim.server(4).info.id, victims[0], "203.0.113.1", sim.now());
  for (int t = 0; t < 40; ++t) sim.Step(0);
  for (int i = 1; i < 3; ++i) {
    sim.model().OnFailureReport(sim.server(4).info.id, victims[static_cast<std::size_t>(i)],
                                "203.0.113." + std::to_string(i + 1), sim.now());
  }
  for (int t = 0; t < 40; ++t) sim.Step(0);
  // The storm: 200 reports over 10 s, each from a new "user" on one address.
  for (int t = 0; t < 40; ++t) {
    for (int k = 0; k < 5; ++k) {
      sim.model().OnFailureReport(sim.server(4).info.id, "storm-" + std::to_string(t * 5 + k),
                                  "198.51.100.66", sim.now());
    }
    sim.Step(0);
  }
  std::cout << "[replay] false reports: ejections=" << Ejections(sim)
            << " migrated=" << sim.migrated() << " panic=" << sim.model().panic() << "\n";
  EXPECT_EQ(Ejections(sim), 0);
  EXPECT_EQ(sim.migrated(), 0);
  EXPECT_FALSE(sim.model().panic());
}

// Case 2: two of five servers broken (40 %, over the 30 % cap), as black holes or as liars whose
// counters look healthy. Each gets at most a handful of people after the first evidence
// (a black hole's first report; a liar's first client report, detect_after later).
TEST(IncidentReplay, TwoOfFiveBrokenGetAHandfulAtMostAfterTheFirstEvidence) {
  for (const Behaviour broken : {Behaviour::kBlackHole, Behaviour::kLiar}) {
    FleetSim sim(5, 200, Picker::kRouter, FastReports());
    Crowd(sim, 150);
    sim.Set(0, broken);
    sim.Set(1, broken);
    const SteadyTime evidence =
        sim.now() + (broken == Behaviour::kLiar ? sim.detect_after + Seconds(1) : Ms(500));
    for (int t = 0; t < 240; ++t) sim.Step(1);  // 60 s, 240 more joins (390 in all)
    const int on0 = sim.PlacedOnSince(0, evidence), on1 = sim.PlacedOnSince(1, evidence);
    std::cout << "[replay] two of five " << (broken == Behaviour::kLiar ? "liars" : "black holes")
              << ": placed after evidence " << on0 << " and " << on1
              << ", panic=" << sim.model().panic() << ", unplaced=" << sim.unplaced() << "\n";
    EXPECT_LE(on0, 5);
    EXPECT_LE(on1, 5);
    EXPECT_EQ(sim.unplaced(), 0);
  }
}

// Case 3: forty people, each alone in a room, on five healthy servers: media in and nothing to
// forward. No panic, no ejection (the servers say they serve no outgoing stream).
TEST(IncidentReplay, FortyPeopleAloneCauseNeitherPanicNorEjection) {
  FleetSim sim(5, 200, Picker::kRouter, FastReports());
  sim.users_per_space = 1;
  sim.Register(0, 5);
  bool panicked = false;
  for (int t = 0; t < 240; ++t) {
    sim.Step(t < 40 ? 1 : 0);
    panicked = panicked || sim.model().panic();
  }
  std::cout << "[replay] forty alone: panic=" << panicked << " ejections=" << Ejections(sim)
            << "\n";
  EXPECT_FALSE(panicked);
  EXPECT_EQ(Ejections(sim), 0);
  // The control: servers that do not send the streams are judged as before.
  FleetSim old(5, 200, Picker::kRouter, FastReports());
  old.users_per_space = 1;
  old.report_streams = false;
  old.Register(0, 5);
  for (int t = 0; t < 240; ++t) old.Step(t < 40 ? 1 : 0);
  EXPECT_GT(Ejections(old), 0);
}

// Case 4: a black hole that restarts every three reports, with clients that never report: each
// restart was a fresh baseline and it was never ejected. Now it is, within a few restarts.
TEST(IncidentReplay, ACrashLoopingBlackHoleWithSilentClientsIsEjected) {
  FleetSim sim(5, 200, Picker::kRouter, FastReports());
  Crowd(sim, 150);
  sim.clients_report = false;
  sim.Set(2, Behaviour::kCrashLoop);
  const SteadyTime bad_at = sim.now();
  for (int t = 0; t < 80 && !sim.first_ejection(2); ++t) sim.Step(1);
  ASSERT_TRUE(sim.first_ejection(2).has_value());
  std::cout << "[replay] crash loop: ejected after "
            << std::chrono::duration<double>(*sim.first_ejection(2) - bad_at).count() << " s, "
            << sim.restarts() << " restarts\n";
  EXPECT_LE(sim.restarts(), 3);
}

}  // namespace
}  // namespace vrouter::sim
