// The indexed choice (scores kept per event, eligible servers indexed per tier) against the full
// scan it replaced: two models fed the same events, with the same seed, must make the same choice
// every time, down to the candidate count and the loser of the two choices.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "router/fleet/eligible_set.h"
#include "router/fleet/fleet_model.h"

namespace vrouter::fleet {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(EligibleSetTest, CountsAndFindsTheKthMemberInPositionOrder) {
  EligibleSet set;
  set.Reset(10);
  EXPECT_EQ(set.size(), 0u);
  for (std::size_t p : {7u, 2u, 9u, 0u}) set.Set(p, true);
  set.Set(2, true);  // already in
  EXPECT_EQ(set.size(), 4u);
  EXPECT_EQ(set.Nth(0), 0u);
  EXPECT_EQ(set.Nth(1), 2u);
  EXPECT_EQ(set.Nth(2), 7u);
  EXPECT_EQ(set.Nth(3), 9u);
  set.Set(2, false);
  set.Set(5, false);  // not in
  EXPECT_EQ(set.size(), 3u);
  EXPECT_EQ(set.Nth(1), 7u);
  EXPECT_TRUE(set.contains(9));
  EXPECT_FALSE(set.contains(2));
  set.Set(10, true);  // out of range: ignored
  EXPECT_EQ(set.size(), 3u);
}

TEST(EligibleSetTest, AgreesWithAListAtEverySize) {
  std::mt19937_64 rng(3);
  for (std::size_t n : {1u, 2u, 3u, 31u, 32u, 33u, 1000u}) {
    EligibleSet set;
    set.Reset(n);
    std::vector<bool> in(n, false);
    for (int step = 0; step < 2000; ++step) {
      const std::size_t p = rng() % n;
      in[p] = rng() % 2 == 0;
      set.Set(p, in[p]);
      std::vector<std::size_t> members;
      for (std::size_t i = 0; i < n; ++i) {
        if (in[i]) members.push_back(i);
      }
      ASSERT_EQ(set.size(), members.size());
      if (!members.empty()) {
        const std::size_t k = rng() % members.size();
        ASSERT_EQ(set.Nth(k), members[k]) << "n=" << n << " k=" << k;
      }
    }
  }
}

// Two models, one per method, driven by the same random events.
class Twins {
 public:
  explicit Twins(std::uint64_t seed)
      : indexed_(Params(), seed, ChoiceMethod::kIndexed),
        scanned_(Params(), seed, ChoiceMethod::kFullScan),
        rng_(seed * 7919 + 1) {}

  static FleetParams Params() {
    FleetParams p;
    p.scoring.region_group = {{"eu-west", "eu"}, {"eu-central", "eu"}, {"us-east", "us"}};
    p.scoring.max_new_users_per_interval = 20;  // caps are reached, and lifted as time passes
    p.scoring.slow_start_window = seconds(20);
    return p;
  }

  template <typename F>
  void Both(F f) {
    f(indexed_);
    f(scanned_);
  }

  void AddServer() {
    static const char* kRegions[] = {"eu-west", "eu-central", "us-east", "ap-south", ""};
    const std::string id = "s" + std::to_string(servers_.size());
    const VideoServer s{id, "wss://" + id + ".example/", kRegions[rng_() % 5],
                        static_cast<std::uint32_t>(20 + rng_() % 200), true};
    servers_.push_back({id, {}, Media::kGood});
    Both([&](FleetModel& m) { m.Register(s, now_); });
  }

  void Report(std::size_t i) {
    Server& s = servers_[i];
    ++s.stats.seq;
    const std::uint64_t users = static_cast<std::uint64_t>(rng_() % 60);
    s.stats.peers = static_cast<std::uint32_t>(users);
    s.stats.cpu = static_cast<double>(rng_() % 100) / 100.0;
    s.stats.packets_in += users * 100;
    s.stats.packets_out += s.media == Media::kGood ? users * 300 : 0;
    s.stats.bytes_in = s.stats.packets_in * 1000;
    s.stats.bytes_out = s.stats.packets_out * 1000;
    Both([&](FleetModel& m) { m.OnStats(s.id, s.stats, now_); });
  }

  void RandomEvent() {
    const std::size_t i = rng_() % servers_.size();
    const std::string& id = servers_[i].id;
    switch (rng_() % 19) {
      case 0:
        if (servers_.size() < 60) AddServer();
        break;
      case 1:
        servers_[i].media = servers_[i].media == Media::kGood ? Media::kBad : Media::kGood;
        break;
      case 2: {
        const auto users = static_cast<std::int64_t>(rng_() % 80);
        Both([&](FleetModel& m) { m.SetOwn(id, users); });
        break;
      }
      case 3: {
        const std::string user = "u" + std::to_string(rng_() % 40);
        Both([&](FleetModel& m) { m.OnFailureReport(id, user, user, now_); });
        break;
      }
      case 4:
        Both([&](FleetModel& m) { m.Drain(id, now_); });
        break;
      case 5:
        Both([&](FleetModel& m) { m.Undrain(id, now_); });
        break;
      case 6: {  // a restart: counters from zero
        servers_[i].stats = proto::Stats{};
        const VideoServer info = *FindInfo(id);
        Both([&](FleetModel& m) { m.Register(info, now_); });
        break;
      }
      case 7:
        Both([&](FleetModel& m) { m.SetOwn("not-yet-" + id, 5); });
        break;
      case 8: {  // shared admission: the fleet-wide budget says how many it admitted
        const auto count = static_cast<std::uint32_t>(rng_() % 30);
        Both([&](FleetModel& m) { m.Admitted(id, count); });
        break;
      }
      case 9: {  // ... or that it is spent for a while
        const base::SteadyTime until = now_ + milliseconds(rng_() % 1500);
        Both([&](FleetModel& m) { m.AdmissionRefused(id, until, now_); });
        break;
      }
      case 10: {  // the budget unreachable (a share of the cap each), or reachable again
        const auto share = static_cast<std::uint32_t>(rng_() % 3 == 0 ? 1 + rng_() % 5 : 1);
        Both([&](FleetModel& m) { m.SetAdmissionShare(share); });
        break;
      }
      default:
        Report(i);
        break;
    }
  }

