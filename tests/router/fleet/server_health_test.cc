#include "router/fleet/server_health.h"

#include <gtest/gtest.h>

#include <chrono>

namespace vrouter::fleet {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

base::SteadyTime At(milliseconds t) { return base::SteadyTime{} + t; }
base::SteadyTime AtS(int s) { return base::SteadyTime{} + seconds(s); }

proto::Stats Report(std::uint64_t seq, std::uint64_t packets_in, std::uint64_t packets_out,
                    std::uint64_t bytes_in = 0, std::uint64_t bytes_out = 0) {
  proto::Stats s;
  s.seq = seq;
  s.packets_in = packets_in;
  s.packets_out = packets_out;
  s.bytes_in = bytes_in;
  s.bytes_out = bytes_out;
  return s;
}

StatsRates Rates(double packets_in, double packets_out, double bytes_in = 0, double bytes_out = 0) {
  StatsRates r;
  r.seconds = 1;
  r.packets_in = packets_in;
  r.packets_out = packets_out;
  r.bytes_in = bytes_in;
  r.bytes_out = bytes_out;
  return r;
}

// ---- CounterTracker ----

constexpr milliseconds kInterval{1000};  // the report interval the servers were given

TEST(CounterTrackerTest, FirstReportIsABaselineWithoutRates) {
  CounterTracker t;
  EXPECT_FALSE(t.last().has_value());
  const auto r = t.Ingest(Report(0, 100, 100), AtS(10), kInterval);
  EXPECT_EQ(r.verdict, StatsVerdict::kBaseline);
  EXPECT_FALSE(r.rates.has_value());
  ASSERT_TRUE(t.last().has_value());
  EXPECT_EQ(t.last()->packets_in, 100u);
}

TEST(CounterTrackerTest, RatesAreDeltasOverTheRouterClock) {
  CounterTracker t;
  t.Ingest(Report(0, 1000, 2000, 10000, 20000), AtS(10), kInterval);
  const auto r = t.Ingest(Report(1, 1300, 2600, 13000, 26000), AtS(11), kInterval);
  EXPECT_EQ(r.verdict, StatsVerdict::kAccepted);
  ASSERT_TRUE(r.rates.has_value());
  EXPECT_DOUBLE_EQ(r.rates->seconds, 1.0);
  EXPECT_DOUBLE_EQ(r.rates->packets_in, 300);
  EXPECT_DOUBLE_EQ(r.rates->packets_out, 600);
  EXPECT_DOUBLE_EQ(r.rates->bytes_in, 3000);
  EXPECT_DOUBLE_EQ(r.rates->bytes_out, 6000);
}

TEST(CounterTrackerTest, RatesUseTheRouterIntervalNotTheReportCount) {
  // The same deltas arriving 4 s apart (a slow or skewed server): a quarter of the rate.
  CounterTracker t;
  t.Ingest(Report(0, 0, 0), AtS(10), kInterval);
  const auto r = t.Ingest(Report(1, 400, 800), AtS(14), kInterval);
  ASSERT_EQ(r.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(r.rates->seconds, 4.0);
  EXPECT_DOUBLE_EQ(r.rates->packets_in, 100);
  EXPECT_DOUBLE_EQ(r.rates->packets_out, 200);
  // A server on a 250 ms interval: 250 ms for 50 packets is 200/s.
  const auto fast = t.Ingest(Report(2, 450, 800), At(milliseconds(14250)), milliseconds(250));
  ASSERT_EQ(fast.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(fast.rates->seconds, 0.25);
  EXPECT_DOUBLE_EQ(fast.rates->packets_in, 200);
  EXPECT_DOUBLE_EQ(fast.rates->packets_out, 0);
}

// Issue 22, case 5: one report 950 ms late, then the next one on time (50 ms after it). The
// counters of the second cover one interval of the server's time, not 50 ms: without the floor
// from the sequence numbers, a 100-packets/s server read as 2,000/s for a whole interval.
TEST(CounterTrackerTest, ALateReportDoesNotMakeTheNextOneLookTwentyTimesBusier) {
  CounterTracker t;
  t.Ingest(Report(0, 0, 0), AtS(10), kInterval);
  const auto late = t.Ingest(Report(1, 100, 100), At(milliseconds(11950)), kInterval);
  ASSERT_EQ(late.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(late.rates->seconds, 1.95);  // arrival gap: under-reads, never over-reads
  const auto next = t.Ingest(Report(2, 200, 200), At(milliseconds(12000)), kInterval);
  ASSERT_EQ(next.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(next.rates->seconds, 1.0);
  EXPECT_DOUBLE_EQ(next.rates->packets_in, 100);
  // Reports bunched by a stall on the router's side: a gap of two sequence numbers spans two
  // intervals whatever the arrival times.
  const auto bunched = t.Ingest(Report(4, 400, 400), At(milliseconds(12001)), kInterval);
  ASSERT_EQ(bunched.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(bunched.rates->seconds, 2.0);
  EXPECT_DOUBLE_EQ(bunched.rates->packets_in, 100);
}

TEST(CounterTrackerTest, UnchangedCountersGiveZeroRates) {
  CounterTracker t;
  t.Ingest(Report(0, 50, 50, 500, 500), AtS(1), kInterval);
  const auto r = t.Ingest(Report(1, 50, 50, 500, 500), AtS(2), kInterval);
  ASSERT_EQ(r.verdict, StatsVerdict::kAccepted);
  EXPECT_EQ(r.rates->packets_in, 0);
  EXPECT_EQ(r.rates->packets_out, 0);
  EXPECT_EQ(r.rates->bytes_in, 0);
  EXPECT_EQ(r.rates->bytes_out, 0);
}

TEST(CounterTrackerTest, SeqNotAboveTheLastAcceptedIsReorderedAndIgnored) {
  CounterTracker t;
  t.Ingest(Report(5, 100, 100), AtS(1), kInterval);
  // Equal seq: a duplicate.
  auto r = t.Ingest(Report(5, 900, 900), AtS(2), kInterval);
  EXPECT_EQ(r.verdict, StatsVerdict::kReordered);
  EXPECT_FALSE(r.rates.has_value());
  // Lower seq: late.
  r = t.Ingest(Report(4, 50, 50), AtS(2), kInterval);
  EXPECT_EQ(r.verdict, StatsVerdict::kReordered);
  // Neither touched the baseline: the next report's rates are against seq 5 at t=1.
  EXPECT_EQ(t.last()->seq, 5u);
  EXPECT_EQ(t.last()->packets_in, 100u);
  r = t.Ingest(Report(6, 300, 500), AtS(3), kInterval);
  ASSERT_EQ(r.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(r.rates->seconds, 2);
  EXPECT_DOUBLE_EQ(r.rates->packets_in, 100);
  EXPECT_DOUBLE_EQ(r.rates->packets_out, 200);
}

TEST(CounterTrackerTest, ReorderedReportWithLowerCountersIsNotAReset) {
  CounterTracker t;
  t.Ingest(Report(1, 100, 100), AtS(1), kInterval);
  t.Ingest(Report(2, 200, 200), AtS(2), kInterval);
  // seq 1 arriving late has lower counters: that is reordering, not a restart.
  EXPECT_EQ(t.Ingest(Report(1, 100, 100), AtS(3), kInterval).verdict, StatsVerdict::kReordered);
}

TEST(CounterTrackerTest, SeqGapsAreAccepted) {
  CounterTracker t;
  t.Ingest(Report(1, 0, 0), AtS(1), kInterval);
  // Reports 2..9 lost: still a valid, later report.
  const auto r = t.Ingest(Report(10, 900, 900), AtS(10), kInterval);
  ASSERT_EQ(r.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(r.rates->packets_in, 100);
}

TEST(CounterTrackerTest, AnyCounterGoingDownIsAResetAndANewBaseline) {
  struct Case {
    const char* name;
    proto::Stats next;
  };
  const Case cases[] = {
      {"packets_in", Report(2, 99, 200, 1000, 2000)},
      {"packets_out", Report(2, 200, 199, 1000, 2000)},
      {"bytes_in", Report(2, 200, 400, 999, 2000)},
      {"bytes_out", Report(2, 200, 400, 2000, 1999)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    CounterTracker t;
    t.Ingest(Report(1, 100, 200, 1000, 2000), AtS(1), kInterval);
    const auto r = t.Ingest(c.next, AtS(2), kInterval);
    EXPECT_EQ(r.verdict, StatsVerdict::kReset);
    EXPECT_FALSE(r.rates.has_value());
    // The reset report is the new baseline.
    EXPECT_EQ(t.last()->seq, 2u);
    proto::Stats after = c.next;
    after.seq = 3;
    after.packets_in += 100;
    const auto next = t.Ingest(after, AtS(3), kInterval);
    ASSERT_EQ(next.verdict, StatsVerdict::kAccepted);
    EXPECT_DOUBLE_EQ(next.rates->packets_in, 100);
    EXPECT_DOUBLE_EQ(next.rates->seconds, 1);
  }
}

TEST(CounterTrackerTest, NewRegistrationAllowsTheSeqToRestart) {
  CounterTracker t;
  t.Ingest(Report(100, 1000, 1000), AtS(1), kInterval);
  // Without a new registration, seq 0 is a late report.
  EXPECT_EQ(t.Ingest(Report(0, 5000, 5000), AtS(2), kInterval).verdict, StatsVerdict::kReordered);
  // A reconnect without a restart: seq restarts, counters keep growing; rates continue.
  t.NewRegistration();
  auto r = t.Ingest(Report(0, 1500, 1600), AtS(3), kInterval);
  ASSERT_EQ(r.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(r.rates->seconds, 2);
  EXPECT_DOUBLE_EQ(r.rates->packets_in, 250);
  EXPECT_DOUBLE_EQ(r.rates->packets_out, 300);
  // Within the new registration, ordering applies again.
  EXPECT_EQ(t.Ingest(Report(0, 1600, 1600), AtS(4), kInterval).verdict, StatsVerdict::kReordered);
  // A reconnect with a restart: the counters went down.
  t.NewRegistration();
  r = t.Ingest(Report(0, 10, 10), AtS(5), kInterval);
  EXPECT_EQ(r.verdict, StatsVerdict::kReset);
  EXPECT_FALSE(r.rates.has_value());
}

// Two reports handed over at the same instant (a stall on the router's side) still span the
// interval their sequence numbers say: the rate is the server's, not infinite.
TEST(CounterTrackerTest, TwoReportsAtTheSameInstantSpanTheirInterval) {
  CounterTracker t;
  t.Ingest(Report(1, 0, 0), AtS(1), kInterval);
  const auto r = t.Ingest(Report(2, 100, 100), AtS(1), kInterval);
  ASSERT_EQ(r.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(r.rates->seconds, 1.0);
  EXPECT_DOUBLE_EQ(r.rates->packets_in, 100);
  // Without an interval to go by (none announced), the same instant gives no rate.
  CounterTracker u;
  u.Ingest(Report(1, 0, 0), AtS(1), milliseconds(0));
  const auto none = u.Ingest(Report(2, 100, 100), AtS(1), milliseconds(0));
  EXPECT_EQ(none.verdict, StatsVerdict::kBaseline);
  EXPECT_FALSE(none.rates.has_value());
  // The second one is the baseline for the next.
  const auto next = u.Ingest(Report(3, 300, 300), AtS(2), milliseconds(0));
  ASSERT_EQ(next.verdict, StatsVerdict::kAccepted);
  EXPECT_DOUBLE_EQ(next.rates->packets_in, 200);
}

TEST(CounterTrackerTest, VerdictNames) {
  EXPECT_EQ(StatsVerdictName(StatsVerdict::kAccepted), "accepted");
  EXPECT_EQ(StatsVerdictName(StatsVerdict::kBaseline), "baseline");
  EXPECT_EQ(StatsVerdictName(StatsVerdict::kReset), "reset");
  EXPECT_EQ(StatsVerdictName(StatsVerdict::kReordered), "reordered");
  EXPECT_EQ(kStatsVerdictCount, 4);
}

// ---- JudgeForwarding ----

TEST(JudgeForwardingTest, DefaultsAreDocumented) {
  const ForwardingParams p;
  EXPECT_EQ(p.min_packets_in_rate, 200);
  EXPECT_EQ(p.min_out_in_ratio, 0.1);
}

TEST(JudgeForwardingTest, MediaInAndOutIsOk) {
  const ForwardingParams p;
  EXPECT_EQ(JudgeForwarding(Rates(1000, 3000, 1e6, 3e6), 10, {}, p), Forwarding::kOk);
  EXPECT_EQ(JudgeForwarding(Rates(1000, 3000), 0, {}, p), Forwarding::kOk);
}

TEST(JudgeForwardingTest, BelowMinPacketsInIsIdleWhateverGoesOut) {
  const ForwardingParams p;
  EXPECT_EQ(JudgeForwarding(Rates(199.999, 0, 1e5, 0), 5, {}, p), Forwarding::kIdle);
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 0, 100), 5, {}, p), Forwarding::kIdle);  // RTCP only
  EXPECT_EQ(JudgeForwarding(Rates(150, 1000), 5, {}, p), Forwarding::kIdle);
}

TEST(JudgeForwardingTest, ExactlyMinPacketsInIsJudged) {
  const ForwardingParams p;
  EXPECT_EQ(JudgeForwarding(Rates(200, 0, 1e5, 0), 5, {}, p), Forwarding::kNotForwarding);
  EXPECT_EQ(JudgeForwarding(Rates(200, 200), 5, {}, p), Forwarding::kOk);
}

TEST(JudgeForwardingTest, RatioExactlyAtTheMinimumIsOkJustUnderIsNotForwarding) {
  const ForwardingParams p;
  const double in = 1000;
  const double boundary = p.min_out_in_ratio * in;  // 100 packets/s out
  EXPECT_EQ(boundary, 100);
  EXPECT_EQ(JudgeForwarding(Rates(in, boundary), 3, {}, p), Forwarding::kOk);
  EXPECT_EQ(JudgeForwarding(Rates(in, 99.99), 3, {}, p), Forwarding::kNotForwarding);
  EXPECT_EQ(JudgeForwarding(Rates(in, 0, 1e6, 0), 3, {}, p), Forwarding::kNotForwarding);
}

TEST(JudgeForwardingTest, NotForwardingDoesNotDependOnPeers) {
  const ForwardingParams p;
  EXPECT_EQ(JudgeForwarding(Rates(5000, 0), 0, {}, p), Forwarding::kNotForwarding);
  EXPECT_EQ(JudgeForwarding(Rates(5000, 0), 100, {}, p), Forwarding::kNotForwarding);
}

TEST(JudgeForwardingTest, EveryCounterStillWithPeersIsFrozen) {
  const ForwardingParams p;
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 0, 0), 1, {}, p), Forwarding::kFrozen);
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 0, 0), 50, {}, p), Forwarding::kFrozen);
  // Nobody there: a still server is just idle.
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 0, 0), 0, {}, p), Forwarding::kIdle);
  // Any one counter moving (even only bytes: RTCP) is not frozen.
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 1, 0), 1, {}, p), Forwarding::kIdle);
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 0, 1), 1, {}, p), Forwarding::kIdle);
  EXPECT_EQ(JudgeForwarding(Rates(0, 1, 0, 0), 1, {}, p), Forwarding::kIdle);
  EXPECT_EQ(JudgeForwarding(Rates(1, 0, 0, 0), 1, {}, p), Forwarding::kIdle);
}

