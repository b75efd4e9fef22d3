// floor_echo: the floor of `bench/run rps` (issue 21): the least CPU a WebSocket round trip can
// cost on this machine. One thread, epoll (edge-triggered) and non-blocking sockets, no
// networking library: per round trip one recv, one send, and a share of one epoll_wait.
//
//   floor_echo --listen 127.0.0.1:0 [--threads 1] [--max-message-bytes N]
//
// It speaks what vrouter_load --mode echo needs of RFC 6455 and fails the rest cleanly:
//   * the opening handshake (section 4.2): GET, Host, Upgrade: websocket, Connection: upgrade,
//     a valid Sec-WebSocket-Key, Sec-WebSocket-Version 13 (else 426 naming 13); it answers the
//     subprotocol vrouter.v1 when offered, as the router and echo_baseline do; anything else is
//     answered 400 and closed;
//   * client frames: masked (else 1002), no RSV bits, 7/16/64-bit lengths in their minimal
//     form, at most --max-message-bytes (default 128 KiB, the router's; else 1009 before the
//     payload arrives); text (valid UTF-8, else 1007) and binary messages are echoed unmasked,
//     a ping is answered with a pong of its payload, a pong is ignored, a close is answered with
//     its code (an empty close with an empty one); fragmented messages are refused with 1002;
//   * the answers to everything one read brought go out in one send; what the socket does not
//     take waits in the connection's out buffer for EPOLLOUT, and a connection with more than
//     1 MiB waiting is not read until it drains;
//   * after its close frame the server shuts its side down, discards what still comes and closes
//     the socket at the peer's end of stream or 2 s later; an unfinished upgrade gets 10 s.
// A connection holds nothing between messages but a frame a read cut in two: reads go to one
// buffer, answers are built in another, both the thread's.
//
// Prints {"event":"listening","ws":"ws://HOST:PORT/v1/client","threads":1} on stdout when it
// accepts (the line of echo_baseline), and runs until SIGINT/SIGTERM, then prints
// {"event":"stopped","accepted":N,"messages":M,"short_writes":W,"pauses":P} and exits 0 (W:
// sends that left answers waiting for EPOLLOUT, P: times a connection was not read because of
// them). Loopback benchmarks only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proto/messages.h"
#include "router/edge/utf8.h"
#include "router/edge/ws_frame.h"

namespace vrouter::bench::floor_echo {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadBytes = std::size_t{64} * 1024;
constexpr std::size_t kMaxRequestBytes = std::size_t{8} * 1024;
constexpr std::size_t kMaxPendingOut = std::size_t{1} << 20;
constexpr auto kUpgradeDeadline = std::chrono::seconds(10);
constexpr auto kClosingDeadline = std::chrono::seconds(2);
constexpr auto kSweepEvery = std::chrono::seconds(1);

enum class Phase : std::uint8_t { kUpgrade, kOpen, kClosing };

struct Conn {
  int fd = -1;
  Phase phase = Phase::kUpgrade;
  bool paused = false;   // too much waits in `out`: not read until it drains
  bool shut_wr = false;  // our side is shut down (closing)
  Clock::time_point deadline;
  std::string in;   // the request or frame a read cut, until the rest comes
  std::string out;  // answers the socket did not take yet; `sent` of them are written
  std::size_t sent = 0;
};

char LowerAscii(char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch | 0x20) : ch; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One of the comma-separated tokens of `list` is `token` (case-insensitive when asked).
bool ListHas(std::string_view list, std::string_view token, bool ignore_case) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = Trim(list.substr(0, comma));
    if (ignore_case ? EqualsIgnoreCase(item, token) : item == token) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void AppendFrameHeader(std::string& out, std::uint8_t opcode, std::size_t length) {
  char head[10];
  std::size_t n = 2;
  head[0] = static_cast<char>(0x80 | opcode);
  if (length < 126) {
    head[1] = static_cast<char>(length);
  } else if (length <= 0xFFFF) {
    head[1] = 126;
    head[2] = static_cast<char>(length >> 8);
    head[3] = static_cast<char>(length & 0xFF);
    n = 4;
  } else {
    head[1] = 127;
    for (int i = 0; i < 8; ++i) head[2 + i] = static_cast<char>(length >> (56 - 8 * i));
    n = 10;
  }
  out.append(head, n);
}

// Appends payload ^ mask to out, eight bytes at a time.
void AppendUnmasked(std::string& out, const char* payload, std::size_t length, const char* mask) {
  const std::size_t at = out.size();
  out.resize(at + length);
  char* dst = out.data() + at;
  std::uint32_t mask32;
  std::memcpy(&mask32, mask, 4);
  const std::uint64_t mask64 = (std::uint64_t{mask32} << 32) | mask32;
  std::size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, payload + i, 8);
    word ^= mask64;
    std::memcpy(dst + i, &word, 8);
  }
  for (; i < length; ++i) dst[i] = static_cast<char>(payload[i] ^ mask[i % 4]);
}