  const VideoServer* FindInfo(const std::string& id) {
    for (const auto& s : indexed_.Directory()) {
      if (s.id == id) {
        info_ = s;
        return &info_;
      }
    }
    return nullptr;
  }

  // One choice in both models; returns false (with a message) when they differ.
  ::testing::AssertionResult Choose() {
    static const char* kRegions[] = {"eu-west", "eu-central", "us-east", "ap-south", "", "mars"};
    const std::string region = kRegions[rng_() % 6];
    LoadMap space;
    const std::size_t members = rng_() % 4;
    for (std::size_t k = 0; k < members; ++k) {
      space[servers_[rng_() % servers_.size()].id] = static_cast<std::int64_t>(1 + rng_() % 3);
    }
    const PickRequest request{region, members > 0 ? &space : nullptr};
    const Pick a = indexed_.Choose(request, now_);
    const Pick b = scanned_.Choose(request, now_);
    ++choices_;
    if (!a.server.empty()) ++placed_;
    if (a.server == b.server && a.interval_cap == b.interval_cap &&
        a.detail.index == b.detail.index && a.detail.tier == b.detail.tier &&
        a.detail.affinity == b.detail.affinity && a.detail.candidates == b.detail.candidates &&
        a.detail.sampled_other == b.detail.sampled_other) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "choice " << choices_ << " region '" << region << "': indexed " << a.server << " ("
           << a.detail.candidates << " candidates, tier " << PickTierName(a.detail.tier)
           << ", affinity " << a.detail.affinity << ", other " << a.detail.sampled_other
           << "), full scan " << b.server << " (" << b.detail.candidates << " candidates, tier "
           << PickTierName(b.detail.tier) << ", affinity " << b.detail.affinity << ", other "
           << b.detail.sampled_other << ")";
  }

  // Every other server swallows media from now on (bad = true), or every server forwards again.
  void Wave(bool bad) {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      servers_[i].media = bad && i % 2 == 0 ? Media::kBad : Media::kGood;
    }
  }
  void ReportAll() {
    for (std::size_t i = 0; i < servers_.size(); ++i) Report(i);
  }

  void Pass(milliseconds d) { now_ += d; }
  void Tick() {
    Both([&](FleetModel& m) { m.Tick(now_); });
  }
  std::mt19937_64& rng() { return rng_; }
  int placed() const { return placed_; }
  int choices() const { return choices_; }
  bool panicked() const { return indexed_.panic(); }

 private:
  enum class Media { kGood, kBad };
  struct Server {
    std::string id;
    proto::Stats stats;
    Media media;
  };
  FleetModel indexed_, scanned_;
  std::mt19937_64 rng_;
  base::SteadyTime now_ = base::SteadyTime{} + seconds(1000);
  std::vector<Server> servers_;
  VideoServer info_;
  int choices_ = 0, placed_ = 0;
};

TEST(ChoiceMethodTest, IndexedChoicesAreTheFullScansChoices) {
  bool saw_panic = false;
  int placed = 0, choices = 0;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    Twins t(seed);
    for (int i = 0; i < 8; ++i) t.AddServer();
    for (int second = 0; second < 90; ++second) {
      // A fleet-wide fault for a while: more servers look bad than may be ejected (panic).
      if (second == 40) t.Wave(true);
      if (second == 55) t.Wave(false);
      if (second % 5 == 0) t.ReportAll();
      // A burst of choices with events between them, within one report interval.
      const int steps = static_cast<int>(t.rng()() % 40);
      for (int k = 0; k < steps; ++k) {
        if (t.rng()() % 3 == 0) t.RandomEvent();
        ASSERT_TRUE(t.Choose()) << "seed " << seed << ", second " << second;
        t.Pass(milliseconds(t.rng()() % 60));
      }
      t.Pass(milliseconds(200 + t.rng()() % 800));
      t.Tick();
      saw_panic = saw_panic || t.panicked();
    }
    placed += t.placed();
    choices += t.choices();
  }
  // The run covered what it is meant to: most choices placed someone, some did not, and the
  // fleet went into panic at least once.
  EXPECT_GT(placed, choices / 2);
  EXPECT_LT(placed, choices);
  EXPECT_TRUE(saw_panic);
}

}  // namespace
}  // namespace vrouter::fleet
