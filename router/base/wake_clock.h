// "Now" for the rules that need it to about a millisecond (liveness, rate limits, the lookup
// histogram's start), read once per wake-up of a thread instead of once per frame: the readiness
// loop opens a WakeClock::Batch around each batch of ready sockets, and every frame handled in it
// shares that one clock read (a batch is a few microseconds to a millisecond of work). Outside a
// batch, Now() reads the clock.
#pragma once

#include <chrono>

#include "router/base/time.h"

namespace vrouter::base {

class WakeClock {
 public:
  static SteadyTime Now() { return in_batch_ ? batch_time_ : std::chrono::steady_clock::now(); }

  // Marks this thread's batch of work: Now() is the time the batch began until it ends. Nests
  // (an inner batch keeps the outer one's time).
  class Batch {
   public:
    Batch() : outer_(in_batch_) {
      if (!outer_) batch_time_ = std::chrono::steady_clock::now();
      in_batch_ = true;
    }
    ~Batch() { in_batch_ = outer_; }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    const bool outer_;
  };

 private:
  static constinit inline thread_local bool in_batch_ = false;
  static constinit inline thread_local SteadyTime batch_time_{};
};

}  // namespace vrouter::base
