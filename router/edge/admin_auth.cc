#include "router/edge/admin_auth.h"

#include <openssl/crypto.h>

#include <cctype>

namespace vrouter::edge {
namespace {

// Constant time over the token's bytes, so response timing does not reveal a matching prefix.
bool SameToken(std::string_view presented, const std::string& expected) {
  if (expected.empty() || presented.size() != expected.size()) return false;
  return CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

// "Bearer <token>" (scheme case-insensitive, RFC 6750) -> token; anything else -> empty.
std::string_view BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size() || header[kScheme.size()] != ' ') return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return {};
  }
  std::string_view token = header.substr(kScheme.size() + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

}  // namespace

std::string_view AdminAccessName(AdminAccess access) {
  switch (access) {
    case AdminAccess::kNone:
      return "none";
    case AdminAccess::kRead:
      return "read";
    case AdminAccess::kWrite:
      return "write";
  }
  return "none";
}

bool IsLoopbackHost(std::string_view host) {
  // Strip the port: "[::1]:9090" -> "[::1]", "127.0.0.1:9090" -> "127.0.0.1".
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return false;
    return host.substr(0, close + 1) == "[::1]";
  }
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

bool SameOriginOrNone(std::string_view origin, std::string_view host) {
  if (origin.empty()) return true;
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) return false;  // includes "null" (sandboxed pages)
  return origin.substr(scheme_end + 3) == host;
}

AdminAccess GrantAdminAccess(const AdminCredentials& credentials, const AdminCaller& caller) {
  if (!credentials.configured()) {
    return caller.loopback && IsLoopbackHost(caller.host) ? AdminAccess::kWrite
                                                          : AdminAccess::kNone;
  }
  const std::string_view token = BearerToken(caller.authorization);
  if (token.empty()) return AdminAccess::kNone;
  if (SameToken(token, credentials.write_token)) return AdminAccess::kWrite;
  if (SameToken(token, credentials.read_token)) return AdminAccess::kRead;
  return AdminAccess::kNone;
}

}  // namespace vrouter::edge
