#include "router/fleet/scoring.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "tests/support/video_servers.h"

namespace vrouter::fleet {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using vrouter::testing::Server;

ScoreInput Active(const VideoServer& server) {
  ScoreInput in;
  in.server = &server;
  in.state = ServerState::kActive;
  return in;
}

TEST(ScoringParamsTest, DefaultsAreDocumented) {
  const ScoringParams p;
  EXPECT_EQ(p.packets_per_user, 100);
  EXPECT_EQ(p.failure_penalty_factor, 2.0);
  EXPECT_EQ(p.slow_start_window, seconds(30));
  EXPECT_EQ(p.slow_start_min_weight, 0.1);
  EXPECT_EQ(p.space_affinity_max_utilization, 0.8);
  EXPECT_EQ(p.max_new_users_per_interval, 100u);
}

TEST(ScoringTest, Names) {
  EXPECT_EQ(ServerStateName(ServerState::kPending), "pending");
  EXPECT_EQ(ServerStateName(ServerState::kActive), "active");
  EXPECT_EQ(ServerStateName(ServerState::kDraining), "draining");
  EXPECT_EQ(ServerStateName(ServerState::kEjected), "ejected");
  EXPECT_EQ(ServerStateName(ServerState::kStale), "stale");
  EXPECT_EQ(ServerStateName(ServerState::kGone), "gone");
  EXPECT_EQ(kServerStateCount, 6);
  EXPECT_EQ(IneligibleName(Ineligible::kEligible), "eligible");
  EXPECT_EQ(IneligibleName(Ineligible::kState), "state");
  EXPECT_EQ(IneligibleName(Ineligible::kNotForwarding), "not_forwarding");
  EXPECT_EQ(IneligibleName(Ineligible::kFull), "full");
  EXPECT_EQ(IneligibleName(Ineligible::kIntervalCap), "interval_cap");
  EXPECT_EQ(PickTierName(PickTier::kNone), "none");
  EXPECT_EQ(PickTierName(PickTier::kRegion), "region");
  EXPECT_EQ(PickTierName(PickTier::kRegionGroup), "region_group");
  EXPECT_EQ(PickTierName(PickTier::kAnywhere), "anywhere");
}

// ---- ScoreServer: effective load ----

TEST(ScoreServerTest, EmptyServerIsEligibleAtZero) {
  const auto server = Server("a");
  const Score s = ScoreServer(Active(server), {}, Evidence::kAll);
  EXPECT_EQ(s.effective_load, 0);
  EXPECT_EQ(s.utilization, 0);
  EXPECT_EQ(s.interval_cap, 100u);
  EXPECT_TRUE(s.eligible());
}

TEST(ScoreServerTest, ReportedLoadPlusPending) {
  const auto server = Server("a");
  auto in = Active(server);
  in.reported_load = 10;
  in.counter_load = 5;
  in.own = 8;
  in.pending = 2;
  const Score s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(s.effective_load, 12);  // max(10 + 2, 5 + 2, 8)
  EXPECT_DOUBLE_EQ(s.utilization, 0.12);
}

TEST(ScoreServerTest, CounterImpliedLoadWinsWhenHigher) {
  // A server claiming 0 peers whose counters say 4000 packets/s in: 40 users.
  const auto server = Server("a");
  auto in = Active(server);
  in.reported_load = 0;
  in.counter_load = 40;
  in.pending = 1;
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).effective_load, 41);
}

TEST(ScoreServerTest, OwnCountIsAFloorAndPendingIsNotCountedTwice) {
  const auto server = Server("a");
  auto in = Active(server);
  in.reported_load = 0;  // a stale "I'm empty"
  in.own = 30;           // already includes the 5 placed since the report
  in.pending = 5;
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).effective_load, 30);  // not 35
}

TEST(ScoreServerTest, PendingProtectsAgainstAStaleEmptyReport) {
  const auto server = Server("a", 10);
  auto in = Active(server);
  in.pending = 9;
  in.own = 0;  // the router's table has not caught up (another replica placed them)
  const Score s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(s.effective_load, 9);
  EXPECT_TRUE(s.eligible());
  in.pending = 10;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kFull);
}

