#include "router/edge/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace vrouter::edge {
namespace {

// Longest IPv6 text: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (INET6_ADDRSTRLEN - 1).
constexpr std::size_t kMaxTextBytes = 45;

constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// inet_pton wants a NUL-terminated string, so the text is copied; text with a NUL inside would
// otherwise parse as its prefix ("1.2.3.4\0junk"). glibc's inet_pton accepts exactly the forms
// documented on Parse (no leading zeros in IPv4 parts, no zone ids, no whitespace).
bool Pton(int family, std::string_view text, void* out) {
  if (text.empty() || text.size() > kMaxTextBytes || text.find('\0') != std::string_view::npos) {
    return false;
  }
  char buffer[kMaxTextBytes + 1];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return inet_pton(family, buffer, out) == 1;
}

}  // namespace

std::optional<IpAddress> IpAddress::ParseV4(std::string_view text) {
  std::array<std::uint8_t, 4> b{};
  if (!Pton(AF_INET, text, b.data())) return std::nullopt;
  return FromV4Bytes(b);
}

std::optional<IpAddress> IpAddress::ParseV6(std::string_view text) {
  std::array<std::uint8_t, 16> b{};
  if (!Pton(AF_INET6, text, b.data())) return std::nullopt;
  return FromV6Bytes(b);
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  // IPv6 text always has a colon and IPv4 text never does.
  return text.find(':') == std::string_view::npos ? ParseV4(text) : ParseV6(text);
}

IpAddress IpAddress::FromV4Bytes(std::span<const std::uint8_t, 4> b) {
  IpAddress a;
  std::copy(b.begin(), b.end(), a.bytes.begin());
  return a;
}

IpAddress IpAddress::FromV6Bytes(std::span<const std::uint8_t, 16> b) {
  IpAddress a;
  a.v6 = true;
  std::copy(b.begin(), b.end(), a.bytes.begin());
  return a.Normalized();
}

bool IpAddress::IsV4Mapped() const {
  return v6 && std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin());
}

IpAddress IpAddress::Normalized() const {
  IpAddress n;
  if (IsV4Mapped()) {
    std::copy(bytes.begin() + 12, bytes.end(), n.bytes.begin());
  } else if (!v6) {
    std::copy(bytes.begin(), bytes.begin() + 4, n.bytes.begin());
  } else {
    n = *this;
  }
  return n;
}

std::string IpAddress::ToString() const {
  char buffer[kMaxTextBytes + 1];
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof(buffer)) == nullptr) {
    return {};  // cannot happen: the buffer fits the longest form
  }
  return buffer;
}

bool operator==(const IpAddress& a, const IpAddress& b) {
  const IpAddress na = a.Normalized();
  const IpAddress nb = b.Normalized();
  return na.v6 == nb.v6 && na.bytes == nb.bytes;
}

}  // namespace vrouter::edge
