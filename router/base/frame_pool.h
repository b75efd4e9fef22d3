// Outgoing frames (std::shared_ptr<const std::string>, the type sessions queue) whose memory is
// recycled per thread: a session's answer costs no malloc once the pool is warm.
//
// Why: every answer was a std::string (its buffer) and a make_shared (string and control block),
// two mallocs and two frees per request on the lookup path. A pooled frame's string keeps its
// capacity when it comes back, and its control block is allocated by PoolAllocator from a free
// list of blocks of its size. Frames go back to the pool of the thread that drops the last
// reference (a session's own thread, for answers); the pools are bounded, so memory a burst took
// is released beyond them, and strings that grew past kMaxPooledCapacity are freed, not kept.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace vrouter::base {

namespace frame_pool {

// Strings and control blocks each thread keeps for reuse, at most.
inline constexpr std::size_t kMaxPooled = 256;
inline constexpr std::size_t kMaxPooledCapacity = std::size_t{16} * 1024;

struct ThreadPool {
  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();
  std::vector<std::string*> strings;
  std::vector<void*> blocks;  // all of block_size bytes
  std::size_t block_size = 0;
};
// This thread's pool; nullptr once it is destroyed (a frame dropped late in the thread's exit is
// freed, not pooled).
ThreadPool* Local();

// Gives `s` back to this thread's pool (deleting it when the pool is full or `s` is too big).
void Recycle(std::string* s);

struct Recycler {
  void operator()(const std::string* s) const { Recycle(const_cast<std::string*>(s)); }
};

// Allocates the control blocks of pooled frames (one type, one size) from this thread's list.
template <typename T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>& /*other*/) {}  // NOLINT(google-explicit-constructor)

  T* allocate(std::size_t n) {
    ThreadPool* pool = Local();
    if (pool != nullptr && n == 1 && pool->block_size == sizeof(T) && !pool->blocks.empty()) {
      void* p = pool->blocks.back();
      pool->blocks.pop_back();
      return static_cast<T*>(p);
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) {
    ThreadPool* pool = Local();
    if (pool != nullptr && n == 1) {
      if (pool->block_size == 0) pool->block_size = sizeof(T);
      if (pool->block_size == sizeof(T) && pool->blocks.size() < kMaxPooled) {
        if (pool->blocks.capacity() == 0) pool->blocks.reserve(kMaxPooled);
        pool->blocks.push_back(p);
        return;
      }
    }
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const PoolAllocator<U>& /*other*/) const {
    return true;
  }
};

// An empty string from this thread's pool, or a new one.
std::string* TakeString();

}  // namespace frame_pool

// Fills a pooled string through `fill(std::string&)` (it starts empty, with whatever capacity it
// had) and returns it as a frame.
template <typename Fill>
std::shared_ptr<const std::string> MakePooledFrame(Fill&& fill) {
  std::string* s = frame_pool::TakeString();
  try {
    fill(*s);
  } catch (...) {
    frame_pool::Recycle(s);
    throw;
  }
  return std::shared_ptr<const std::string>(s, frame_pool::Recycler{},
                                            frame_pool::PoolAllocator<char>{});
}

}  // namespace vrouter::base