TEST(ScoreServerTest, FailurePenaltyIsShareTimesCapacityTimesFactor) {
  const auto server = Server("a", 100);
  auto in = Active(server);
  in.own = 10;
  in.failure_share = 0.1;
  const Score s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(s.effective_load, 30);  // 10 + 0.1 * 100 * 2
  EXPECT_DOUBLE_EQ(s.utilization, 0.3);
  ScoringParams p;
  p.failure_penalty_factor = 0.5;
  EXPECT_DOUBLE_EQ(ScoreServer(in, p, Evidence::kAll).effective_load, 15);
}

TEST(AdmissionCapTest, TheIntervalCapOrTheRoomAtCapacityWhicheverIsLess) {
  const VideoServer server = Server("a", 500);
  const ScoringParams p;
  ScoreInput in = Active(server);
  EXPECT_EQ(AdmissionCap(in, ScoreServer(in, p, Evidence::kAll)), 100u);  // empty: the cap
  in.reported_load = 450;
  EXPECT_EQ(AdmissionCap(in, ScoreServer(in, p, Evidence::kAll)), 50u);
  in.pending = 30;  // this replica's own placements: the budget's count stands for them
  EXPECT_EQ(AdmissionCap(in, ScoreServer(in, p, Evidence::kAll)), 50u);
  in.own = 480;  // the fleet-wide count is higher than the report
  EXPECT_EQ(AdmissionCap(in, ScoreServer(in, p, Evidence::kAll)), 20u);
  in.counter_load = 499.5;
  EXPECT_EQ(AdmissionCap(in, ScoreServer(in, p, Evidence::kAll)), 1u);  // never 0
  // Slow start scales the capacity as it does for the headroom: a quarter of 500 is 125.
  in = Active(server);
  in.weight = 0.25;
  in.reported_load = 120;
  const Score s = ScoreServer(in, p, Evidence::kAll);
  EXPECT_EQ(s.interval_cap, 25u);
  EXPECT_EQ(AdmissionCap(in, s), 5u);
}

TEST(ScoreServerTest, CapacityZeroCountsAsOne) {
  const auto server = Server("a", 0);
  auto in = Active(server);
  const Score s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_TRUE(s.eligible());  // 0 + 1 <= 1
  in.own = 1;
  const Score full = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_EQ(full.ineligible, Ineligible::kFull);
  EXPECT_DOUBLE_EQ(full.utilization, 1);
}

// ---- ScoreServer: swallowing and panic ----

TEST(ScoreServerTest, SwallowingServerGetsNoCreditForLowLoad) {
  const auto server = Server("a", 50);
  for (Forwarding f : {Forwarding::kNotForwarding, Forwarding::kFrozen}) {
    SCOPED_TRACE(ForwardingName(f));
    auto in = Active(server);
    in.forwarding = f;
    in.own = 3;
    const Score s = ScoreServer(in, {}, Evidence::kAll);
    EXPECT_DOUBLE_EQ(s.effective_load, 50);
    EXPECT_DOUBLE_EQ(s.utilization, 1);
    EXPECT_EQ(s.ineligible, Ineligible::kNotForwarding);
    // A load already above capacity stays what it is.
    in.own = 70;
    EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).effective_load, 70);
  }
}

TEST(ScoreServerTest, OtherForwardingVerdictsAreNotPenalized) {
  const auto server = Server("a", 50);
  for (Forwarding f : {Forwarding::kUnknown, Forwarding::kIdle, Forwarding::kOk}) {
    SCOPED_TRACE(ForwardingName(f));
    auto in = Active(server);
    in.forwarding = f;
    in.own = 3;
    const Score s = ScoreServer(in, {}, Evidence::kAll);
    EXPECT_DOUBLE_EQ(s.effective_load, 3);
    EXPECT_TRUE(s.eligible());
  }
}

