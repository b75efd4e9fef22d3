// Room for one pending asynchronous operation inside the object that waits for it.
//
// Every Asio wait allocates its operation (the handler and Asio's bookkeeping). An open wss
// session always has its read wait pending (a ws session's readiness is the readiness loop's, and
// liveness is the thread's sweep, neither with an operation per session); through Asio's
// per-thread recycling allocator it landed in whatever cached block was free, often one sized for
// the handshake's much larger read (heaptrack: 279 bytes per idle connection, with its own malloc
// header). A HandlerSlot holds such an operation inside the session instead;
// Asio uses it because the handler names it as its allocator (the associated allocator that
// Asio's "custom memory allocation" example uses; Boost 1.74 has no bind_allocator, so the
// handler carries it itself, see SlotHandler).
//
// A slot holds one operation at a time. When it is taken (a wait started again while its
// cancelled predecessor is still to complete) or the operation is larger than the slot, the
// allocation falls back to the heap, so a too small slot costs memory, never correctness.
// Single-threaded: used only from the session's own thread (one io_context per thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace vrouter::net {

// Operations that did not fit their slot, in this process: a slot sized below what Asio
// allocates (a new Boost, another handler) shows here, and in the tests that check it, instead of
// as memory quietly lost.
inline std::atomic<std::uint64_t> handler_slot_overflows{0};

template <std::size_t Bytes>
class HandlerSlot {
 public:
  HandlerSlot() = default;
  HandlerSlot(const HandlerSlot&) = delete;
  HandlerSlot& operator=(const HandlerSlot&) = delete;

  void* Allocate(std::size_t size) {
    if (size > Bytes) {
      handler_slot_overflows.fetch_add(1, std::memory_order_relaxed);
    } else if (!in_use_) {
      in_use_ = true;
      return storage_;
    }
    return ::operator new(size);
  }

  void Deallocate(void* p) {
    if (p == static_cast<void*>(storage_)) {
      in_use_ = false;
    } else {
      ::operator delete(p);
    }
  }

  bool in_use() const { return in_use_; }

 private:
  alignas(std::max_align_t) unsigned char storage_[Bytes];
  bool in_use_ = false;
};

// A standard allocator over one HandlerSlot (what Asio rebinds for its operation type).
template <class T, std::size_t Bytes>
class SlotAllocator {
 public:
  using value_type = T;
  template <class U>
  struct rebind {  // allocator_traits cannot rebind a template with a size parameter by itself
    using other = SlotAllocator<U, Bytes>;
  };

  explicit SlotAllocator(HandlerSlot<Bytes>& slot) : slot_(&slot) {}
  template <class U>
  SlotAllocator(const SlotAllocator<U, Bytes>& other) : slot_(other.slot()) {}  // NOLINT

  T* allocate(std::size_t n) { return static_cast<T*>(slot_->Allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t /*n*/) { slot_->Deallocate(p); }

  HandlerSlot<Bytes>* slot() const { return slot_; }

  template <class U>
  bool operator==(const SlotAllocator<U, Bytes>& other) const {
    return slot_ == other.slot();
  }

 private:
  HandlerSlot<Bytes>* slot_;
};

// A completion handler whose operation Asio places in `slot`. The slot must outlive the
// operation: the handler keeps its owner alive (it holds the session's shared_ptr), and Asio
// moves the handler out of the operation before it frees the operation's memory, on completion
// and at shutdown alike.
template <class Handler, std::size_t Bytes>
class SlotHandler {
 public:
  using allocator_type = SlotAllocator<void, Bytes>;

  SlotHandler(HandlerSlot<Bytes>& slot, Handler handler)
      : slot_(&slot), handler_(std::move(handler)) {}

  allocator_type get_allocator() const noexcept { return allocator_type(*slot_); }

  template <class... Args>
  void operator()(Args&&... args) {
    handler_(std::forward<Args>(args)...);
  }

 private:
  HandlerSlot<Bytes>* slot_;
  Handler handler_;
};

template <std::size_t Bytes, class Handler>
SlotHandler<Handler, Bytes> InSlot(HandlerSlot<Bytes>& slot, Handler handler) {
  return SlotHandler<Handler, Bytes>(slot, std::move(handler));
}

}  // namespace vrouter::net
