#include "router/net/handler_slot.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace vrouter::net {
namespace {

namespace asio = boost::asio;

TEST(HandlerSlotTest, HoldsOneAllocationAtATimeAndOverflowsToTheHeap) {
  HandlerSlot<64> slot;
  const std::uint64_t overflows = handler_slot_overflows.load();
  void* first = slot.Allocate(48);
  EXPECT_TRUE(slot.in_use());
  void* second = slot.Allocate(48);  // taken: the heap, not an overflow
  EXPECT_NE(first, second);
  EXPECT_EQ(handler_slot_overflows.load(), overflows);
  void* big = slot.Allocate(65);  // larger than the slot: the heap, counted
  EXPECT_EQ(handler_slot_overflows.load(), overflows + 1);
  slot.Deallocate(second);
  slot.Deallocate(big);
  EXPECT_TRUE(slot.in_use());
  slot.Deallocate(first);
  EXPECT_FALSE(slot.in_use());
  EXPECT_EQ(slot.Allocate(64), first);  // free again: reused
  slot.Deallocate(first);
}

// What a session does: the owner holds the slot, the handler holds the owner.
struct Owner : std::enable_shared_from_this<Owner> {
  explicit Owner(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  HandlerSlot<256> slot;
  int fired = 0;
  void Wait(std::chrono::milliseconds after) {
    timer.expires_after(after);
    timer.async_wait(InSlot(slot, [self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) ++self->fired;
    }));
  }
};

TEST(HandlerSlotTest, AsioPlacesTheWaitInTheSlotAndFreesItBeforeTheHandlerRuns) {
  asio::io_context io;
  auto owner = std::make_shared<Owner>(io);
  const std::uint64_t overflows = handler_slot_overflows.load();
  owner->Wait(std::chrono::milliseconds(1));
  EXPECT_TRUE(owner->slot.in_use());
  io.run();
  EXPECT_EQ(owner->fired, 1);
  EXPECT_FALSE(owner->slot.in_use());
  EXPECT_EQ(handler_slot_overflows.load(), overflows);  // the wait fit its slot
}

TEST(HandlerSlotTest, ARearmedTimerUsesTheHeapWhileItsCancelledWaitIsPending) {
  asio::io_context io;
  auto owner = std::make_shared<Owner>(io);
  owner->Wait(std::chrono::hours(1));
  owner->Wait(std::chrono::milliseconds(1));  // cancels the first; it still holds the slot
  io.run();
  EXPECT_EQ(owner->fired, 1);
  EXPECT_FALSE(owner->slot.in_use());
}

// The owner lives only through the pending wait's handler; destroying the io_context destroys the
// wait (and with it the owner, whose slot held the wait). Asio moves the handler out first, so this
// frees the slot before its owner: ASan sees a use after free otherwise.
TEST(HandlerSlotTest, AnIoContextDestroyedWithTheWaitPendingFreesTheOwnerLast) {
  auto io = std::make_unique<asio::io_context>();
  std::weak_ptr<Owner> watch;
  {
    auto owner = std::make_shared<Owner>(*io);
    owner->Wait(std::chrono::hours(1));
    watch = owner;
  }
  EXPECT_FALSE(watch.expired());
  io.reset();
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace vrouter::net