TEST(ScoreServerTest, PanicSetsHealthEvidenceAside) {
  const auto server = Server("a", 100);
  auto in = Active(server);
  in.own = 10;
  in.failure_share = 0.5;
  in.forwarding = Forwarding::kNotForwarding;
  const Score calm = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(calm.effective_load, 110);
  EXPECT_EQ(calm.ineligible, Ineligible::kNotForwarding);
  const Score panic = ScoreServer(in, {}, Evidence::kNone);
  EXPECT_DOUBLE_EQ(panic.effective_load, 10);  // load alone
  EXPECT_DOUBLE_EQ(panic.utilization, 0.1);
  EXPECT_TRUE(panic.eligible());
}

TEST(ScoreServerTest, PanicDoesNotMakeInactiveServersEligible) {
  const auto server = Server("a");
  auto in = Active(server);
  in.state = ServerState::kEjected;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kNone).ineligible, Ineligible::kState);
}

// ---- ScoreServer: state, headroom, interval cap ----

TEST(ScoreServerTest, EveryStateButActiveIsIneligible) {
  const auto server = Server("a");
  for (ServerState st : {ServerState::kPending, ServerState::kDraining, ServerState::kEjected,
                         ServerState::kStale, ServerState::kGone}) {
    SCOPED_TRACE(ServerStateName(st));
    auto in = Active(server);
    in.state = st;
    EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kState);
    // State is reported before anything else.
    in.forwarding = Forwarding::kFrozen;
    in.own = 1000;
    in.new_this_interval = 1000;
    EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kState);
  }
}

TEST(ScoreServerTest, IneligibilityPrecedence) {
  const auto server = Server("a", 10);
  auto in = Active(server);
  in.own = 10;
  in.new_this_interval = 100;
  in.forwarding = Forwarding::kNotForwarding;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kNotForwarding);
  in.forwarding = Forwarding::kOk;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kFull);
  in.own = 0;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kIntervalCap);
}

TEST(ScoreServerTest, HeadroomForOneMoreUserAtFullWeight) {
  const auto server = Server("a", 10);
  auto in = Active(server);
  in.own = 9;
  EXPECT_TRUE(ScoreServer(in, {}, Evidence::kAll).eligible());  // 9 + 1 <= 10
  in.own = 10;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kFull);
  in.own = 0;
  in.reported_load = 9.01;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kFull);
  in.reported_load = 9;
  EXPECT_TRUE(ScoreServer(in, {}, Evidence::kAll).eligible());
}

TEST(ScoreServerTest, SlowStartScalesHeadroom) {
  const auto server = Server("a", 10);
  auto in = Active(server);
  in.weight = 0.5;  // five users' room
  in.own = 4;
  EXPECT_TRUE(ScoreServer(in, {}, Evidence::kAll).eligible());  // 4 + 1 <= 5
  in.own = 5;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kFull);
}

TEST(ScoreServerTest, SlowStartUtilizationFloorIsAShareOfTheFleetMean) {
  const auto server = Server("a", 100);
  auto in = Active(server);
  in.fleet_utilization = 0.6;
  in.weight = 0.1;
  Score s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(s.utilization, 0.54);  // (1 - 0.1) * 0.6: its zero load is not believed
  EXPECT_DOUBLE_EQ(s.effective_load, 0);
  in.weight = 0.5;  // half way: half the fleet mean
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).utilization, 0.3);
  in.weight = 0.75;
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).utilization, 0.15);
  in.own = 40;  // load above the floor wins
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).utilization, 0.4);
  in.own = 0;
  in.weight = 1;  // full weight: no floor
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).utilization, 0);
}

TEST(ScoreServerTest, NoFleetMeanNoFloor) {
  // A whole fleet in slow start (or scored alone) has no established mean to compare with.
  const auto server = Server("a", 100);
  auto in = Active(server);
  in.weight = 0.1;
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).utilization, 0);
  in.own = 5;
  EXPECT_DOUBLE_EQ(ScoreServer(in, {}, Evidence::kAll).utilization, 0.05);
}

