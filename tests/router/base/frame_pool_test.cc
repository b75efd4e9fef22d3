#include "router/base/frame_pool.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace vrouter::base {
namespace {

TEST(FramePoolTest, AFrameDroppedIsReusedWithItsCapacity) {
  const std::string text(300, 'x');
  auto frame = MakePooledFrame([&](std::string& out) {
    EXPECT_TRUE(out.empty());
    out += text;
  });
  EXPECT_EQ(*frame, text);
  const std::string* first = frame.get();
  const std::size_t capacity = frame->capacity();
  frame.reset();  // back to this thread's pool
  auto again = MakePooledFrame([](std::string& out) {
    EXPECT_TRUE(out.empty());  // emptied, not freed
    out += "y";
  });
  EXPECT_EQ(again.get(), first);
  EXPECT_EQ(again->capacity(), capacity);
  EXPECT_EQ(*again, "y");
}

TEST(FramePoolTest, ManyFramesAtOnceAndOversizedOnesAreFreed) {
  std::vector<std::shared_ptr<const std::string>> frames;
  for (std::size_t i = 0; i < 2 * frame_pool::kMaxPooled; ++i) {
    frames.push_back(MakePooledFrame([&](std::string& out) { out = std::to_string(i); }));
  }
  frames.push_back(MakePooledFrame(
      [](std::string& out) { out.assign(frame_pool::kMaxPooledCapacity + 1, 'z'); }));
  for (std::size_t i = 0; i < 2 * frame_pool::kMaxPooled; ++i)
    EXPECT_EQ(*frames[i], std::to_string(i));
  frames.clear();  // the pool keeps kMaxPooled of them; the rest and the big one are freed
  auto frame = MakePooledFrame([](std::string& out) { out = "ok"; });
  EXPECT_LE(frame->capacity(), frame_pool::kMaxPooledCapacity);
}

TEST(FramePoolTest, AFrameMayBeDroppedOnAnotherThread) {
  auto frame = MakePooledFrame([](std::string& out) { out = "shared"; });
  std::thread other([f = std::move(frame)]() mutable {
    EXPECT_EQ(*f, "shared");
    f.reset();  // into the other thread's pool, freed when that thread ends
  });
  other.join();
}

TEST(FramePoolTest, AFillThatThrowsLeaksNothing) {
  EXPECT_THROW(MakePooledFrame([](std::string&) { throw std::runtime_error("no"); }),
               std::runtime_error);
}

}  // namespace
}  // namespace vrouter::base
