// IP addresses as plain values: what the PROXY protocol header, X-Forwarded-For and the region
// table say about a client. Parsing and printing only; no sockets.
//
// Canonical form: a dual-stack listener (bound to ::) sees IPv4 clients as IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d), a v4-only listener sees the same clients as a.b.c.d. Every factory
// here returns the plain IPv4 address for a mapped one, and equality and hashing compare canonical
// forms, so a client is the same key, matches the same CIDRs and maps to the same region whichever
// listener accepted it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace vrouter::edge {

struct IpAddress {
  bool v6 = false;
  // Network byte order. IPv4 uses bytes[0..3]; the rest stays zero.
  std::array<std::uint8_t, 16> bytes{};

  // IPv4 dotted quad or IPv6 text (RFC 4291, including the ::a.b.c.d forms). Refuses empty text,
  // whitespace, brackets, ports and zone ids ("fe80::1%eth0": a zone names an interface of the
  // sending host and means nothing here). IPv4 parts with leading zeros ("010.0.0.1") are refused:
  // some tools read them as octal, so the operator's intent is ambiguous.
  static std::optional<IpAddress> Parse(std::string_view text);
  // As Parse, restricted to one textual family: ParseV4 takes only dotted quads, ParseV6 only IPv6
  // text (whose result is still canonical: ParseV6("::ffff:1.2.3.4") is 1.2.3.4). The PROXY v1
  // header needs this, as its TCP4 / TCP6 keyword fixes the family of the text.
  static std::optional<IpAddress> ParseV4(std::string_view text);
  static std::optional<IpAddress> ParseV6(std::string_view text);

  // From bytes in network order, e.g. asio's address_v6::to_bytes(). FromV6Bytes canonicalizes.
  static IpAddress FromV4Bytes(std::span<const std::uint8_t, 4> b);
  static IpAddress FromV6Bytes(std::span<const std::uint8_t, 16> b);

  // True for ::ffff:a.b.c.d (never for a canonical address).
  bool IsV4Mapped() const;
  // The canonical form: mapped IPv6 turned into IPv4, unused IPv4 bytes zeroed. For values filled
  // in by hand; the factories already return canonical addresses.
  IpAddress Normalized() const;
  // "192.0.2.1", "2001:db8::1" (RFC 5952: lower case, longest zero run compressed).
  std::string ToString() const;

  // Compares canonical forms: ::ffff:1.2.3.4 == 1.2.3.4.
  friend bool operator==(const IpAddress& a, const IpAddress& b);

  // Hashes the canonical form, consistently with ==, so it can key absl::flat_hash_map.
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& a) {
    const IpAddress n = a.Normalized();
    return H::combine(std::move(h), n.v6, n.bytes);
  }
};

}  // namespace vrouter::edge