TEST(ScoreServerTest, WeightIsClamped) {
  const auto server = Server("a", 1000);
  auto in = Active(server);
  in.fleet_utilization = 1;
  in.weight = 0;
  Score s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(s.utilization, 0.99);  // clamped to 0.01
  EXPECT_EQ(s.interval_cap, 1u);
  in.weight = 7;
  s = ScoreServer(in, {}, Evidence::kAll);
  EXPECT_DOUBLE_EQ(s.utilization, 0);
  EXPECT_EQ(s.interval_cap, 100u);
}

TEST(ScoreServerTest, IntervalCapScalesWithWeightAndIsAtLeastOne) {
  const auto server = Server("a", 1000);
  auto in = Active(server);
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 100u);
  in.weight = 0.5;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 50u);
  in.weight = 0.1;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 10u);
  in.weight = 0.015;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 1u);  // floor(1.5)
  in.weight = 0.01;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 1u);
  ScoringParams p;
  p.max_new_users_per_interval = 0;
  p.new_users_per_interval_capacity_share = 0;
  in.weight = 1;
  EXPECT_EQ(ScoreServer(in, p, Evidence::kAll).interval_cap, 1u);
}

// Issue 20: a large server takes a share of its capacity per interval, when that is more than
// the fixed number; slow start scales it as it scales the rest.
TEST(ScoreServerTest, IntervalCapGrowsWithCapacity) {
  VideoServer big{"big", "wss://big/", "eu", 2500, true};
  ScoreInput in;
  in.server = &big;
  in.state = ServerState::kActive;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 250u);  // a tenth of 2,500
  in.weight = 0.1;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 25u);
  VideoServer small{"small", "wss://small/", "eu", 300, true};
  in.server = &small;
  in.weight = 1;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).interval_cap, 100u);  // the fixed number is more
  ScoringParams off;
  off.new_users_per_interval_capacity_share = 0;
  in.server = &big;
  EXPECT_EQ(ScoreServer(in, off, Evidence::kAll).interval_cap, 100u);
}

TEST(ScoreServerTest, IntervalCapBoundary) {
  const auto server = Server("a", 1000);
  auto in = Active(server);
  in.new_this_interval = 99;
  EXPECT_TRUE(ScoreServer(in, {}, Evidence::kAll).eligible());
  in.new_this_interval = 100;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kIntervalCap);
  in.weight = 0.5;
  in.new_this_interval = 49;
  EXPECT_TRUE(ScoreServer(in, {}, Evidence::kAll).eligible());
  in.new_this_interval = 50;
  EXPECT_EQ(ScoreServer(in, {}, Evidence::kAll).ineligible, Ineligible::kIntervalCap);
}

// ---- SlowStartWeight ----

TEST(SlowStartWeightTest, RampsLinearlyFromMinToOne) {
  const ScoringParams p;  // 30 s, 0.1
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(0), p), 0.1);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(15), p), 0.55);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(10), p), 0.4);
  EXPECT_LT(SlowStartWeight(milliseconds(29999), p), 1);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(30), p), 1);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(31), p), 1);
  EXPECT_DOUBLE_EQ(SlowStartWeight(std::chrono::hours(100), p), 1);
}

TEST(SlowStartWeightTest, NegativeElapsedIsTheFloor) {
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(-5), ScoringParams{}), 0.1);
}

TEST(SlowStartWeightTest, NoWindowMeansFullWeight) {
  ScoringParams p;
  p.slow_start_window = milliseconds(0);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(0), p), 1);
  p.slow_start_window = milliseconds(-1);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(0), p), 1);
}

TEST(SlowStartWeightTest, MinWeightIsClamped) {
  ScoringParams p;
  p.slow_start_min_weight = 0;
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(0), p), 0.01);
  p.slow_start_min_weight = 3;
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(0), p), 1);
  p.slow_start_min_weight = 0.5;
  p.slow_start_window = seconds(10);
  EXPECT_DOUBLE_EQ(SlowStartWeight(seconds(5), p), 0.75);
}

// ---- PickServer ----

