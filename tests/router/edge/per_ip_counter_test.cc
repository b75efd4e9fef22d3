#include "router/edge/per_ip_counter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tests/support/addresses.h"

namespace vrouter::edge {
namespace {

using vrouter::testing::Ip;

TEST(PerIpCounterTest, LimitsEachAddressSeparately) {
  PerIpCounter c;
  EXPECT_TRUE(c.TryAcquire(Ip("192.0.2.1"), 2));
  EXPECT_TRUE(c.TryAcquire(Ip("192.0.2.1"), 2));
  EXPECT_FALSE(c.TryAcquire(Ip("192.0.2.1"), 2));
  EXPECT_TRUE(c.TryAcquire(Ip("192.0.2.2"), 2));
  // A dual-stack listener sees IPv4 clients as mapped IPv6: the same client.
  EXPECT_FALSE(c.TryAcquire(Ip("::ffff:192.0.2.1"), 2));
  c.Release(Ip("192.0.2.1"));
  EXPECT_EQ(c.Count(Ip("192.0.2.1")), 1u);
  EXPECT_TRUE(c.TryAcquire(Ip("192.0.2.1"), 2));
}

TEST(PerIpCounterTest, EntriesGoWithTheLastConnection) {
  PerIpCounter c;
  EXPECT_FALSE(c.TryAcquire(Ip("2001:db8::1"), 0));
  EXPECT_EQ(c.Count(Ip("2001:db8::1")), 0u);
  EXPECT_TRUE(c.TryAcquire(Ip("2001:db8::1"), 1));
  c.Release(Ip("2001:db8::1"));
  c.Release(Ip("2001:db8::1"));  // an unmatched release is harmless
  EXPECT_EQ(c.Count(Ip("2001:db8::1")), 0u);
  EXPECT_TRUE(c.TryAcquire(Ip("2001:db8::1"), 1));
}

TEST(PerIpCounterTest, ConcurrentAcquiresNeverExceedTheLimit) {
  PerIpCounter c;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) admitted += c.TryAcquire(Ip("198.51.100.7"), 100) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);
  EXPECT_EQ(c.Count(Ip("198.51.100.7")), 100u);
}

}  // namespace
}  // namespace vrouter::edge
