// Who may do what on the admin port. Pure logic: the transport hands over the Authorization
// header and whether the peer is on loopback; the routes ask for the access they need.
//
//   No token configured   loopback peers may read and write; nobody else may use /v1/*.
//   Tokens configured     a bearer token is required, from loopback too: the write token reads
//                         and writes, the read token only reads. A sidecar sharing the pod's
//                         loopback gets nothing without a token.
//
// /healthz, /readyz, /metrics, the dashboard's static files and /v1/whoami are open to everyone
// (probes and Prometheus need no credential; the dashboard page holds no data of its own).
#pragma once

#include <string>
#include <string_view>

namespace vrouter::edge {

enum class AdminAccess { kNone = 0, kRead = 1, kWrite = 2 };

std::string_view AdminAccessName(AdminAccess access);

struct AdminCredentials {
  std::string read_token;   // empty: no read-only credential
  std::string write_token;  // empty: no read-write credential
  bool configured() const { return !read_token.empty() || !write_token.empty(); }
};

// What the transport knows about a request's origin and credential.
struct AdminCaller {
  std::string_view authorization;  // raw Authorization header; empty when absent
  std::string_view host;           // Host header
  bool loopback = false;           // the peer address is 127.0.0.0/8 or ::1
};

// What `caller` may do. A token that matches nothing grants nothing, even on loopback. Access by
// loopback alone also needs a loopback Host header (localhost, 127.x.y.z, [::1]): a browser tricked
// by DNS rebinding into calling the admin port sends the attacker's host name, and gets nothing.
AdminAccess GrantAdminAccess(const AdminCredentials& credentials, const AdminCaller& caller);

// Host header names this machine's loopback: "localhost", "127.0.0.1:9090", "[::1]:9090", ...
bool IsLoopbackHost(std::string_view host);

// A browser's Origin header ("http://host:port") names the same host:port as the Host header.
// Writes from a page of another origin are refused (cross-site request forgery); requests without
// an Origin (curl, scripts) are not browser requests and pass.
bool SameOriginOrNone(std::string_view origin, std::string_view host);

// Shortest token accepted by configuration: 16 characters (e.g. `openssl rand -hex 16` gives 32).
inline constexpr std::size_t kMinAdminTokenLength = 16;

}  // namespace vrouter::edge