// Scores set directly: PickServer only reads eligibility and utilization.
struct TestFleet {
  std::vector<VideoServer> servers;
  std::vector<ScoreInput> inputs;
  std::vector<Score> scores;

  void Add(std::string id, std::string region, double utilization, bool eligible = true) {
    servers.push_back(Server(std::move(id), 100, std::move(region)));
    Score s;
    s.utilization = utilization;
    s.ineligible = eligible ? Ineligible::kEligible : Ineligible::kFull;
    scores.push_back(s);
  }
  // Call after the last Add (inputs point into `servers`).
  void Finish() {
    inputs.clear();
    for (const auto& s : servers) inputs.push_back(Active(s));
  }
  PickResult Pick(const PickRequest& request, const ScoringParams& params,
                  std::mt19937_64& rng) const {
    return PickServer(inputs, scores, request, params, rng);
  }
};

ScoringParams Groups() {
  ScoringParams p;
  p.region_group = {{"eu-west", "eu"}, {"eu-central", "eu"}, {"us-east", "us"}};
  return p;
}

TEST(PickServerTest, NothingEligible) {
  TestFleet f;
  f.Add("a", "eu-west", 0, false);
  f.Add("b", "us-east", 0, false);
  f.Finish();
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
  EXPECT_EQ(r.index, -1);
  EXPECT_EQ(r.tier, PickTier::kNone);
  EXPECT_EQ(r.candidates, 0);
  EXPECT_FALSE(r.affinity);
  EXPECT_EQ(r.sampled_other, -1);
  TestFleet empty;
  EXPECT_EQ(empty.Pick({"eu-west", nullptr}, Groups(), rng).index, -1);
}

TEST(PickServerTest, OwnRegionFirstEvenWhenBusier) {
  TestFleet f;
  f.Add("us", "us-east", 0.0);
  f.Add("eu1", "eu-central", 0.0);
  f.Add("eu2", "eu-west", 0.7);
  f.Finish();
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
  EXPECT_EQ(r.index, 2);
  EXPECT_EQ(r.tier, PickTier::kRegion);
  EXPECT_EQ(r.candidates, 1);
  EXPECT_EQ(r.sampled_other, -1);
}

TEST(PickServerTest, RegionGroupBeforeAnywhere) {
  TestFleet f;
  f.Add("us", "us-east", 0.0);
  f.Add("west", "eu-west", 0.0, /*eligible=*/false);
  f.Add("central", "eu-central", 0.5);
  f.Finish();
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
  EXPECT_EQ(r.index, 2);
  EXPECT_EQ(r.tier, PickTier::kRegionGroup);
  EXPECT_EQ(r.candidates, 1);
}

TEST(PickServerTest, AnywhereWhenTheGroupHasNothing) {
  TestFleet f;
  f.Add("us", "us-east", 0.3);
  f.Add("west", "eu-west", 0.0, false);
  f.Add("central", "eu-central", 0.0, false);
  f.Finish();
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
  EXPECT_EQ(r.index, 0);
  EXPECT_EQ(r.tier, PickTier::kAnywhere);
}

TEST(PickServerTest, RegionsWithoutAGroupOnlyMatchThemselvesThenAnywhere) {
  TestFleet f;
  f.Add("ap", "ap-south", 0.0);      // no group
  f.Add("west", "eu-west", 0.0);     // group eu
  f.Add("nowhere", "sa-east", 0.0);  // no group
  f.Finish();
  std::mt19937_64 rng(1);
  // A user from another region of a group: the group.
  auto r = f.Pick({"eu-central", nullptr}, Groups(), rng);
  EXPECT_EQ(r.tier, PickTier::kRegionGroup);  // eu-west is in eu
  EXPECT_EQ(r.index, 1);
  // A user from an ungrouped region with no server of its own: anywhere.
  r = f.Pick({"af-north", nullptr}, Groups(), rng);
  EXPECT_EQ(r.tier, PickTier::kAnywhere);
  EXPECT_EQ(r.candidates, 3);
  // Two ungrouped regions are not a group.
  r = f.Pick({"ap-east", nullptr}, Groups(), rng);
  EXPECT_EQ(r.tier, PickTier::kAnywhere);
}

