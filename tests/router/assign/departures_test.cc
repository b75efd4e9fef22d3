#include "router/assign/departures.h"

#include <gtest/gtest.h>

namespace vrouter::assign {
namespace {

using namespace std::chrono_literals;

TEST(Departures, ARecentDepartureIsTakenOnce) {
  Departures d;
  const base::SteadyTime t{std::chrono::seconds(100)};
  d.Left("alice", "sfu-1", t);
  EXPECT_EQ(d.TakeSince("alice", t - 30s), "sfu-1");
  EXPECT_EQ(d.TakeSince("alice", t - 30s), std::nullopt);
  EXPECT_EQ(d.TakeSince("bob", t - 30s), std::nullopt);
}

TEST(Departures, AnOldDepartureIsNotAReturn) {
  Departures d;
  const base::SteadyTime t{std::chrono::seconds(100)};
  d.Left("alice", "sfu-1", t);
  EXPECT_EQ(d.TakeSince("alice", t + 1s), std::nullopt);
  EXPECT_EQ(d.size(), 0u);  // and it is gone
  d.Left("bob", "sfu-2", t);
  d.Forget(t + 1s);
  EXPECT_EQ(d.size(), 0u);
}

TEST(Departures, BoundedByCapacity) {
  Departures d(/*capacity=*/32);
  const base::SteadyTime t{std::chrono::seconds(100)};
  for (int i = 0; i < 1000; ++i)
    d.Left("user-" + std::to_string(i), "sfu", t + std::chrono::milliseconds(i));
  EXPECT_LE(d.size(), 32u + 16u);              // per shard: capacity / shards + 1
  EXPECT_EQ(d.TakeSince("user-0", t), "sfu");  // the first ones are kept, later ones are not
  EXPECT_EQ(d.TakeSince("user-999", t), std::nullopt);
  d.Forget(t + std::chrono::seconds(10));  // the window passes: room again
  d.Left("user-999", "sfu", t + std::chrono::seconds(10));
  EXPECT_EQ(d.TakeSince("user-999", t), "sfu");
}

}  // namespace
}  // namespace vrouter::assign
