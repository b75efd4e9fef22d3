#include "router/net/readiness_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "router/base/wake_clock.h"

namespace vrouter::net {
namespace asio = boost::asio;

namespace {

// Ready sockets taken per epoll_wait; a fuller set is read again before Asio is asked to wait.
constexpr int kBatch = 128;
// Batches per wake-up before the other handlers of the thread get their turn.
constexpr int kMaxBatchesPerWake = 8;

class Loop final : public ReadinessLoop, public asio::io_context::service {
 public:
  static inline asio::io_context::id id;

  explicit Loop(asio::io_context& io)
      : asio::io_context::service(io), io_(io), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "epoll_create1 (readiness loop)");
    }
    outer_.emplace(io, epoll_fd_);  // owns the descriptor from here on
  }

  bool Add(int fd, ReadinessWaiter* waiter, std::shared_ptr<void> keepalive) override {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = waiter;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
    watched_[fd] = Watched{waiter, std::move(keepalive)};
    if (!armed_) Arm();
    return true;
  }

  void Remove(int fd) override {
    const auto it = watched_.find(fd);
    if (it == watched_.end()) return;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    // Released after the running handler: a batch being delivered may still name the waiter.
    asio::post(io_, [keepalive = std::move(it->second.keepalive)] {});
    watched_.erase(it);
    if (watched_.empty() && armed_) {
      boost::system::error_code ignored;
      outer_->cancel(ignored);  // nothing to wait for: io_context::run may return
    }
  }

  std::size_t size() const override { return watched_.size(); }

 private:
  struct Watched {
    ReadinessWaiter* waiter = nullptr;
    std::shared_ptr<void> keepalive;
  };

  void shutdown() override {
    boost::system::error_code ignored;
    outer_->close(ignored);
    auto watched = std::move(watched_);
    watched_.clear();
    for (auto& [fd, w] : watched) w.waiter->OnLoopShutdown();
    watched.clear();  // the waiters' keepalives: sessions go here
  }

  void Arm() {
    armed_ = true;
    outer_->async_wait(asio::posix::stream_descriptor::wait_read,
                       [this](boost::system::error_code ec) { OnOuterReady(ec); });
  }

  void OnOuterReady(boost::system::error_code ec) {
    armed_ = false;
    if (ec == asio::error::operation_aborted && watched_.empty()) return;
    if (!ec) Deliver();
    if (!watched_.empty()) Arm();
  }

  void Deliver() {
    for (int batch = 0; batch < kMaxBatchesPerWake; ++batch) {
      const int n = ::epoll_wait(epoll_fd_, events_.data(), kBatch, 0);
      if (n <= 0) return;                 // none (or EINTR: Asio waits again)
      const base::WakeClock::Batch wake;  // one clock read for the frames of these sockets
      for (int i = 0; i < n; ++i) {
        const auto at = static_cast<std::size_t>(i);
        // The next waiter is a session object not touched since its last round trip: start
        // loading it (its vtable pointer first) while this one is handled.
        if (i + 1 < n) __builtin_prefetch(events_[at + 1].data.ptr);
        static_cast<ReadinessWaiter*>(events_[at].data.ptr)->OnReady(events_[at].events);
      }
      if (n < kBatch) return;
    }
  }

  asio::io_context& io_;
  const int epoll_fd_;
  std::optional<asio::posix::stream_descriptor> outer_;
  absl::flat_hash_map<int, Watched> watched_;
  bool armed_ = false;
  std::array<epoll_event, kBatch> events_{};
};

}  // namespace

ReadinessLoop& ReadinessLoop::Of(asio::io_context& io) { return asio::use_service<Loop>(io); }

}  // namespace vrouter::net
