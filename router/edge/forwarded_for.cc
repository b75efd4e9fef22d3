#include "router/edge/forwarded_for.h"

namespace vrouter::edge {
namespace {

std::optional<IpAddress> ParseEntry(std::string_view entry) {
  const std::size_t first = entry.find_first_not_of(" \t");
  if (first == std::string_view::npos) return std::nullopt;
  entry = entry.substr(first, entry.find_last_not_of(" \t") - first + 1);
  if (entry.size() >= 2 && entry.front() == '[' && entry.back() == ']') {
    return IpAddress::ParseV6(entry.substr(1, entry.size() - 2));
  }
  return IpAddress::Parse(entry);
}

}  // namespace

std::optional<IpAddress> ClientFromForwardedFor(std::string_view xff_header_value,
                                                const IpAddress& peer, const CidrSet& trusted) {
  if (!trusted.Contains(peer)) return peer.Normalized();
  std::optional<IpAddress> last_good;
  std::string_view rest = xff_header_value;
  while (true) {  // an empty value is one malformed entry: nullopt, as documented
    const std::size_t comma = rest.rfind(',');
    const std::string_view entry = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
    const std::optional<IpAddress> address = ParseEntry(entry);
    if (!address) return last_good;
    if (!trusted.Contains(*address)) return address;
    last_good = address;
    if (comma == std::string_view::npos) return last_good;  // all trusted: the left-most
    rest = rest.substr(0, comma);
  }
}

}  // namespace vrouter::edge