TEST(PickServerTest, UnknownUserRegionIsAnywhere) {
  TestFleet f;
  f.Add("a", "eu-west", 0.2);
  f.Add("b", "us-east", 0.1);
  f.Finish();
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"", nullptr}, Groups(), rng);
  EXPECT_EQ(r.tier, PickTier::kAnywhere);
  EXPECT_EQ(r.candidates, 2);
  EXPECT_EQ(r.index, 1);  // of two, the less utilized
  EXPECT_EQ(r.sampled_other, 0);
}

TEST(PickServerTest, CandidatesCountOnlyTheChosenTier) {
  TestFleet f;
  f.Add("w1", "eu-west", 0.1);
  f.Add("w2", "eu-west", 0.2);
  f.Add("w3", "eu-west", 0.3, false);
  f.Add("c1", "eu-central", 0.0);
  f.Add("u1", "us-east", 0.0);
  f.Finish();
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
  EXPECT_EQ(r.tier, PickTier::kRegion);
  EXPECT_EQ(r.candidates, 2);
  EXPECT_EQ(r.index, 0);
  EXPECT_EQ(r.sampled_other, 1);
}

TEST(PickServerTest, SpaceAffinityPicksTheServerWithMostMembers) {
  TestFleet f;
  f.Add("a", "eu-west", 0.1);
  f.Add("b", "eu-west", 0.5);
  f.Add("c", "eu-west", 0.7);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> space = {{"b", 3}, {"c", 5}};
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    const auto r = f.Pick({"eu-west", &space}, Groups(), rng);
    EXPECT_EQ(r.index, 2);
    EXPECT_TRUE(r.affinity);
    EXPECT_EQ(r.tier, PickTier::kRegion);
    EXPECT_EQ(r.candidates, 3);
    EXPECT_EQ(r.sampled_other, -1);
  }
}

TEST(PickServerTest, SpaceAffinityStopsAtTheUtilizationLimitThenSpillsOver) {
  TestFleet f;
  f.Add("a", "eu-west", 0.1);
  f.Add("b", "eu-west", 0.5);
  f.Add("c", "eu-west", 0.79);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> space = {{"b", 3}, {"c", 5}};
  std::mt19937_64 rng(1);
  auto r = f.Pick({"eu-west", &space}, Groups(), rng);
  EXPECT_EQ(r.index, 2);  // just under the limit
  EXPECT_TRUE(r.affinity);
  // Exactly at the limit: the next biggest holder of the space.
  f.scores[2].utilization = 0.8;
  r = f.Pick({"eu-west", &space}, Groups(), rng);
  EXPECT_EQ(r.index, 1);
  EXPECT_TRUE(r.affinity);
  // Both over: power of two choices, no affinity.
  f.scores[1].utilization = 0.85;
  for (int i = 0; i < 50; ++i) {
    r = f.Pick({"eu-west", &space}, Groups(), rng);
    EXPECT_FALSE(r.affinity);
    EXPECT_NE(r.index, 1);  // the most utilized (0.85) never wins two choices
    EXPECT_NE(r.sampled_other, -1);
  }
}

TEST(PickServerTest, SpaceAffinityTieGoesToTheLessUtilized) {
  TestFleet f;
  f.Add("a", "eu-west", 0.4);
  f.Add("b", "eu-west", 0.2);
  f.Add("c", "eu-west", 0.0);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> space = {{"a", 4}, {"b", 4}};
  std::mt19937_64 rng(1);
  const auto r = f.Pick({"eu-west", &space}, Groups(), rng);
  EXPECT_EQ(r.index, 1);
  EXPECT_TRUE(r.affinity);
}

