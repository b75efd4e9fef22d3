#include "router/base/wake_clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace vrouter::base {
namespace {

using std::chrono::milliseconds;

TEST(WakeClockTest, OutsideABatchItIsTheClock) {
  const auto before = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(milliseconds(2));
  EXPECT_GT(WakeClock::Now(), before);
}

TEST(WakeClockTest, InABatchItIsTheBatchsStartAndNestedBatchesKeepIt) {
  SteadyTime started;
  {
    const WakeClock::Batch batch;
    started = WakeClock::Now();
    std::this_thread::sleep_for(milliseconds(2));
    EXPECT_EQ(WakeClock::Now(), started);
    {
      const WakeClock::Batch inner;
      EXPECT_EQ(WakeClock::Now(), started);
    }
    EXPECT_EQ(WakeClock::Now(), started);  // still the outer batch
    // Another thread is not in this thread's batch.
    std::thread other([&] { EXPECT_GT(WakeClock::Now(), started); });
    other.join();
  }
  EXPECT_GT(WakeClock::Now(), started);  // the batch ended
}

}  // namespace
}  // namespace vrouter::base
