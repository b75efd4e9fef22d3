// Address ranges: the trusted-proxy list (which peers may tell us who the client is) and the
// region table (which region a client address is in). Pure; the caller reads flags and files.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "router/base/result.h"
#include "router/edge/ip_address.h"

namespace vrouter::edge {

// An address range: "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
struct Cidr {
  IpAddress base;  // canonical, host bits zero
  int prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

  // Host bits set beyond the prefix are accepted and cleared ("10.1.2.3/8" is 10.0.0.0/8), as
  // `ip route` does: the operator's range is unambiguous either way, and refusing would fail a
  // deployment over a cosmetic difference. An IPv4-mapped range with a prefix of at least 96
  // ("::ffff:10.0.0.0/104") becomes the IPv4 range (10.0.0.0/8), because the addresses it is
  // matched against are canonical.
  static std::optional<Cidr> Parse(std::string_view text);

  // Canonicalizes `address` first. An IPv4 range never contains an IPv6 address and vice versa:
  // "::/0" is every IPv6 address but no IPv4 one, so "trust everything" is "0.0.0.0/0,::/0".
  bool Contains(const IpAddress& address) const;
  std::string ToString() const;  // "10.0.0.0/8"

  bool operator==(const Cidr&) const = default;
};

// A list of ranges, e.g. the load balancers trusted to set X-Forwarded-For. A linear scan: such
// lists are a handful of entries.
class CidrSet {
 public:
  CidrSet() = default;
  explicit CidrSet(std::vector<Cidr> entries) : entries_(std::move(entries)) {}

  // Comma-separated ranges; spaces and tabs around entries are ignored. Empty text is the empty
  // set; an empty entry ("a,,b", a trailing comma) is an error. The error names the bad entry.
  static base::Result<CidrSet> Parse(std::string_view comma_separated);

  bool Contains(const IpAddress& address) const;
  bool empty() const { return entries_.empty(); }
  const std::vector<Cidr>& entries() const { return entries_; }
  std::string ToString() const;  // "10.0.0.0/8,::1/128", for logs; parses back to the same set

 private:
  std::vector<Cidr> entries_;
};

// Client address -> region ("eu-west"), for region-aware server choice when a client's token has
// no region claim. Parsed from a text file:
//
//   # comment; blank lines are ignored
//   10.0.0.0/8       eu-west
//   10.20.0.0/16     us-east    # the most specific range wins
//   2001:db8::/32    eu-west
//
// One "CIDR REGION" per line, fields separated by spaces or tabs; '#' starts a comment anywhere
// on a line. Regions follow the rule for every region in the router (proto::IsValidId, at most
// proto::kMaxRegionBytes), so any region a video server can declare can be named here (except one
// containing '#' or whitespace). The same range twice is an error, even with the same region: it
// is a mistake in a file edited by hand, and with different regions one of them would be ignored.
//
// Lookup is a linear scan over the ranges, most specific first (the first hit is the longest
// prefix match). A miss over 10k ranges costs about 40 us (measured, -O2), once per accepted
// connection; a table of GeoIP size (~500k ranges) would want a trie or per-length hash maps.
class RegionTable {
 public:
  RegionTable() = default;

  // Errors name the line (1-based) and the problem.
  static base::Result<RegionTable> Parse(std::string_view text);

  // The region of the most specific range containing `address`, if any. The view points into
  // this table.
  std::optional<std::string_view> RegionOf(const IpAddress& address) const;
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    Cidr range;
    std::string region;
  };
  std::vector<Entry> entries_;  // by prefix length, longest first
};

}  // namespace vrouter::edge
