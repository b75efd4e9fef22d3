// One non-blocking read or write, on a bare socket or through TlsConnection, as one result: the
// bytes moved, or the readiness to wait for, or the end. The router's WebSocket sessions and the
// benchmarks' clients wait for readiness themselves and use these.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/system/error_code.hpp>
#include <cerrno>
#include <cstddef>
#include <optional>

#include "router/net/tls_connection.h"

namespace vrouter::net {

struct IoResult {
  std::size_t bytes = 0;
  // Nothing now: wait until the socket is readable (or writable: TLS may need either), then retry.
  std::optional<Socket::wait_type> wait;
  boost::system::error_code error;  // the connection is gone (eof) or broken
  bool drained = false;             // a read: nothing more to read without waiting
};

inline IoResult FromTlsStep(const TlsStep& step) {
  IoResult r;
  switch (step.kind) {
    case TlsStep::Kind::kDone:
      r.bytes = step.bytes;
      break;
    case TlsStep::Kind::kWantRead:
      r.wait = Socket::wait_read;
      break;
    case TlsStep::Kind::kWantWrite:
      r.wait = Socket::wait_write;
      break;
    case TlsStep::Kind::kFailed:
      r.error = step.error;
      break;
  }
  return r;
}

// A non-blocking recv, send or sendmsg, retried on EINTR; EAGAIN means waiting for `would_block`.
template <class Call>
IoResult FromSyscall(Socket::wait_type would_block, Call call) {
  IoResult r;
  for (;;) {
    const ssize_t n = call();
    if (n >= 0) {
      r.bytes = static_cast<std::size_t>(n);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.wait = would_block;
    } else {
      r.error = {errno, boost::system::system_category()};
    }
    return r;
  }
}

// recv and sendmsg straight to the kernel. glibc's wrappers are thread cancellation points:
// around every call they switch asynchronous cancellation on and off, two atomic
// compare-and-swaps on the thread's state, ~4 % of the router's user time per lookup in `perf`.
// The router never cancels a thread. Sanitizer builds keep the wrappers, which their
// interceptors check (MemorySanitizer must see what recv wrote).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VROUTER_SOCKET_CALLS_INTERCEPTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define VROUTER_SOCKET_CALLS_INTERCEPTED 1
#endif
#endif

inline ssize_t RecvUncancellable(int fd, void* data, std::size_t size) {
#ifdef VROUTER_SOCKET_CALLS_INTERCEPTED
  return ::recv(fd, data, size, 0);
#else
  return ::syscall(SYS_recvfrom, fd, data, size, 0, nullptr, nullptr);
#endif
}

inline ssize_t SendmsgUncancellable(int fd, const msghdr* message, int flags) {
#ifdef VROUTER_SOCKET_CALLS_INTERCEPTED
  return ::sendmsg(fd, message, flags);
#else
  return ::syscall(SYS_sendmsg, fd, message, flags);
#endif
}

}  // namespace vrouter::net
