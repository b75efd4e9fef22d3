// The client address behind HTTP load balancers: X-Forwarded-For, read only as far as it can be
// believed.
//
// Each proxy appends the address it received the connection from, so the list reads
// "client, proxy1, proxy2" and the connection's peer is the last proxy. Anyone can put anything
// at the left of the list (a client sends its own X-Forwarded-For), so only entries appended by
// proxies we trust say something true: walk from the right while the hop is a trusted proxy.
#pragma once

#include <optional>
#include <string_view>

#include "router/edge/cidr.h"
#include "router/edge/ip_address.h"

namespace vrouter::edge {

// The client of a connection from `peer` that carries `xff_header_value`. Several X-Forwarded-For
// headers on one request are one list: join their values with "," in order before calling.
//
//  - `peer` not in `trusted` (or `trusted` empty): the header is ignored; returns `peer`.
//  - otherwise walks the list right to left, skipping entries that are trusted proxies, and
//    returns the first entry that is not; when every entry is trusted, the left-most one.
//  - a malformed entry stops the walk: nothing at or left of it was written by a proxy we trust,
//    so the result is the last entry before it (the right-most trustworthy address, itself a
//    trusted proxy), or nullopt when the right-most entry is malformed.
//  - nullopt also when the peer is trusted but the header is empty or absent ("").
//
// So nullopt means "a trusted proxy sent this connection without naming a usable client"; most
// callers want `.value_or(peer)`, and may count it.
//
// An entry is an IPv4 or IPv6 address, an IPv6 address in brackets ("[2001:db8::1]"), with
// optional spaces or tabs around it. Ports ("192.0.2.1:443", "[2001:db8::1]:443", sent by some
// cloud gateways), "unknown" and obfuscated identifiers are malformed. Every address returned,
// `peer` included, is canonical (IPv4-mapped addresses turned into IPv4).
std::optional<IpAddress> ClientFromForwardedFor(std::string_view xff_header_value,
                                                const IpAddress& peer, const CidrSet& trusted);

}  // namespace vrouter::edge