class Server {
 public:
  Server(int epoll_fd, int listen_fd, int signal_fd, std::size_t max_message)
      : epoll_fd_(epoll_fd),
        listen_fd_(listen_fd),
        signal_fd_(signal_fd),
        max_message_(max_message),
        read_buf_(kReadBytes) {}

  // The listener (edge-triggered) and the signals in the epoll set.
  bool Register() {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = &listen_fd_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) return false;
    ev.events = EPOLLIN;
    ev.data.ptr = &signal_fd_;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &ev) == 0;
  }

  void Run() {
    std::array<epoll_event, 256> events{};
    auto next_sweep = Clock::now() + kSweepEvery;
    while (!stopping_) {
      const auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(next_sweep - Clock::now());
      const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                               static_cast<int>(std::max<std::int64_t>(0, wait_ms.count())));
      if (n < 0 && errno != EINTR) {
        std::perror("floor_echo: epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i) {
        void* const tag = events[i].data.ptr;
        if (tag == &listen_fd_) {
          AcceptAll();
        } else if (tag == &signal_fd_) {
          stopping_ = true;
        } else {
          OnEvent(*static_cast<Conn*>(tag), events[i].events);
        }
      }
      dead_.clear();  // closed during this batch: no event of the batch refers to them any more
      if (Clock::now() >= next_sweep) {
        Sweep();
        next_sweep = Clock::now() + kSweepEvery;
      }
    }
  }

  std::uint64_t accepted() const { return accepted_; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t short_writes() const { return short_writes_; }
  std::uint64_t pauses() const { return pauses_; }

 private:
  void AcceptAll() {
    accept_stalled_ = false;
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // Out of descriptors or memory: the sweep tries again (no new edge may come).
        if (errno != EAGAIN && errno != EWOULDBLOCK) accept_stalled_ = true;
        return;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1);
      auto conn = std::make_unique<Conn>();
      conn->fd = fd;
      conn->deadline = Clock::now() + kUpgradeDeadline;
      // Registered once for everything: no epoll_ctl while the connection lives.
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = conn.get();
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        continue;
      }
      conns_[fd] = std::move(conn);
      ++accepted_;
    }
  }

  void OnEvent(Conn& c, std::uint32_t events) {
    if (c.fd < 0) return;
    if ((events & EPOLLERR) != 0) return Close(c);
    if ((events & EPOLLOUT) != 0 && c.sent < c.out.size()) {
      Flush(c);
      if (c.fd < 0) return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) ReadAll(c);
  }

  // Reads until the socket is drained (edge-triggered), answering what each read brings.
  void ReadAll(Conn& c) {
    char* const buf = read_buf_.data();
    while (c.fd >= 0 && (c.phase == Phase::kClosing || !c.paused)) {
      const ssize_t n = recv(c.fd, buf, read_buf_.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) Close(c);
        return;
      }
      if (n == 0) return Close(c);  // the peer's end of stream (after our close, or not)
      if (c.phase == Phase::kClosing) continue;  // after a close frame: discarded
      const auto size = static_cast<std::size_t>(n);
      batch_.clear();
      if (c.in.empty()) {
        const std::size_t used = Consume(c, buf, size);
        if (used < size && c.phase != Phase::kClosing) c.in.assign(buf + used, size - used);
      } else {
        c.in.append(buf, size);
        const std::size_t used = Consume(c, c.in.data(), c.in.size());
        c.in.erase(0, used);
      }
      if (c.phase == Phase::kClosing) c.in = std::string();
      Write(c);
      if (c.fd < 0 || size < read_buf_.size()) return;  // a short read drained the socket
    }
  }

  // Parses data (the request, then frames); appends the answers to batch_; returns the bytes
  // used (the rest is an unfinished request or frame).
  std::size_t Consume(Conn& c, const char* data, std::size_t size) {
    std::size_t used = 0;
    if (c.phase == Phase::kUpgrade) {
      used = ConsumeUpgrade(c, std::string_view(data, size));
      if (c.phase != Phase::kOpen) return used;
    }
    return used + ConsumeFrames(c, data + used, size - used);
  }

  std::size_t ConsumeUpgrade(Conn& c, std::string_view data) {
    const auto end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (data.size() > kMaxRequestBytes) RefuseUpgrade(c, "400 Bad Request", "");
      return 0;
    }
    if (end + 4 > kMaxRequestBytes) {
      RefuseUpgrade(c, "400 Bad Request", "");
      return 0;
    }
    std::string_view head = data.substr(0, end + 2);  // every line ends with CRLF
    const auto line_end = head.find("\r\n");
    const std::string_view request_line = head.substr(0, line_end);
    head.remove_prefix(line_end + 2);
    const auto sp1 = request_line.find(' ');
    const auto sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp1 == sp2 || request_line.substr(0, sp1) != "GET" ||
        request_line.substr(sp2 + 1) != "HTTP/1.1") {
      RefuseUpgrade(c, "400 Bad Request", "");
      return 0;
    }
    bool host = false;
    bool upgrade = false;
    bool connection = false;
    bool subprotocol = false;
    std::string_view key;
    std::string_view version;
    while (!head.empty()) {
      const auto eol = head.find("\r\n");
      const std::string_view line = head.substr(0, eol);
      head.remove_prefix(eol + 2);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        RefuseUpgrade(c, "400 Bad Request", "");
        return 0;
      }
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = Trim(line.substr(colon + 1));
      if (EqualsIgnoreCase(name, "host")) {
        host = !value.empty();
      } else if (EqualsIgnoreCase(name, "upgrade")) {
        upgrade = upgrade || ListHas(value, "websocket", true);
      } else if (EqualsIgnoreCase(name, "connection")) {
        connection = connection || ListHas(value, "upgrade", true);
      } else if (EqualsIgnoreCase(name, "sec-websocket-key")) {
        key = value;
      } else if (EqualsIgnoreCase(name, "sec-websocket-version")) {
        version = value;
      } else if (EqualsIgnoreCase(name, "sec-websocket-protocol")) {
        subprotocol = subprotocol || ListHas(value, proto::kSubprotocol, false);
      }
    }
    if (!host || !upgrade || !connection || !edge::IsValidWebSocketKey(key)) {
      RefuseUpgrade(c, "400 Bad Request", "");
      return 0;
    }
    if (version != "13") {
      RefuseUpgrade(c, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
      return 0;
    }
    batch_ += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    batch_ += "Sec-WebSocket-Accept: ";
    batch_ += edge::WebSocketAcceptKey(key);
    batch_ += "\r\n";
    if (subprotocol) {
      batch_ += "Sec-WebSocket-Protocol: ";
      batch_ += proto::kSubprotocol;
      batch_ += "\r\n";
    }
    batch_ += "\r\n";
    c.phase = Phase::kOpen;
    return end + 4;
  }

  void RefuseUpgrade(Conn& c, std::string_view status, std::string_view headers) {
    batch_ += "HTTP/1.1 ";
    batch_ += status;
    batch_ += "\r\n";
    batch_ += headers;
    batch_ += "Content-Length: 0\r\nConnection: close\r\n\r\n";
    StartClosing(c);
  }

  // The close code a frame header calls for (0: none): unmasked, RSV bits, a length not in its
  // minimal form, a fragment, a reserved opcode, a control frame above 125 bytes, too big.
  std::uint16_t FrameError(unsigned b0, unsigned b1, std::uint64_t length) const {
    const bool fin = (b0 & 0x80) != 0;
    const unsigned opcode = b0 & 0x0F;
    const unsigned length7 = b1 & 0x7F;
    if ((b0 & 0x70) != 0 || (b1 & 0x80) == 0) return edge::ws_close::kProtocolError;
    if ((length7 == 126 && length < 126) || (length7 == 127 && length <= 0xFFFF) ||
        (length >> 63) != 0) {
      return edge::ws_close::kProtocolError;
    }
    if ((opcode & 0x8) != 0) {  // close, ping, pong: whole and at most 125 bytes
      if (!fin || length > 125 || opcode > 0xA) return edge::ws_close::kProtocolError;
    } else if (!fin || (opcode != 0x1 && opcode != 0x2)) {
      return edge::ws_close::kProtocolError;  // a fragment, a continuation, a reserved opcode
    }
    if (length > max_message_) return edge::ws_close::kMessageTooBig;
    return 0;
  }

  std::size_t ConsumeFrames(Conn& c, const char* data, std::size_t size) {
    const auto* const u = reinterpret_cast<const unsigned char*>(data);
    std::size_t p = 0;
    while (c.phase == Phase::kOpen && size - p >= 2) {
      const unsigned b0 = u[p];
      const unsigned b1 = u[p + 1];
      const unsigned opcode = b0 & 0x0F;
      std::size_t header = 2;
      std::uint64_t length = b1 & 0x7F;
      if (length == 126) {
        if (size - p < 4) break;
        length = (std::uint64_t{u[p + 2]} << 8) | u[p + 3];
        header = 4;
      } else if (length == 127) {
        if (size - p < 10) break;
        length = 0;
        for (int i = 0; i < 8; ++i) length = (length << 8) | u[p + 2 + i];
        header = 10;
      }
      if (const std::uint16_t code = FrameError(b0, b1, length)) {
        Fail(c, code);
        break;
      }
      const std::size_t need = header + 4 + static_cast<std::size_t>(length);
      if (size - p < need) break;
      const char* const mask = data + p + header;
      const char* const payload = mask + 4;
      const auto n = static_cast<std::size_t>(length);
      p += need;
      switch (opcode) {
        case 0x1:
        case 0x2: {
          const std::size_t start = batch_.size();
          AppendFrameHeader(batch_, static_cast<std::uint8_t>(opcode), n);
          const std::size_t body = batch_.size();
          AppendUnmasked(batch_, payload, n, mask);
          if (opcode == 0x1 &&
              !edge::IsValidUtf8(std::string_view(batch_.data() + body, batch_.size() - body))) {
            batch_.resize(start);
            Fail(c, edge::ws_close::kInvalidPayload);
            return p;
          }
          ++messages_;
          break;
        }
        case 0x9:
          AppendFrameHeader(batch_, 0xA, n);
          AppendUnmasked(batch_, payload, n, mask);
          break;
        case 0xA:
          break;
        default:  // 0x8, close
          OnClose(c, payload, n, mask);
          return p;
      }
    }
    return p;
  }

  void OnClose(Conn& c, const char* payload, std::size_t n, const char* mask) {
    if (n == 0) {
      AppendFrameHeader(batch_, 0x8, 0);
      return StartClosing(c);
    }
    std::string body;
    AppendUnmasked(body, payload, n, mask);
    const auto code = static_cast<std::uint16_t>(
        n >= 2 ? (static_cast<unsigned char>(body[0]) << 8) | static_cast<unsigned char>(body[1])
               : 0);
    if (n == 1 || !edge::IsValidCloseCode(code)) return Fail(c, edge::ws_close::kProtocolError);
    if (!edge::IsValidUtf8(std::string_view(body).substr(2))) {
      return Fail(c, edge::ws_close::kInvalidPayload);
    }
    AppendFrameHeader(batch_, 0x8, 2);
    batch_.append(body, 0, 2);  // the peer's code, echoed
    StartClosing(c);
  }

  // Fails the connection: a close frame with `code`, then the closing phase.
  void Fail(Conn& c, std::uint16_t code) {
    AppendFrameHeader(batch_, 0x8, 2);
    batch_ += static_cast<char>(code >> 8);
    batch_ += static_cast<char>(code & 0xFF);
    StartClosing(c);
  }

  void StartClosing(Conn& c) {
    c.phase = Phase::kClosing;
    c.deadline = Clock::now() + kClosingDeadline;
  }

  // Sends batch_ (the answers of one read) in one call, after what already waits.
  void Write(Conn& c) {
    if (c.sent < c.out.size()) {
      c.out += batch_;
    } else if (!batch_.empty()) {
      const ssize_t n = send(c.fd, batch_.data(), batch_.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Close(c);
      const auto written = static_cast<std::size_t>(std::max<ssize_t>(n, 0));
      if (written < batch_.size()) {
        c.out.assign(batch_, written);
        c.sent = 0;
        ++short_writes_;
      }
    }
    AfterWrite(c);
  }

  void Flush(Conn& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return Close(c);
        break;
      }
      c.sent += static_cast<std::size_t>(n);
    }
    const bool was_paused = c.paused;
    AfterWrite(c);
    if (c.fd >= 0 && was_paused && !c.paused) ReadAll(c);  // no edge will come for what waits
  }

  void AfterWrite(Conn& c) {
    if (c.sent == c.out.size() && !c.out.empty()) {
      c.out = std::string();  // drained: give the memory back
      c.sent = 0;
    }
    const bool paused = c.out.size() - c.sent > kMaxPendingOut;
    if (paused && !c.paused) ++pauses_;
    c.paused = paused;
    if (c.phase == Phase::kClosing && c.out.empty() && !c.shut_wr) {
      c.shut_wr = true;
      shutdown(c.fd, SHUT_WR);
    }
  }

  void Close(Conn& c) {
    if (c.fd < 0) return;
    const int fd = c.fd;
    c.fd = -1;
    close(fd);  // also leaves the epoll set
    dead_.push_back(std::move(conns_[fd]));
  }

  // Deadlines of unfinished upgrades and closings; accept again after running out of fds.
  void Sweep() {
    const auto now = Clock::now();
    for (auto& conn : conns_) {
      if (conn && conn->phase != Phase::kOpen && conn->deadline <= now) Close(*conn);
    }
    dead_.clear();
    if (accept_stalled_) AcceptAll();
  }

  const int epoll_fd_;
  int listen_fd_;  // its address tags the listener's events
  int signal_fd_;  // and this one's the signals'
  const std::size_t max_message_;
  std::vector<char> read_buf_;
  std::string batch_;
  std::vector<std::unique_ptr<Conn>> conns_;  // by fd
  std::vector<std::unique_ptr<Conn>> dead_;
  std::uint64_t accepted_ = 0;
  std::uint64_t messages_ = 0;
  std::uint64_t short_writes_ = 0;  // answers the socket did not take at once
  std::uint64_t pauses_ = 0;        // reading stopped until the out buffer drained
  bool stopping_ = false;
  bool accept_stalled_ = false;
};