TEST(PickServerTest, SpaceAffinityIgnoresIneligibleEmptyAndOtherTierServers) {
  TestFleet f;
  f.Add("a", "eu-west", 0.1);
  f.Add("b", "eu-west", 0.1, /*eligible=*/false);  // full
  f.Add("c", "us-east", 0.1);                      // another tier
  f.Add("d", "eu-west", 0.1);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> space = {
      {"b", 10}, {"c", 10}, {"d", 0}, {"zzz", 50}};
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    const auto r = f.Pick({"eu-west", &space}, Groups(), rng);
    EXPECT_FALSE(r.affinity);
    EXPECT_TRUE(r.index == 0 || r.index == 3) << r.index;
    EXPECT_EQ(r.candidates, 2);
  }
}

TEST(PickServerTest, NoSpaceAffinityForAServerInSlowStart) {
  TestFleet f;
  f.Add("new", "eu-west", 0.3);
  f.Add("old", "eu-west", 0.5);
  f.Add("other", "eu-west", 0.6);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> space = {{"new", 9}, {"old", 2}};
  std::mt19937_64 rng(1);
  f.inputs[0].weight = 0.99;
  auto r = f.Pick({"eu-west", &space}, Groups(), rng);
  EXPECT_EQ(r.index, 1);  // the space's other server, though it holds fewer members
  EXPECT_TRUE(r.affinity);
  // No other holder: the two choices, in which the newcomer competes on utilization.
  const absl::flat_hash_map<std::string, std::int64_t> only_new = {{"new", 9}};
  int picked_new = 0;
  for (int i = 0; i < 300; ++i) {
    r = f.Pick({"eu-west", &only_new}, Groups(), rng);
    EXPECT_FALSE(r.affinity);
    picked_new += r.index == 0;
  }
  EXPECT_NEAR(picked_new / 300.0, 2.0 / 3, 0.1);  // it wins both pairs it is in
  // At full weight it gets the space again.
  f.inputs[0].weight = 1;
  r = f.Pick({"eu-west", &space}, Groups(), rng);
  EXPECT_EQ(r.index, 0);
  EXPECT_TRUE(r.affinity);
}

TEST(PickServerTest, EmptyOrNullSpaceMapMeansNoAffinity) {
  TestFleet f;
  f.Add("a", "eu-west", 0.1);
  f.Add("b", "eu-west", 0.2);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> empty;
  std::mt19937_64 rng(1);
  EXPECT_FALSE(f.Pick({"eu-west", &empty}, Groups(), rng).affinity);
  EXPECT_FALSE(f.Pick({"eu-west", nullptr}, Groups(), rng).affinity);
}

TEST(PickServerTest, AffinityLimitIsAParam) {
  TestFleet f;
  f.Add("a", "eu-west", 0.0);
  f.Add("b", "eu-west", 0.5);
  f.Finish();
  const absl::flat_hash_map<std::string, std::int64_t> space = {{"b", 1}};
  auto p = Groups();
  p.space_affinity_max_utilization = 0.5;
  std::mt19937_64 rng(1);
  auto r = f.Pick({"eu-west", &space}, p, rng);
  EXPECT_FALSE(r.affinity);
  EXPECT_EQ(r.index, 0);
  p.space_affinity_max_utilization = 0.51;
  r = f.Pick({"eu-west", &space}, p, rng);
  EXPECT_TRUE(r.affinity);
  EXPECT_EQ(r.index, 1);
}

TEST(PickServerTest, OfTwoTheLessUtilizedAlwaysWins) {
  TestFleet f;
  f.Add("a", "eu-west", 0.6);
  f.Add("b", "eu-west", 0.59);
  f.Finish();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 1000; ++i) {
    const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
    ASSERT_EQ(r.index, 1);
    ASSERT_EQ(r.sampled_other, 0);
    ASSERT_EQ(r.candidates, 2);
  }
}

