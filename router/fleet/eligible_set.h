// A set of positions 0..n-1 that answers "how many are in" and "which is the k-th, in position
// order" in O(log n): a Fenwick tree of 0/1 flags. The fleet model keeps one per choice tier
// (every server, each region, each region group) so that power of two choices draws its two
// candidates from the eligible servers in declaration order without listing them: the same draws
// as a scan over the whole fleet, at a cost that does not grow with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vrouter::fleet {

class EligibleSet {
 public:
  // Empties the set and sizes it for positions 0..n-1.
  void Reset(std::size_t n) {
    tree_.assign(n + 1, 0);
    in_.assign(n, false);
    size_ = 0;
    top_ = 1;
    while (top_ * 2 <= n) top_ *= 2;
  }

  std::size_t capacity() const { return in_.size(); }
  std::size_t size() const { return size_; }
  bool contains(std::size_t pos) const { return pos < in_.size() && in_[pos]; }

  // Adds or removes `pos` (no-op when it already is, or is not, in the set).
  void Set(std::size_t pos, bool in) {
    if (pos >= in_.size() || in_[pos] == in) return;
    in_[pos] = in;
    const std::int32_t delta = in ? 1 : -1;
    size_ = in ? size_ + 1 : size_ - 1;
    for (std::size_t i = pos + 1; i < tree_.size(); i += i & (~i + 1)) tree_[i] += delta;
  }

  // The position of the k-th member (0-based, in position order). Requires k < size().
  std::size_t Nth(std::size_t k) const {
    std::size_t pos = 0;
    auto remaining = static_cast<std::int32_t>(k);
    for (std::size_t step = top_; step > 0; step /= 2) {
      const std::size_t next = pos + step;
      if (next < tree_.size() && tree_[next] <= remaining) {
        pos = next;
        remaining -= tree_[next];
      }
    }
    return pos;  // tree indices are 1-based: `pos` is the 0-based position of the member
  }

 private:
  std::vector<std::int32_t> tree_{0};  // Fenwick tree, 1-based
  std::vector<bool> in_;
  std::size_t size_ = 0;
  std::size_t top_ = 1;  // the largest power of two <= capacity
};

}  // namespace vrouter::fleet
