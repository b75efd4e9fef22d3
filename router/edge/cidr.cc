#include "router/edge/cidr.h"

#include <algorithm>
#include <tuple>

#include "proto/codec.h"
#include "proto/video_server_messages.h"
#include "router/base/result.h"

namespace vrouter::edge {
namespace {

constexpr std::string_view kBlanks = " \t";

std::string_view Trim(std::string_view s) {
  const std::size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

// Quotes operator text in an error message, cut short so that a binary file given by mistake
// does not produce a megabyte of error.
std::string Quoted(std::string_view s) {
  constexpr std::size_t kMax = 64;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, kMax)) + "...'";
}

// Decimal 0..max, without sign or leading zeros.
std::optional<int> ParsePrefix(std::string_view s, int max) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// Clears the bits of `a` beyond the first `prefix`.
IpAddress Masked(IpAddress a, int prefix) {
  const int total = a.v6 ? 128 : 32;
  for (int bit = prefix; bit < total; ++bit) {
    a.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return a;
}

// Whether the first `prefix` bits of `a` and `b` are equal.
bool SamePrefix(const IpAddress& a, const IpAddress& b, int prefix) {
  const int whole = prefix / 8;
  if (!std::equal(a.bytes.begin(), a.bytes.begin() + whole, b.bytes.begin())) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return (a.bytes[whole] & mask) == (b.bytes[whole] & mask);
}

// Cidr::Contains for an address already canonical: the scans over many ranges canonicalize the
// address once.
bool ContainsCanonical(const Cidr& c, const IpAddress& a) {
  return a.v6 == c.base.v6 && SamePrefix(a, c.base, c.prefix);
}

}  // namespace

std::optional<Cidr> Cidr::Parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  const bool v6_text = address_text.find(':') != std::string_view::npos;
  std::optional<IpAddress> address = IpAddress::Parse(address_text);
  if (!address) return std::nullopt;
  const int max = v6_text ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::optional<int> p = ParsePrefix(text.substr(slash + 1), max);
    if (!p) return std::nullopt;
    prefix = *p;
  }
  if (v6_text && !address->v6) {
    // Written as ::ffff:a.b.c.d; Parse already made it IPv4.
    if (prefix >= 96) {
      prefix -= 96;
    } else {
      // Wider than the mapped block: an IPv6 range that merely starts with a mapped address.
      IpAddress mapped;
      mapped.v6 = true;
      mapped.bytes[10] = mapped.bytes[11] = 0xff;
      std::copy(address->bytes.begin(), address->bytes.begin() + 4, mapped.bytes.begin() + 12);
      address = mapped;
    }
  }
  return Cidr{Masked(*address, prefix), prefix};
}

bool Cidr::Contains(const IpAddress& address) const {
  return ContainsCanonical(*this, address.Normalized());
}

std::string Cidr::ToString() const { return base.ToString() + "/" + std::to_string(prefix); }

base::Result<CidrSet> CidrSet::Parse(std::string_view comma_separated) {
  std::vector<Cidr> entries;
  if (Trim(comma_separated).empty()) return CidrSet();
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = comma_separated.find(',', start);
    const std::string_view entry = Trim(comma_separated.substr(start, comma - start));
    if (entry.empty()) return base::Fail(std::string("empty entry in the list of address ranges"));
    std::optional<Cidr> cidr = Cidr::Parse(entry);
    if (!cidr) {
      return base::Fail(Quoted(entry) +
                        " is not an address range (an address, or address/prefix-length)");
    }
    entries.push_back(*cidr);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return CidrSet(std::move(entries));
}

bool CidrSet::Contains(const IpAddress& address) const {
  const IpAddress a = address.Normalized();
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Cidr& c) { return ContainsCanonical(c, a); });
}

std::string CidrSet::ToString() const {
  std::string out;
  for (const Cidr& c : entries_) {
    if (!out.empty()) out += ',';
    out += c.ToString();
  }
  return out;
}

base::Result<RegionTable> RegionTable::Parse(std::string_view text) {
  struct Parsed {
    Entry entry;
    int line;
  };
  std::vector<Parsed> parsed;
  int line_number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t newline = text.find('\n', start);
    std::string_view line = text.substr(start, newline - start);
    start = newline == std::string_view::npos ? text.size() : newline + 1;
    ++line_number;
    const std::string where = "line " + std::to_string(line_number) + ": ";

    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;

    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    while (pos < line.size()) {
      const std::size_t end = std::min(line.find_first_of(kBlanks, pos), line.size());
      fields.push_back(line.substr(pos, end - pos));
      pos = line.find_first_not_of(kBlanks, end);
      if (pos == std::string_view::npos) break;
    }
    if (fields.size() != 2) {
      return base::Fail(where + "expected 'CIDR REGION', found " + std::to_string(fields.size()) +
                        " field" + (fields.size() == 1 ? "" : "s"));
    }
    std::optional<Cidr> range = Cidr::Parse(fields[0]);
    if (!range) {
      return base::Fail(where + Quoted(fields[0]) +
                        " is not an address range (address/prefix-length)");
    }
    if (!proto::IsValidId(fields[1]) || fields[1].size() > proto::kMaxRegionBytes) {
      return base::Fail(where + "region " + Quoted(fields[1]) + " must be 1-" +
                        std::to_string(proto::kMaxRegionBytes) +
                        " bytes without control characters");
    }
    parsed.push_back({{*range, std::string(fields[1])}, line_number});
  }

  // Most specific first; equal ranges side by side (then in file order) to find duplicates.
  auto key = [](const Parsed& p) {
    return std::make_tuple(-p.entry.range.prefix, p.entry.range.base.v6, p.entry.range.base.bytes,
                           p.line);
  };
  std::sort(parsed.begin(), parsed.end(),
            [&](const Parsed& a, const Parsed& b) { return key(a) < key(b); });
  RegionTable table;
  table.entries_.reserve(parsed.size());
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    if (i > 0 && parsed[i].entry.range == parsed[i - 1].entry.range) {
      return base::Fail("line " + std::to_string(parsed[i].line) + ": " +
                        parsed[i].entry.range.ToString() + " is already mapped on line " +
                        std::to_string(parsed[i - 1].line));
    }
    table.entries_.push_back(std::move(parsed[i].entry));
  }
  return table;
}

std::optional<std::string_view> RegionTable::RegionOf(const IpAddress& address) const {
  const IpAddress a = address.Normalized();
  for (const Entry& e : entries_) {
    if (ContainsCanonical(e.range, a)) return e.region;
  }
  return std::nullopt;
}

}  // namespace vrouter::edge
