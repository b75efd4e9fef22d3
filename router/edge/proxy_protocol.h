// The PROXY protocol header (HAProxy, versions 1 and 2): how a TCP load balancer (AWS NLB,
// HAProxy, nginx stream, Envoy) tells the router the client address of a connection it relays.
// Spec: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
//
// Pure: the caller peeks or reads the first bytes of a connection and calls ParseProxyHeader
// with everything received so far, again after each read while it says kNeedMore, then consumes
// exactly `header.length` bytes; what follows is the client's stream (TLS or HTTP). The caller
// owns the deadline and the read bound (kMaxProxyHeaderBytes).
//
// A listener configured for the PROXY protocol must only be reachable through the load
// balancer: the header is believed as sent, and anyone who can connect directly can claim any
// address.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "router/edge/ip_address.h"

namespace vrouter::edge {

// The most bytes a header may occupy. Version 1 is at most 107 bytes. Version 2 is 16 bytes plus
// a length field of up to 65535 (addresses, then TLVs). The TLVs real load balancers send (AWS
// VPC endpoint id, Azure link id, HAProxy's SSL information with the client certificate's CN,
// the authority, a CRC) are tens to a few hundred bytes, so 4096 leaves room while bounding what
// one unidentified connection can make the router buffer. A longer v2 header is an error.
inline constexpr std::size_t kMaxProxyHeaderBytes = 4096;

enum class ProxyParseStatus { kNeedMore, kOk, kError };

struct ProxyHeader {
  std::size_t length = 0;  // bytes the header occupies (consume exactly these)
  // v2 LOCAL, v2 PROXY with family UNSPEC, v1 UNKNOWN: the balancer's own connection (a health
  // check) or one it cannot describe. No addresses; use the connection's own endpoints.
  bool local = false;
  std::optional<IpAddress> source;  // the client (canonical); set exactly when !local
  std::uint16_t source_port = 0;
  std::optional<IpAddress> destination;  // the address the client connected to
  std::uint16_t destination_port = 0;
  int version = 0;  // 1 or 2
};

struct ProxyParseResult {
  ProxyParseStatus status = ProxyParseStatus::kNeedMore;
  ProxyHeader header;  // meaningful for kOk only
  std::string error;   // for kError: what is wrong, for the log
};

// `bytes` is what the connection has received so far: possibly part of a header, possibly a
// header followed by the client's first bytes.
//
//  - kOk: a complete header of `header.length` bytes starts `bytes`.
//  - kNeedMore: `bytes` is a proper prefix of some valid header (never once kMaxProxyHeaderBytes
//    are there). The verdict is made byte by byte, field by field, so a client that speaks
//    directly ("GET / HTTP/1.1", a TLS ClientHello starting 0x16 0x03) is refused on its first
//    byte or so, rather than waiting for a line end or a timeout.
//  - kError: no valid header starts with `bytes`; close the connection (the spec asks receivers
//    to abort at once so the sender notices).
//
// Strict as the spec asks: v1 fields separated by exactly one space, CRLF only, no leading zeros
// in ports or IPv4 parts, the address family matching TCP4 / TCP6. "PROXY UNKNOWN" may be
// followed by anything up to the CRLF. v2: version 2 only; command LOCAL or PROXY; PROXY with
// TCP over IPv4 or IPv6 gives addresses, with family UNSPEC is treated as LOCAL, with UDP or
// AF_UNIX is an error (this router serves TCP; a UDP or UNIX header means a misconfigured
// balancer). LOCAL ignores the family and addresses, as the spec says. TLVs are skipped, not
// read (the CRC32C TLV, if any, is not checked).
ProxyParseResult ParseProxyHeader(std::span<const std::uint8_t> bytes);

}  // namespace vrouter::edge