TEST(PickServerTest, TheMostUtilizedCandidateIsNeverPicked) {
  TestFleet f;
  f.Add("low", "eu-west", 0.1);
  f.Add("mid", "eu-west", 0.2);
  f.Add("high", "eu-west", 0.3);
  f.Finish();
  std::mt19937_64 rng(7);
  int counts[3] = {0, 0, 0};
  constexpr int kN = 30000;
  for (int i = 0; i < kN; ++i) {
    const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
    ASSERT_GE(r.index, 0);
    ASSERT_NE(r.index, r.sampled_other);
    // The winner is never the more utilized of the two it compared.
    ASSERT_LE(f.scores[r.index].utilization, f.scores[r.sampled_other].utilization);
    ++counts[r.index];
  }
  EXPECT_EQ(counts[2], 0);
  // Pairs are uniform: low wins 2 of 3 pairs, mid 1 of 3.
  EXPECT_NEAR(counts[0] / double(kN), 2.0 / 3, 0.02);
  EXPECT_NEAR(counts[1] / double(kN), 1.0 / 3, 0.02);
}

TEST(PickServerTest, EqualServersShareTheLoadEvenly) {
  TestFleet f;
  for (int i = 0; i < 10; ++i) f.Add("s" + std::to_string(i), "eu-west", 0.3);
  f.Finish();
  std::mt19937_64 rng(12345);
  std::vector<int> counts(10, 0);
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    const auto r = f.Pick({"eu-west", nullptr}, Groups(), rng);
    ASSERT_GE(r.index, 0);
    ASSERT_LT(r.index, 10);
    ASSERT_NE(r.index, r.sampled_other);
    ++counts[static_cast<std::size_t>(r.index)];
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_NEAR(counts[static_cast<std::size_t>(i)] / double(kN), 0.1, 0.015) << i;
  }
}

TEST(PickServerTest, NoArgminHerding) {
  // Ten servers with slightly different utilizations: a global argmin would send every user to
  // s0. With two choices s0 wins only when sampled (2 of 10), and rank k wins (9 - k) / 45.
  TestFleet f;
  for (int i = 0; i < 10; ++i) f.Add("s" + std::to_string(i), "eu-west", 0.50 + 0.001 * i);
  f.Finish();
  std::mt19937_64 rng(99);
  std::vector<int> counts(10, 0);
  constexpr int kN = 45000;
  for (int i = 0; i < kN; ++i) {
    ++counts[static_cast<std::size_t>(f.Pick({"eu-west", nullptr}, Groups(), rng).index)];
  }
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(counts[static_cast<std::size_t>(k)] / double(kN), (9 - k) / 45.0, 0.01) << k;
  }
  EXPECT_EQ(counts[9], 0);
  EXPECT_LT(counts[0], kN / 4);
}

TEST(PickServerTest, SameSeedSamePicks) {
  TestFleet f;
  for (int i = 0; i < 8; ++i) f.Add("s" + std::to_string(i), "eu-west", 0.1 * (i % 3));
  f.Finish();
  std::mt19937_64 a(5), b(5);
  for (int i = 0; i < 200; ++i) {
    const auto x = f.Pick({"eu-west", nullptr}, Groups(), a);
    const auto y = f.Pick({"eu-west", nullptr}, Groups(), b);
    ASSERT_EQ(x.index, y.index);
    ASSERT_EQ(x.sampled_other, y.sampled_other);
  }
}

TEST(PickServerTest, WorksWithRealScores) {
  // End to end through ScoreServer: a swallowing server and a full one are never chosen.
  std::vector<VideoServer> servers = {Server("ok", 10), Server("hole", 10), Server("full", 10),
                                      Server("ok2", 10)};
  std::vector<ScoreInput> inputs;
  for (const auto& s : servers) inputs.push_back(Active(s));
  inputs[0].own = 2;
  inputs[1].forwarding = Forwarding::kNotForwarding;
  inputs[2].own = 10;
  inputs[3].own = 6;
  std::vector<Score> scores;
  for (const auto& in : inputs) scores.push_back(ScoreServer(in, {}, Evidence::kAll));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) {
    const auto r = PickServer(inputs, scores, {"", nullptr}, ScoringParams{}, rng);
    ASSERT_EQ(r.index, 0);  // of ok (0.2) and ok2 (0.6), ok always wins
    ASSERT_EQ(r.candidates, 2);
  }
}

}  // namespace
}  // namespace vrouter::fleet
