// The project's mutex: absl::Mutex, except under ThreadSanitizer. Debian's abseil is not built
// with TSan, so TSan cannot see absl::Mutex synchronize and reports every access it guards as a
// race (store_contract_test did, on AssignmentTable under its shard lock). Under TSan the same
// names are a std::mutex, which TSan's runtime intercepts, so its reports mean something.
// Lock annotations are kept either way, for clang's -Wthread-safety.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(__SANITIZE_THREAD__)
#define VROUTER_STD_MUTEX 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VROUTER_STD_MUTEX 1
#endif
#endif

#include <atomic>
#include <memory>
#ifdef VROUTER_STD_MUTEX
#include <mutex>
#endif

namespace vrouter {

#ifdef VROUTER_STD_MUTEX
class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};
#else
using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
#endif

// A shared_ptr read and replaced from any thread (configuration swapped on reload, the fleet
// snapshot). std::atomic<std::shared_ptr> normally; under TSan a mutex, because libstdc++ 12
// guards the pointer with its own lock bit, which TSan does not see (it reported the fleet
// snapshot's swap as a race).
template <typename T>
class AtomicSharedPtr {
 public:
  explicit AtomicSharedPtr(std::shared_ptr<T> value) : value_(std::move(value)) {}
#ifdef VROUTER_STD_MUTEX
  std::shared_ptr<T> load() const {
    MutexLock lock(&mu_);
    return value_;
  }
  void store(std::shared_ptr<T> value) {
    MutexLock lock(&mu_);
    value_.swap(value);
  }

 private:
  mutable Mutex mu_;
  std::shared_ptr<T> value_;
#else
  std::shared_ptr<T> load() const { return value_.load(); }
  void store(std::shared_ptr<T> value) { value_.store(std::move(value)); }

 private:
  std::atomic<std::shared_ptr<T> > value_;
#endif
};

}  // namespace vrouter
