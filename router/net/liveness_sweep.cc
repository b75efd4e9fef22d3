#include "router/net/liveness_sweep.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace vrouter::net {
namespace asio = boost::asio;

namespace {
constexpr std::chrono::nanoseconds kMinPeriod = std::chrono::milliseconds(1);
constexpr std::chrono::nanoseconds kMaxPeriod = std::chrono::seconds(1);
}  // namespace

class LivenessSweep final : public asio::io_context::service {
 public:
  static inline asio::io_context::id id;

  explicit LivenessSweep(asio::io_context& io) : asio::io_context::service(io), timer_(io) {}

  void Add(LivenessWatched* w, std::chrono::nanoseconds period) {
    period = std::clamp(period, kMinPeriod, kMaxPeriod);
    if (period < period_ || period_ == std::chrono::nanoseconds::zero()) {
      period_ = period;
      if (armed_) timer_.cancel();  // re-armed with the shorter period
    }
    if (w->sweep_ == this) return;
    w->sweep_ = this;
    w->prev_ = nullptr;
    w->next_ = head_;
    if (head_ != nullptr) head_->prev_ = w;
    head_ = w;
    ++size_;
    if (!armed_) Arm();
  }

  void Remove(LivenessWatched* w) {
    if (w->sweep_ != this) return;
    if (cursor_ == w) cursor_ = w->next_;  // a sweep in progress goes on after it
    if (w->prev_ != nullptr) w->prev_->next_ = w->next_;
    if (w->next_ != nullptr) w->next_->prev_ = w->prev_;
    if (head_ == w) head_ = w->next_;
    w->sweep_ = nullptr;
    w->prev_ = w->next_ = nullptr;
    --size_;
    if (size_ == 0 && armed_) timer_.cancel();  // nothing to check: io_context::run may return
  }

  std::size_t size() const { return size_; }
  std::chrono::nanoseconds period() const { return period_; }

 private:
  void shutdown() override {
    // The io_context is going: its sessions are destroyed with its handlers, after this. They
    // must not reach for the sweep then.
    for (LivenessWatched* w = head_; w != nullptr;) {
      LivenessWatched* next = w->next_;
      w->sweep_ = nullptr;
      w->prev_ = w->next_ = nullptr;
      w = next;
    }
    head_ = nullptr;
    size_ = 0;
    timer_.cancel();
  }

  void Arm() {
    armed_ = true;
    timer_.expires_after(period_);
    timer_.async_wait([this](boost::system::error_code ec) {
      armed_ = false;
      if (ec == asio::error::operation_aborted && size_ == 0) return;
      if (!ec) Sweep();
      if (size_ > 0 && !armed_) Arm();  // a check may have watched again (Add arms)
    });
  }

  // Each session checks itself; one that stops watching (itself) moves the cursor on.
  void Sweep() {
    const base::SteadyTime now = std::chrono::steady_clock::now();
    for (cursor_ = head_; cursor_ != nullptr;) {
      LivenessWatched* w = cursor_;
      cursor_ = w->next_;
      w->CheckLiveness(now);
    }
  }

  asio::steady_timer timer_;
  LivenessWatched* head_ = nullptr;
  LivenessWatched* cursor_ = nullptr;  // the next to check while sweeping
  std::size_t size_ = 0;
  std::chrono::nanoseconds period_{0};
  bool armed_ = false;
};

LivenessWatched::~LivenessWatched() { StopLivenessChecks(); }

void LivenessWatched::WatchLiveness(asio::io_context& io, std::chrono::nanoseconds period) {
  asio::use_service<LivenessSweep>(io).Add(this, period);
}

void LivenessWatched::StopLivenessChecks() {
  if (sweep_ != nullptr) sweep_->Remove(this);
}

std::size_t WatchedForLiveness(asio::io_context& io) {
  return asio::use_service<LivenessSweep>(io).size();
}

std::chrono::nanoseconds LivenessPeriod(asio::io_context& io) {
  return asio::use_service<LivenessSweep>(io).period();
}

}  // namespace vrouter::net
