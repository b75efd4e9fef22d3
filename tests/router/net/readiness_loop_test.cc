#include "router/net/readiness_loop.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <vector>

namespace vrouter::net {
namespace {

namespace asio = boost::asio;

// One end of a socket pair, watched; the test writes to the other end.
struct Watcher : ReadinessWaiter {
  int fd = -1;
  int peer = -1;
  std::vector<std::uint32_t> events;
  bool shut_down = false;
  Watcher() {
    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), 0);
    fd = pair[0];
    peer = pair[1];
  }
  virtual ~Watcher() {
    if (fd >= 0) ::close(fd);
    ::close(peer);
  }
  void OnReady(std::uint32_t e) override { events.push_back(e); }
  void OnLoopShutdown() override {
    shut_down = true;
    ::close(fd);
    fd = -1;
  }
  void Drain() {
    char buffer[64];
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
  }
};

TEST(ReadinessLoopTest, TellsEachEdgeOnceAndLetsRunReturnWhenNothingIsWatched) {
  asio::io_context io;
  auto& loop = ReadinessLoop::Of(io);
  auto w = std::make_shared<Watcher>();
  ASSERT_TRUE(loop.Add(w->fd, w.get(), w));
  io.poll();
  ASSERT_EQ(w->events.size(), 1u);  // writable from the start
  EXPECT_NE(w->events[0] & EPOLLOUT, 0u);
  EXPECT_EQ(w->events[0] & EPOLLIN, 0u);

  ASSERT_EQ(::send(w->peer, "hi", 2, 0), 2);
  io.poll();
  ASSERT_EQ(w->events.size(), 2u);
  EXPECT_NE(w->events[1] & EPOLLIN, 0u);
  io.poll();
  EXPECT_EQ(w->events.size(), 2u);  // edge-triggered: not told again while unread

  w->Drain();
  ASSERT_EQ(::send(w->peer, "again", 5, 0), 5);
  ::shutdown(w->peer, SHUT_WR);
  io.poll();
  ASSERT_EQ(w->events.size(), 3u);
  EXPECT_NE(w->events[2] & (EPOLLIN | EPOLLRDHUP), 0u);

  std::weak_ptr<Watcher> watch = w;
  loop.Remove(w->fd);
  EXPECT_EQ(loop.size(), 0u);
  w.reset();
  EXPECT_FALSE(watch.expired());  // released after the running handler
  io.run();                       // returns: nothing is watched, the loop waits for nothing
  EXPECT_TRUE(watch.expired());
}

TEST(ReadinessLoopTest, RefusesADescriptorEpollCannotWatch) {
  asio::io_context io;
  auto w = std::make_shared<Watcher>();
  EXPECT_FALSE(ReadinessLoop::Of(io).Add(-1, w.get(), w));
  EXPECT_EQ(ReadinessLoop::Of(io).size(), 0u);
}

TEST(ReadinessLoopTest, AnIoContextDestroyedWhileWatchingTellsTheWaitersAndLetsThemGo) {
  auto io = std::make_unique<asio::io_context>();
  std::weak_ptr<Watcher> watch;
  {
    auto w = std::make_shared<Watcher>();
    ASSERT_TRUE(ReadinessLoop::Of(*io).Add(w->fd, w.get(), w));
    watch = w;
  }
  io->poll();
  ASSERT_FALSE(watch.expired());  // the loop keeps it
  io.reset();
  EXPECT_TRUE(watch.expired());
}

TEST(ReadinessLoopTest, AWaiterRemovedWhileItsBatchIsDeliveredStaysAliveUntilTheBatchEnds) {
  asio::io_context io;
  auto& loop = ReadinessLoop::Of(io);
  // The first told removes both; the second is told in the same batch and must still be alive.
  struct Closer final : Watcher {
    ReadinessLoop* loop = nullptr;
    Closer* other = nullptr;
    bool removed = false;
    void OnReady(std::uint32_t e) override {
      Watcher::OnReady(e);
      if (removed) return;
      for (Closer* c : {this, other}) {
        if (!c->removed) {
          c->removed = true;
          loop->Remove(c->fd);
        }
      }
    }
  };
  auto a = std::make_shared<Closer>();
  auto b = std::make_shared<Closer>();
  a->loop = b->loop = &loop;
  a->other = b.get();
  b->other = a.get();
  ASSERT_TRUE(loop.Add(a->fd, a.get(), a));
  ASSERT_TRUE(loop.Add(b->fd, b.get(), b));
  std::weak_ptr<Closer> wa = a, wb = b;
  a.reset();
  b.reset();
  io.run();  // both writable at once: one batch; ASan sees a use after free otherwise
  EXPECT_TRUE(wa.expired());
  EXPECT_TRUE(wb.expired());
}

}  // namespace
}  // namespace vrouter::net