TEST(JudgeForwardingTest, FrozenIsCheckedBeforeTheIdleThreshold) {
  ForwardingParams p;
  p.min_packets_in_rate = 0;  // judge everything
  EXPECT_EQ(JudgeForwarding(Rates(0, 0, 0, 0), 2, {}, p), Forwarding::kFrozen);
}

TEST(JudgeForwardingTest, ParamsAreHonoured) {
  ForwardingParams p;
  p.min_packets_in_rate = 1000;
  p.min_out_in_ratio = 0.5;
  EXPECT_EQ(JudgeForwarding(Rates(999, 0), 1, {}, p), Forwarding::kIdle);
  EXPECT_EQ(JudgeForwarding(Rates(1000, 499), 1, {}, p), Forwarding::kNotForwarding);
  EXPECT_EQ(JudgeForwarding(Rates(1000, 500), 1, {}, p), Forwarding::kOk);
}

TEST(JudgeForwardingTest, ForwardingNames) {
  EXPECT_EQ(ForwardingName(Forwarding::kUnknown), "unknown");
  EXPECT_EQ(ForwardingName(Forwarding::kIdle), "idle");
  EXPECT_EQ(ForwardingName(Forwarding::kOk), "ok");
  EXPECT_EQ(ForwardingName(Forwarding::kNotForwarding), "not_forwarding");
  EXPECT_EQ(ForwardingName(Forwarding::kFrozen), "frozen");
}

