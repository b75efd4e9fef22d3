#include "router/base/fifo_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace vrouter::base {
namespace {

TEST(FifoQueueTest, FirstInFirstOut) {
  FifoQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.capacity(), 0u);  // nothing allocated until used
  q.push_back("a");
  q.push_back("b");
  q.push_back("c");
  EXPECT_EQ(q.size(), 3u);
  for (const char* want : {"a", "b", "c"}) {
    ASSERT_FALSE(q.empty());
    EXPECT_EQ(q.front(), want);
    q.pop_front();
  }
  EXPECT_TRUE(q.empty());
}

TEST(FifoQueueTest, PoppedItemsAreReleasedAtOnce) {
  FifoQueue<std::shared_ptr<int>> q;
  auto item = std::make_shared<int>(1);
  std::weak_ptr<int> watch = item;
  q.push_back(std::move(item));
  q.push_back(std::make_shared<int>(2));
  q.pop_front();
  EXPECT_TRUE(watch.expired());  // not kept alive by the consumed slot
  EXPECT_EQ(*q.front(), 2);
}

TEST(FifoQueueTest, ADrainedBurstGivesItsMemoryBack) {
  FifoQueue<int> q;
  for (int i = 0; i < 10000; ++i) q.push_back(i);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(q.front(), i);
    q.pop_front();
  }
  EXPECT_TRUE(q.empty());
  EXPECT_LE(q.capacity(), 8u);
}

TEST(FifoQueueTest, AQueueThatNeverDrainsStaysBounded) {
  FifoQueue<int> q;
  q.push_back(0);
  q.push_back(1);
  for (int i = 2; i < 100000; ++i) {
    q.push_back(i);
    ASSERT_EQ(q.front(), i - 2);
    q.pop_front();
    ASSERT_EQ(q.size(), 2u);
  }
  EXPECT_LE(q.capacity(), 128u);
}

TEST(FifoQueueTest, ClearEmptiesIt) {
  FifoQueue<int> q;
  q.push_back(1);
  q.clear();
  EXPECT_TRUE(q.empty());
  q.push_back(2);
  EXPECT_EQ(q.front(), 2);
}

}  // namespace
}  // namespace vrouter::base
