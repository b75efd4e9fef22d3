#include "router/assign/watch_hub.h"

#include <gtest/gtest.h>

#include <thread>

namespace vrouter::assign {
namespace {

class RecordingSink : public PushSink {
 public:
  void Push(Frame frame) override { frames.push_back(std::move(frame)); }
  std::vector<Frame> frames;
};

TEST(WatchHubTest, PublishReachesEveryWatcherWithOneSharedFrame) {
  WatchHub hub(4);
  auto a = std::make_shared<RecordingSink>();
  auto b = std::make_shared<RecordingSink>();
  hub.Watch("bob", 1, a);
  hub.Watch("bob", 2, b);
  hub.Watch("bob", 2, b);  // idempotent
  EXPECT_EQ(hub.size(), 2u);
  auto frame = std::make_shared<const std::string>("moved");
  EXPECT_EQ(hub.Publish("bob", frame), 2u);
  ASSERT_EQ(a->frames.size(), 1u);
  ASSERT_EQ(b->frames.size(), 1u);
  EXPECT_EQ(a->frames[0].get(), b->frames[0].get());  // encoded once, shared
  EXPECT_EQ(hub.Publish("carol", frame), 0u);
}

TEST(WatchHubTest, UnwatchAndDeadSinksStopDelivery) {
  WatchHub hub(4);
  auto a = std::make_shared<RecordingSink>();
  auto b = std::make_shared<RecordingSink>();
  hub.Watch("bob", 1, a);
  hub.Watch("bob", 2, b);
  hub.Unwatch("bob", 1);
  hub.Unwatch("bob", 1);  // idempotent
  EXPECT_EQ(hub.size(), 1u);
  b.reset();  // session gone without unwatching: weak reference, nothing delivered
  EXPECT_EQ(hub.Publish("bob", std::make_shared<const std::string>("x")), 0u);
  EXPECT_TRUE(a->frames.empty());
  hub.Unwatch("bob", 2);
  EXPECT_EQ(hub.size(), 0u);
}

TEST(WatchHubTest, ConcurrentWatchUnwatchPublish) {
  WatchHub hub(4);
  class CountingSink : public PushSink {
   public:
    void Push(Frame) override { n.fetch_add(1); }
    std::atomic<int> n{0};
  };
  auto sink = std::make_shared<CountingSink>();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string user = "u" + std::to_string(i % 10);
        hub.Watch(user, static_cast<std::uint64_t>(t), sink);
        hub.Publish(user, std::make_shared<const std::string>("f"));
        hub.Unwatch(user, static_cast<std::uint64_t>(t));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(hub.size(), 0u);
  EXPECT_GE(sink->n.load(), 4 * 2000);  // each publisher at least reached itself
}

}  // namespace
}  // namespace vrouter::assign