// Issue 22, case 3: people alone in their rooms send media and nobody subscribes. With the
// streams the server reports, that is nothing to forward, not a black hole.
TEST(JudgeForwardingTest, NothingToForwardIsIdleNotABlackHole) {
  const ForwardingParams p;
  const auto alone = Rates(800, 0);  // eight people alone: media in, none out
  EXPECT_EQ(JudgeForwarding(alone, 8, {}, p), Forwarding::kNotForwarding);  // old servers
  EXPECT_EQ(JudgeForwarding(alone, 8, {8, 0}, p), Forwarding::kIdle);
  EXPECT_EQ(JudgeForwarding(alone, 8, {std::nullopt, 0}, p), Forwarding::kIdle);
  // Streams out but nothing leaving: the black hole, streams or not.
  EXPECT_EQ(JudgeForwarding(alone, 8, {8, 8}, p), Forwarding::kNotForwarding);
}

TEST(JudgeForwardingTest, PacketsOutAreJudgedAgainstWhatShouldLeave) {
  const ForwardingParams p;
  // 40 people, 38 alone and one room of two: 40 streams in, 2 out. Healthy, it sends about
  // 1/20 of what comes in: a plain out/in ratio (0.05 < 0.1) would call that a black hole.
  EXPECT_EQ(JudgeForwarding(Rates(4000, 200), 40, {}, p), Forwarding::kNotForwarding);
  EXPECT_EQ(JudgeForwarding(Rates(4000, 200), 40, {40, 2}, p), Forwarding::kOk);
  // The same server forwarding a tenth of that is not.
  EXPECT_EQ(JudgeForwarding(Rates(4000, 19), 40, {40, 2}, p), Forwarding::kNotForwarding);
  // Frozen counters with peers are frozen whatever the streams say.
  EXPECT_EQ(JudgeForwarding(Rates(0, 0), 5, {5, 0}, p), Forwarding::kFrozen);
}

}  // namespace
}  // namespace vrouter::fleet