int Usage(const char* error) {
  std::fprintf(stderr,
               "floor_echo: %s\nusage: floor_echo --listen HOST:PORT [--threads 1] "
               "[--max-message-bytes N]\n",
               error);
  return 2;
}

int Main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  long max_message = 128L * 1024;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (arg == "--threads" && i + 1 < argc) {
      if (std::string_view(argv[++i]) != "1") return Usage("one thread by design: --threads 1");
    } else if (arg == "--max-message-bytes" && i + 1 < argc) {
      max_message = std::strtol(argv[++i], nullptr, 10);
      if (max_message < 1 || max_message > 16L * 1024 * 1024) {
        return Usage("--max-message-bytes: 1 .. 16777216");
      }
    } else {
      return Usage(("unknown argument '" + std::string(arg) + "'").c_str());
    }
  }
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return Usage("--listen HOST:PORT");
  std::string host = listen.substr(0, colon);
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  const long port = std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (end == listen.c_str() + colon + 1 || *end != '\0' || port < 0 || port > 65535) {
    return Usage("--listen: bad port");
  }
  sockaddr_storage address{};
  socklen_t address_size = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&address);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) return Usage("--listen: bad IPv6");
    address_size = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&address);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) return Usage("--listen: bad IPv4");
    address_size = sizeof *a;
  }

  // As many sockets as the hard limit allows.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  const int listen_fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(listen_fd, reinterpret_cast<sockaddr*>(&address), address_size) != 0 ||
      ::listen(listen_fd, 4096) != 0) {
    std::perror(("floor_echo: --listen " + listen).c_str());
    return 2;
  }
  address_size = sizeof address;
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &address_size);
  const auto bound_port =
      ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&address)->sin_port);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (signal_fd < 0 || epoll_fd < 0) {
    std::perror("floor_echo: signalfd/epoll");
    return 2;
  }
  Server server(epoll_fd, listen_fd, signal_fd, static_cast<std::size_t>(max_message));
  if (!server.Register()) {
    std::perror("floor_echo: epoll_ctl");
    return 2;
  }

  std::printf("{\"event\":\"listening\",\"ws\":\"ws://%s%s%s:%u/v1/client\",\"threads\":1}\n",
              v6 ? "[" : "", host.c_str(), v6 ? "]" : "", bound_port);
  std::fflush(stdout);
  server.Run();
  std::printf(
      "{\"event\":\"stopped\",\"accepted\":%llu,\"messages\":%llu,\"short_writes\":%llu,"
      "\"pauses\":%llu}\n",
      static_cast<unsigned long long>(server.accepted()),
      static_cast<unsigned long long>(server.messages()),
      static_cast<unsigned long long>(server.short_writes()),
      static_cast<unsigned long long>(server.pauses()));
  return 0;
}

}  // namespace
}  // namespace vrouter::bench::floor_echo

int main(int argc, char** argv) { return vrouter::bench::floor_echo::Main(argc, argv); }
