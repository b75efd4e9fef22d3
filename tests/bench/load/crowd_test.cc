#include "bench/load/crowd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace vrouter::bench::load {
namespace {

TEST(CrowdTest, NamesAndSpaces) {
  CrowdShape shape{.users_total = 1000, .space_size = 50};
  EXPECT_EQ(UserName(7), "u7");
  EXPECT_EQ(SpaceName(0, shape), "s0");
  EXPECT_EQ(SpaceName(49, shape), "s0");
  EXPECT_EQ(SpaceName(50, shape), "s1");
}

TEST(CrowdTest, PositionsStayOnTheMapAndMoveSmoothly) {
  CrowdShape shape{.users_total = 500};
  for (std::uint64_t u = 0; u < 500; ++u) {
    Point last = PositionAt(u, 0, shape);
    for (double t = 0.5; t < 120; t += 0.5) {
      const Point p = PositionAt(u, t, shape);
      EXPECT_GE(p.x, 0);
      EXPECT_LE(p.x, shape.map_size);
      EXPECT_GE(p.y, 0);
      EXPECT_LE(p.y, shape.map_size);
      // Walking, not teleporting: at most ~60 units per half second.
      EXPECT_LT(std::hypot(p.x - last.x, p.y - last.y), 60) << u << " at " << t;
      last = p;
    }
  }
}

TEST(CrowdTest, EveryProcessAgreesOnPositions) {
  CrowdShape shape{.users_total = 100};
  const Point a = PositionAt(42, 17.25, shape);
  const Point b = PositionAt(42, 17.25, shape);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.y, b.y);
  EXPECT_NE(PositionAt(43, 17.25, shape).x, a.x);
}

TEST(CrowdTest, NeighboursAreInTheSameSpaceNearestFirstAndBounded) {
  CrowdShape shape{.users_total = 230, .space_size = 50, .near = 400, .max_neighbours = 12};
  for (std::uint64_t u : {0ULL, 49ULL, 50ULL, 229ULL}) {
    const auto near = Neighbours(u, 30, shape);
    EXPECT_LE(near.size(), 12u);
    const Point me = PositionAt(u, 30, shape);
    double last = 0;
    for (std::uint64_t n : near) {
      EXPECT_NE(n, u);
      EXPECT_EQ(n / 50, u / 50) << "same space";
      EXPECT_LT(n, 230u) << "exists";
      const Point p = PositionAt(n, 30, shape);
      const double d = std::hypot(p.x - me.x, p.y - me.y);
      EXPECT_LT(d, shape.near);
      EXPECT_GE(d, last);
      last = d;
    }
  }
  // The last space holds users 200..229 only.
  CrowdShape tiny{.users_total = 201, .space_size = 50, .near = 5000};
  EXPECT_TRUE(Neighbours(200, 0, tiny).empty());
}

TEST(CrowdTest, SomeoneIsNearSomeoneInAFullSpace) {
  CrowdShape shape{.users_total = 50};
  std::size_t with_neighbours = 0;
  for (std::uint64_t u = 0; u < 50; ++u) with_neighbours += !Neighbours(u, 10, shape).empty();
  EXPECT_GT(with_neighbours, 10u);
}

TEST(CrowdTest, FullJitterBackoffGrowsAndIsCapped) {
  using std::chrono::milliseconds;
  const milliseconds base{100};
  const milliseconds cap{5000};
  EXPECT_EQ(FullJitterBackoff(0, 0.0, base, cap), milliseconds(0));
  EXPECT_EQ(FullJitterBackoff(0, 0.5, base, cap), milliseconds(50));
  EXPECT_EQ(FullJitterBackoff(3, 0.5, base, cap), milliseconds(400));
  EXPECT_EQ(FullJitterBackoff(30, 0.999, base, cap), milliseconds(4995));
  EXPECT_EQ(FullJitterBackoff(1000, 2.0, base, cap), cap);
  EXPECT_EQ(FullJitterBackoff(-5, NAN, base, cap), milliseconds(0));
}

TEST(CrowdTest, ProcessesSplitTheUsersWithoutOverlap) {
  std::set<std::uint64_t> all;
  for (std::uint32_t p = 0; p < 3; ++p) {
    for (auto u : UsersOfProcess(10, p, 3)) EXPECT_TRUE(all.insert(u).second);
  }
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(UsersOfProcess(10, 1, 3), (std::vector<std::uint64_t>{1, 4, 7}));
  EXPECT_TRUE(UsersOfProcess(10, 3, 3).empty());
  EXPECT_TRUE(UsersOfProcess(10, 0, 0).empty());
}

}  // namespace
}  // namespace vrouter::bench::load
