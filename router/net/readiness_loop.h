// Readiness of the WebSocket sessions' sockets, from an epoll set of the router's own, one per
// io_context (thread).
//
// Why not Asio's reactor for these: every socket.async_wait() is a non-speculative reactor
// operation, and Asio's epoll_reactor::start_op re-registers the descriptor (EPOLL_CTL_MOD) for
// each one: one epoll_ctl per round trip, on top of the recv and the send (strace: 43,985
// recvfrom, 43,988 sendmsg, 43,991 epoll_ctl in 3 s), plus a heap operation and Asio's
// per-descriptor state (168 bytes) for every connection. Here a session's descriptor is added
// once, edge-triggered for reading, writing and hang-up, and stays until it closes; the loop's
// own epoll descriptor is what Asio waits on, once per batch of ready sockets. Asio's public API
// offers no wait that relies on an edge-triggered registration, hence this file (see
// BENCHMARKS.md, "The floor").
//
// Single-threaded: every call on a loop comes from its io_context's thread (the router runs one
// thread per io_context), except the shutdown the io_context's destruction makes.
#pragma once

#include <cstdint>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace vrouter::net {

// What the loop tells about a descriptor it watches.
class ReadinessWaiter {
 public:
  // `events`: the EPOLL* bits that became true (edge-triggered: each is told once per change,
  // so a waiter reads or writes until the socket says EAGAIN before it waits again).
  virtual void OnReady(std::uint32_t events) = 0;
  // The io_context is being destroyed with the descriptor still watched: close it, touch nothing
  // else (the loop lets go of the waiter's keepalive right after).
  virtual void OnLoopShutdown() = 0;

 protected:
  ~ReadinessWaiter() = default;
};

class ReadinessLoop {
 public:
  // The loop of `io` (made on first use; destroyed with the io_context).
  static ReadinessLoop& Of(boost::asio::io_context& io);

  // Watches `fd` for `waiter` until Remove(fd), holding `keepalive` meanwhile (what keeps the
  // waiter alive while nothing else refers to it). False, with errno set, when epoll refuses it.
  virtual bool Add(int fd, ReadinessWaiter* waiter, std::shared_ptr<void> keepalive) = 0;
  // Stops watching `fd` (before the caller closes it). Its keepalive is released once the
  // handler running now has returned: events of the current batch may still name the waiter.
  virtual void Remove(int fd) = 0;
  virtual std::size_t size() const = 0;

 protected:
  ~ReadinessLoop() = default;
};

}  // namespace vrouter::net
