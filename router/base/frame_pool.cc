#include "router/base/frame_pool.h"

namespace vrouter::base::frame_pool {
namespace {
// Trivially destructible, so still readable while (and after) the thread's pool is destroyed.
thread_local bool pool_gone = false;
}  // namespace

ThreadPool::~ThreadPool() {
  pool_gone = true;
  for (std::string* s : strings) delete s;
  for (void* b : blocks) ::operator delete(b);
}

ThreadPool* Local() {
  if (pool_gone) return nullptr;
  thread_local ThreadPool pool;
  return &pool;
}

void Recycle(std::string* s) {
  ThreadPool* pool = Local();
  if (pool == nullptr || pool->strings.size() >= kMaxPooled || s->capacity() > kMaxPooledCapacity) {
    delete s;
    return;
  }
  if (pool->strings.capacity() == 0) pool->strings.reserve(kMaxPooled);
  s->clear();
  pool->strings.push_back(s);
}

std::string* TakeString() {
  ThreadPool* pool = Local();
  if (pool == nullptr || pool->strings.empty()) return new std::string();
  std::string* s = pool->strings.back();
  pool->strings.pop_back();
  return s;
}

}  // namespace vrouter::base::frame_pool
