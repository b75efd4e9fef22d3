// The simulated video server's media model (bench/sim/media_model.h): counters per behaviour,
// monotonicity (except across a restart), fanout edge cases, connection and switch timing.
#include "bench/sim/media_model.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace vrouter::bench::sim {
namespace {

ModelParams Params(std::uint32_t capacity = 500, double pps = 100, double flap_period = 5) {
  return ModelParams{capacity, pps, flap_period, 1000};
}

MediaModel Model(Behavior behavior, double at = 0, ModelParams params = Params()) {
  return MediaModel(BehaviorSpec{behavior, at}, params);
}

constexpr Behavior kAll[] = {Behavior::kHealthy, Behavior::kBlackhole, Behavior::kFrozen,
                             Behavior::kRestart, Behavior::kDead,      Behavior::kFlapping,
                             Behavior::kGarbage};

void ExpectSameCounters(const proto::Stats& a, const proto::Stats& b) {
  EXPECT_EQ(a.packets_in, b.packets_in);
  EXPECT_EQ(a.packets_out, b.packets_out);
  EXPECT_EQ(a.bytes_in, b.bytes_in);
  EXPECT_EQ(a.bytes_out, b.bytes_out);
}

// ---- fanout ----

TEST(FanoutTest, OtherParticipantsCappedAtEight) {
  EXPECT_EQ(Fanout(0), 0u);
  EXPECT_EQ(Fanout(1), 0u);  // alone in the room: nothing to forward
  EXPECT_EQ(Fanout(2), 1u);
  EXPECT_EQ(Fanout(5), 4u);
  EXPECT_EQ(Fanout(8), 7u);
  EXPECT_EQ(Fanout(9), 8u);
  EXPECT_EQ(Fanout(10), 8u);
  EXPECT_EQ(Fanout(4'000'000'000u), 8u);
}

TEST(BehaviorNameTest, RoundTrips) {
  for (Behavior b : kAll) {
    const auto back = BehaviorFromName(BehaviorName(b));
    ASSERT_TRUE(back.has_value()) << BehaviorName(b);
    EXPECT_EQ(*back, b);
  }
  EXPECT_FALSE(BehaviorFromName("zombie").has_value());
  EXPECT_FALSE(BehaviorFromName("").has_value());
  EXPECT_FALSE(BehaviorFromName("Healthy").has_value());
}

// ---- healthy ----

TEST(MediaModelTest, HealthyCountsMediaInAndForwardsItToTheOthers) {
  MediaModel m = Model(Behavior::kHealthy);
  proto::Stats s = m.NextStats(1.0, 5);
  EXPECT_EQ(s.seq, 0u);
  EXPECT_EQ(s.peers, 5u);
  EXPECT_EQ(s.media_peers, 5u);
  EXPECT_EQ(s.packets_in, 500u);    // 5 users * 100 pps * 1 s
  EXPECT_EQ(s.packets_out, 2000u);  // each packet to the 4 others
  EXPECT_EQ(s.bytes_in, 500'000u);
  EXPECT_EQ(s.bytes_out, 2'000'000u);
  EXPECT_DOUBLE_EQ(s.cpu, 0.05 + 0.8 * 5 / 500);

  s = m.NextStats(3.0, 5);  // two seconds later
  EXPECT_EQ(s.seq, 1u);
  EXPECT_EQ(s.packets_in, 1500u);
  EXPECT_EQ(s.packets_out, 6000u);

  s = m.NextStats(4.0, 20);  // the room grew: fanout capped at 8
  EXPECT_EQ(s.seq, 2u);
  EXPECT_EQ(s.peers, 20u);
  EXPECT_EQ(s.packets_in, 1500u + 2000u);
  EXPECT_EQ(s.packets_out, 6000u + 2000u * 8);
  EXPECT_EQ(s.bytes_out, s.packets_out * 1000);
  EXPECT_EQ(m.reports(), 3u);
  EXPECT_EQ(m.next_seq(), 3u);
}

TEST(MediaModelTest, HealthyWithOneUserOrNoneForwardsNothing) {
  MediaModel m = Model(Behavior::kHealthy);
  proto::Stats s = m.NextStats(1.0, 1);
  EXPECT_EQ(s.packets_in, 100u);
  EXPECT_EQ(s.packets_out, 0u);
  EXPECT_EQ(s.bytes_out, 0u);
  s = m.NextStats(2.0, 0);
  EXPECT_EQ(s.peers, 0u);
  EXPECT_EQ(s.media_peers, 0u);
  EXPECT_EQ(s.packets_in, 100u);
  EXPECT_EQ(s.packets_out, 0u);
  EXPECT_DOUBLE_EQ(s.cpu, 0.05);
}

TEST(MediaModelTest, CpuFollowsLoadAndSaturatesAtOne) {
  MediaModel m = Model(Behavior::kHealthy, 0, Params(100));
  EXPECT_DOUBLE_EQ(m.NextStats(1, 50).cpu, 0.05 + 0.8 * 0.5);
  EXPECT_DOUBLE_EQ(m.NextStats(2, 100).cpu, 0.85);
  EXPECT_DOUBLE_EQ(m.NextStats(3, 1000).cpu, 1.0);  // overloaded: clamped
}

TEST(MediaModelTest, SlowRatesAccrueAcrossReports) {
  MediaModel m = Model(Behavior::kHealthy, 0, Params(500, 0.4));  // 0.4 packets/s
  EXPECT_EQ(m.NextStats(1, 1).packets_in, 0u);
  EXPECT_EQ(m.NextStats(2, 1).packets_in, 0u);
  EXPECT_EQ(m.NextStats(3, 1).packets_in, 1u);
  EXPECT_EQ(m.NextStats(5, 1).packets_in, 2u);
}

TEST(MediaModelTest, ElapsedTimeIsSinceThePreviousReportAndNeverNegative) {
  MediaModel m = Model(Behavior::kHealthy);
  EXPECT_EQ(m.NextStats(0.5, 2).packets_in, 100u);  // the first report counts from t = 0
  EXPECT_EQ(m.NextStats(0.5, 2).packets_in, 100u);  // no time passed
  EXPECT_EQ(m.NextStats(0.2, 2).packets_in, 100u);  // a clock going back adds nothing
  EXPECT_EQ(m.NextStats(1.0, 2).packets_in, 200u);  // counted from 0.5, not from 0.2
}

TEST(MediaModelTest, PacketsPerSecondIsConfigurable) {
  MediaModel m = Model(Behavior::kHealthy, 0, Params(500, 50));
  const proto::Stats s = m.NextStats(2.0, 3);
  EXPECT_EQ(s.packets_in, 300u);  // 3 * 50 * 2
  EXPECT_EQ(s.packets_out, 600u);
}

TEST(MediaModelTest, InvalidParametersAreMadeSafe) {
  MediaModel m(BehaviorSpec{}, ModelParams{0, -5, 0, 1000});
  EXPECT_EQ(m.params().capacity, 1u);
  EXPECT_EQ(m.params().pps, 0);
  EXPECT_GT(m.params().flap_period, 0);
  const proto::Stats s = m.NextStats(1, 3);
  EXPECT_EQ(s.packets_in, 0u);
  EXPECT_DOUBLE_EQ(s.cpu, 1.0);
}

// ---- blackhole ----

TEST(MediaModelTest, BlackholeReportsLowLoadWhileMediaArrivesAndNothingLeaves) {
  MediaModel m = Model(Behavior::kBlackhole, 2.0);
  proto::Stats s = m.NextStats(1.0, 10);  // before the switch: healthy
  EXPECT_EQ(s.peers, 10u);
  EXPECT_EQ(s.packets_in, 1000u);
  EXPECT_EQ(s.packets_out, 8000u);
  EXPECT_DOUBLE_EQ(s.cpu, 0.05 + 0.8 * 10 / 500);

  for (int i = 2; i <= 4; ++i) {
    s = m.NextStats(i, 10);
    EXPECT_EQ(s.seq, static_cast<std::uint64_t>(i - 1));
    EXPECT_EQ(s.peers, 2u);
    EXPECT_EQ(s.media_peers, 2u);
    EXPECT_DOUBLE_EQ(s.cpu, 0.05);
    EXPECT_EQ(s.packets_in, 1000u * i);  // the real 10 users keep sending
    EXPECT_EQ(s.bytes_in, 1'000'000u * i);
    EXPECT_EQ(s.packets_out, 8000u);  // frozen at its value before the switch
    EXPECT_EQ(s.bytes_out, 8'000'000u);
  }
  s = m.NextStats(5, 1);
  EXPECT_EQ(s.peers, 1u);  // min(assigned, 2)
  EXPECT_EQ(s.packets_in, 4100u);
}

TEST(MediaModelTest, BlackholeFromTheStartNeverForwards) {
  MediaModel m = Model(Behavior::kBlackhole, 0);
  for (int i = 1; i <= 3; ++i) {
    const proto::Stats s = m.NextStats(i, 50);
    EXPECT_EQ(s.packets_out, 0u);
    EXPECT_EQ(s.packets_in, 5000u * i);
    EXPECT_EQ(s.peers, 2u);
  }
}

// ---- frozen ----

TEST(MediaModelTest, FrozenStopsEveryCounterButKeepsPeersAndSeq) {
  MediaModel m = Model(Behavior::kFrozen, 2.0);
  const proto::Stats before = m.NextStats(1.0, 10);
  for (int i = 2; i <= 4; ++i) {
    const proto::Stats s = m.NextStats(i, 10 + i);
    EXPECT_EQ(s.seq, static_cast<std::uint64_t>(i - 1));
    EXPECT_EQ(s.peers, static_cast<std::uint32_t>(10 + i));
    EXPECT_EQ(s.media_peers, static_cast<std::uint32_t>(10 + i));
    ExpectSameCounters(s, before);
    EXPECT_DOUBLE_EQ(s.cpu, 0.05 + 0.8 * (10 + i) / 500);  // looks as busy as a healthy one
  }
}

// ---- restart ----

TEST(MediaModelTest, RestartResetsSeqAndCountersOnceThenIsHealthy) {
  MediaModel m = Model(Behavior::kRestart, 2.0);
  m.NextStats(1.0, 10);
  const proto::Stats before = m.NextStats(1.9, 10);
  EXPECT_EQ(before.seq, 1u);
  EXPECT_EQ(before.packets_in, 1900u);
  EXPECT_FALSE(m.RestartDue(1.99));
  ASSERT_TRUE(m.RestartDue(2.0));
  m.Restart(2.0);
  EXPECT_TRUE(m.restarted());
  EXPECT_FALSE(m.RestartDue(2.0));
  EXPECT_FALSE(m.RestartDue(100));  // once only
  EXPECT_EQ(m.next_seq(), 0u);

  proto::Stats s = m.NextStats(3.0, 10);  // counts from the restart, not from 1.9
  EXPECT_EQ(s.seq, 0u);
  EXPECT_EQ(s.packets_in, 1000u);
  EXPECT_EQ(s.packets_out, 8000u);
  EXPECT_LT(s.packets_in, before.packets_in);  // a counter went down: the router must see a reset
  EXPECT_EQ(s.peers, 10u);
  s = m.NextStats(4.0, 10);
  EXPECT_EQ(s.seq, 1u);
  EXPECT_EQ(s.packets_in, 2000u);
  EXPECT_EQ(s.packets_out, 16000u);
}

TEST(MediaModelTest, OnlyRestartEverRestarts) {
  for (Behavior b : kAll) {
    if (b == Behavior::kRestart) continue;
    MediaModel m = Model(b, 0);
    EXPECT_FALSE(m.RestartDue(10)) << BehaviorName(b);
  }
}

// ---- dead ----

TEST(MediaModelTest, DeadDisconnectsAtTheSwitchForGood) {
  MediaModel m = Model(Behavior::kDead, 5.0);
  EXPECT_TRUE(m.WantsConnection(0));
  EXPECT_TRUE(m.WantsConnection(4.99));
  EXPECT_FALSE(m.WantsConnection(5.0));
  EXPECT_FALSE(m.WantsConnection(6));
  EXPECT_FALSE(m.WantsConnection(1e6));
  EXPECT_FALSE(Model(Behavior::kDead, 0).WantsConnection(0));  // dead from the start
}

// ---- flapping ----

TEST(MediaModelTest, FlappingAlternatesDownThenUpEveryPeriod) {
  MediaModel m = Model(Behavior::kFlapping, 10.0, Params(500, 100, 5));
  EXPECT_TRUE(m.WantsConnection(9.99));
  EXPECT_FALSE(m.WantsConnection(10.0));  // goes down first
  EXPECT_FALSE(m.WantsConnection(14.99));
  EXPECT_TRUE(m.WantsConnection(15.0));
  EXPECT_TRUE(m.WantsConnection(19.99));
  EXPECT_FALSE(m.WantsConnection(20.0));
  EXPECT_TRUE(m.WantsConnection(25.0));
  EXPECT_FALSE(m.WantsConnection(1000.0));  // (1000 - 10) / 5 = 198: even, down
  EXPECT_TRUE(m.WantsConnection(1005.0));
}

TEST(MediaModelTest, FlappingKeepsSeqAndCountersAcrossReconnects) {
  MediaModel m = Model(Behavior::kFlapping, 1.0, Params(500, 100, 2));
  proto::Stats s = m.NextStats(0.5, 4);
  EXPECT_EQ(s.seq, 0u);
  // Down from 1 to 3: no report. Up again at 3: media kept flowing meanwhile.
  s = m.NextStats(3.0, 4);
  EXPECT_EQ(s.seq, 1u);
  EXPECT_EQ(s.packets_in, 1200u);  // 4 * 100 * 3
  EXPECT_EQ(s.packets_out, 3600u);
  EXPECT_EQ(s.peers, 4u);
}

TEST(MediaModelTest, NonDisconnectingBehavioursAlwaysWantAConnection) {
  for (Behavior b : {Behavior::kHealthy, Behavior::kBlackhole, Behavior::kFrozen,
                     Behavior::kRestart, Behavior::kGarbage}) {
    MediaModel m = Model(b, 1.0);
    for (double t : {0.0, 1.0, 2.5, 100.0}) EXPECT_TRUE(m.WantsConnection(t)) << BehaviorName(b);
  }
}

// ---- garbage ----

TEST(MediaModelTest, GarbageIsDueOnceAtTheSwitchAndStaysHealthy) {
  MediaModel m = Model(Behavior::kGarbage, 3.0);
  MediaModel healthy = Model(Behavior::kHealthy);
  EXPECT_FALSE(m.GarbageDue(2.99));
  EXPECT_TRUE(m.GarbageDue(3.0));
  EXPECT_TRUE(m.GarbageDue(4.0));  // until sent
  m.MarkGarbageSent();
  EXPECT_FALSE(m.GarbageDue(4.0));
  EXPECT_FALSE(m.GarbageDue(1e6));
  for (int i = 1; i <= 5; ++i) {
    const proto::Stats s = m.NextStats(i, 7);
    const proto::Stats h = healthy.NextStats(i, 7);
    ExpectSameCounters(s, h);
    EXPECT_EQ(s.seq, h.seq);
    EXPECT_EQ(s.peers, 7u);
  }
  for (Behavior b : kAll) {
    if (b != Behavior::kGarbage) {
      EXPECT_FALSE(Model(b, 0).GarbageDue(10)) << BehaviorName(b);
    }
  }
}

// ---- properties over every behaviour ----

TEST(MediaModelTest, EveryBehaviourIsHealthyBeforeItsSwitch) {
  for (Behavior b : kAll) {
    MediaModel m = Model(b, 10.0);
    MediaModel healthy = Model(Behavior::kHealthy);
    for (int i = 1; i < 10; ++i) {
      EXPECT_TRUE(m.WantsConnection(i)) << BehaviorName(b);
      EXPECT_FALSE(m.Switched(i));
      const proto::Stats s = m.NextStats(i, static_cast<std::uint32_t>(i * 3));
      const proto::Stats h = healthy.NextStats(i, static_cast<std::uint32_t>(i * 3));
      EXPECT_EQ(s.seq, h.seq);
      EXPECT_EQ(s.peers, h.peers);
      EXPECT_EQ(s.media_peers, h.media_peers);
      EXPECT_DOUBLE_EQ(s.cpu, h.cpu);
      ExpectSameCounters(s, h);
    }
    EXPECT_TRUE(m.Switched(10.0));
  }
}

// Counters never go down and seq grows by one per report, whatever the load does, except across
// the one reset of `restart`.
TEST(MediaModelTest, CountersAreMonotonicAndSeqConsecutiveExceptAcrossARestart) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> users(0, 700);
  std::uniform_real_distribution<double> step(0.05, 2.0);
  for (Behavior b : kAll) {
    MediaModel m = Model(b, 20.0, Params(500, 100, 3));
    proto::Stats prev;
    bool first = true;
    int resets = 0;
    double t = 0;
    for (int i = 0; i < 200; ++i) {
      t += step(rng);
      bool reset = false;
      if (m.RestartDue(t)) {
        m.Restart(t);
        reset = true;
        ++resets;
      }
      const proto::Stats s = m.NextStats(t, users(rng));
      EXPECT_GE(s.cpu, 0.0);
      EXPECT_LE(s.cpu, 1.0);
      EXPECT_LE(s.media_peers, s.peers);
      EXPECT_EQ(s.bytes_in, s.packets_in * 1000);
      EXPECT_EQ(s.bytes_out, s.packets_out * 1000);
      if (reset) {
        EXPECT_EQ(s.seq, 0u) << BehaviorName(b);
      } else if (!first) {
        EXPECT_EQ(s.seq, prev.seq + 1) << BehaviorName(b) << " step " << i;
        EXPECT_GE(s.packets_in, prev.packets_in) << BehaviorName(b) << " step " << i;
        EXPECT_GE(s.packets_out, prev.packets_out) << BehaviorName(b) << " step " << i;
        EXPECT_GE(s.bytes_in, prev.bytes_in);
        EXPECT_GE(s.bytes_out, prev.bytes_out);
      }
      first = false;
      prev = s;
    }
    EXPECT_EQ(resets, b == Behavior::kRestart ? 1 : 0) << BehaviorName(b);
  }
}

}  // namespace
}  // namespace vrouter::bench::sim
