// The liveness checks of a thread's open WebSocket sessions, from one timer per io_context
// (thread) instead of one per session.
//
// Why: an idle open session always had its own Asio timer (72 bytes) and a pending wait on it
// (the 96-byte slot that held the operation): ~180 of the ~1,850 bytes an idle joined ws
// connection held (BENCHMARKS.md, "Liveness from one timer per thread"). Here a session is a node
// of its thread's list (three pointers) and the sweep asks every node to check itself once per
// period: the hello deadline, a ping after half the idle timeout, a drop after the full one. A
// check is late by at most one period; the period is a quarter of the shortest interval the
// checks measure, and at most 1 s (so the checks of 12,500 sessions cost ~1 ms per second).
//
// Single-threaded: every call comes from the io_context's thread, except the shutdown the
// io_context's destruction makes.
#pragma once

#include <chrono>
#include <cstddef>

#include "router/base/time.h"

namespace boost::asio {
class io_context;
}

namespace vrouter::net {

class LivenessSweep;

// A session the sweep checks. Its node (the links) lives in it: watching allocates nothing.
class LivenessWatched {
 public:
  // Once per period while watched, on the io_context's thread. May stop watching (itself only).
  virtual void CheckLiveness(base::SteadyTime now) = 0;

 protected:
  LivenessWatched() = default;
  ~LivenessWatched();  // stops watching
  LivenessWatched(const LivenessWatched&) = delete;
  LivenessWatched& operator=(const LivenessWatched&) = delete;

  // Starts (or keeps) this session in `io`'s sweep, checked at least every `period` (clamped to
  // [1 ms, 1 s]); then StopLivenessChecks() ends it. The caller keeps itself alive meanwhile.
  void WatchLiveness(boost::asio::io_context& io, std::chrono::nanoseconds period);
  void StopLivenessChecks();
  bool liveness_watched() const { return sweep_ != nullptr; }

 private:
  friend class LivenessSweep;
  LivenessSweep* sweep_ = nullptr;  // null: not watched (or its io_context is gone)
  LivenessWatched* prev_ = nullptr;
  LivenessWatched* next_ = nullptr;
};

// For tests: how many sessions `io`'s sweep checks, and its period (zero before any).
std::size_t WatchedForLiveness(boost::asio::io_context& io);
std::chrono::nanoseconds LivenessPeriod(boost::asio::io_context& io);

}  // namespace vrouter::net
