// A session's queue of outgoing frames: first in, first out, and nothing allocated while empty
// (std::deque allocates a 512-byte block up front, per connection, for a queue that is empty
// nearly always). Storage is a vector with a read position; it is compacted when the consumed
// prefix outweighs the rest, and released when a burst has drained.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace vrouter::base {

template <typename T>
class FifoQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  std::size_t capacity() const { return items_.capacity(); }  // slots held, consumed or not

  void push_back(T item) { items_.push_back(std::move(item)); }
  T& front() { return items_[head_]; }
  // The i-th item from the front (i < size()).
  const T& operator[](std::size_t i) const { return items_[head_ + i]; }

  void pop_front() {
    items_[head_++] = T();
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= kCompactAt && head_ * 2 >= items_.size()) {
      // A queue that never drains (a steady stream) must not keep its consumed prefix.
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  void clear() {
    items_.clear();
    head_ = 0;
    // After a burst, give the memory back; a few slots stay for the usual one or two frames.
    if (items_.capacity() > kKeepCapacity) items_.shrink_to_fit();
  }

 private:
  static constexpr std::size_t kCompactAt = 32;
  static constexpr std::size_t kKeepCapacity = 8;
  std::vector<T> items_;
  std::size_t head_ = 0;  // the first item not consumed
};

}  // namespace vrouter::base
