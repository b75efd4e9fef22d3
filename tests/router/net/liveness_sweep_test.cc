#include "router/net/liveness_sweep.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace vrouter::net {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

// A session stand-in that counts its checks and can act in them.
struct Checked final : LivenessWatched {
  int checks = 0;
  std::vector<base::SteadyTime> at;
  std::function<void(Checked&)> on_check;
  void CheckLiveness(base::SteadyTime now) override {
    ++checks;
    at.push_back(now);
    if (on_check) on_check(*this);
  }
  void Watch(asio::io_context& io, std::chrono::nanoseconds period) { WatchLiveness(io, period); }
  void Stop() { StopLivenessChecks(); }
  bool watched() const { return liveness_watched(); }
};

TEST(LivenessSweepTest, ChecksEverySessionEachPeriodAndLetsRunReturnWhenNoneIsLeft) {
  asio::io_context io;
  Checked a;
  Checked b;
  a.Watch(io, milliseconds(20));
  b.Watch(io, milliseconds(20));
  EXPECT_EQ(WatchedForLiveness(io), 2u);
  EXPECT_EQ(LivenessPeriod(io), milliseconds(20));
  // Each stops itself at its third check: run() returns once neither is left (no timer armed).
  a.on_check = b.on_check = [](Checked& c) {
    if (c.checks == 3) c.Stop();
  };
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_EQ(a.checks, 3);
  EXPECT_EQ(b.checks, 3);
  EXPECT_FALSE(a.watched());
  EXPECT_EQ(WatchedForLiveness(io), 0u);
  // Three periods passed, checked one period apart (not all at once).
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(60));
  EXPECT_GE(a.at[1] - a.at[0], milliseconds(20));
  EXPECT_GE(a.at[2] - a.at[1], milliseconds(20));
}

TEST(LivenessSweepTest, ASessionLeavingInItsCheckDoesNotCutTheSweepShort) {
  asio::io_context io;
  std::vector<std::unique_ptr<Checked>> sessions;
  for (int i = 0; i < 5; ++i) {
    sessions.push_back(std::make_unique<Checked>());
    sessions.back()->Watch(io, milliseconds(5));
  }
  // Every other one is destroyed in its first check (its destructor stops the checks); the
  // others stop at their second.
  for (std::size_t i = 0; i < sessions.size(); ++i) {
    sessions[i]->on_check = [&sessions, i](Checked& c) {
      if (i % 2 == 0) {
        sessions[i].reset();  // `c` is gone from here on
        return;
      }
      if (c.checks == 2) c.Stop();
    };
  }
  io.run();
  for (std::size_t i = 0; i < sessions.size(); ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(sessions[i], nullptr);
    } else {
      EXPECT_EQ(sessions[i]->checks, 2) << i;
    }
  }
  EXPECT_EQ(WatchedForLiveness(io), 0u);
}

TEST(LivenessSweepTest, TheShortestPeriodWinsWithinBounds) {
  asio::io_context io;
  Checked slow;
  slow.Watch(io, std::chrono::hours(1));
  EXPECT_EQ(LivenessPeriod(io), std::chrono::seconds(1));  // at most 1 s
  Checked fast;
  fast.Watch(io, std::chrono::microseconds(10));
  EXPECT_EQ(LivenessPeriod(io), milliseconds(1));  // at least 1 ms
  // The timer armed for 1 s was re-armed for 1 ms: the first checks come at once.
  fast.on_check = [&](Checked& c) {
    c.Stop();
    slow.Stop();
  };
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(500));
  EXPECT_EQ(fast.checks, 1);
  // `slow` came next in that sweep: stopped before its turn, it was not checked.
  EXPECT_EQ(slow.checks, 0);
  // Watching again is harmless; stopping twice too.
  fast.Watch(io, milliseconds(1));
  fast.Watch(io, milliseconds(1));
  EXPECT_EQ(WatchedForLiveness(io), 1u);
  fast.Stop();
  fast.Stop();
  EXPECT_EQ(WatchedForLiveness(io), 0u);
}

TEST(LivenessSweepTest, SessionsOutlivingTheirIoContextLeaveNothingBehind) {
  // Destroyed after the io_context (ASan would see a use after free): the sweep let go of them
  // when it shut down.
  auto a = std::make_unique<Checked>();
  auto b = std::make_unique<Checked>();
  {
    asio::io_context io;
    a->Watch(io, milliseconds(10));
    b->Watch(io, milliseconds(10));
  }
  EXPECT_FALSE(a->watched());
  EXPECT_FALSE(b->watched());
  a.reset();
  b.reset();
}

}  // namespace
}  // namespace vrouter::net
