#include "router/app/config.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "router/base/result.h"
#include "router/edge/ip_address.h"

namespace vrouter::app {

std::optional<HostPort> ParseHostPort(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with('[')) {  // [::1]:8443
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || port.empty() || value > 65535) {
    return std::nullopt;
  }
  std::string h(host == "localhost" ? "127.0.0.1" : host);
  if (!edge::IpAddress::Parse(h)) return std::nullopt;
  return HostPort{h, static_cast<std::uint16_t>(value)};
}

base::Result<absl::flat_hash_map<std::string, std::string>> ParseRegionGroups(
    std::string_view text) {
  absl::flat_hash_map<std::string, std::string> out;
  while (!text.empty()) {
    const auto semi = text.find(';');
    std::string_view group_spec = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    if (group_spec.empty()) continue;
    const auto eq = group_spec.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return base::Fail("'" + std::string(group_spec) + "' is not GROUP=REGION,REGION");
    }
    const std::string group(group_spec.substr(0, eq));
    std::string_view regions = group_spec.substr(eq + 1);
    while (!regions.empty()) {
      const auto comma = regions.find(',');
      const std::string region(regions.substr(0, comma));
      regions = comma == std::string_view::npos ? std::string_view() : regions.substr(comma + 1);
      if (region.empty()) return base::Fail("empty region in group '" + group + "'");
      if (!out.emplace(region, group).second) {
        return base::Fail("region '" + region + "' is in more than one group");
      }
    }
  }
  return out;
}

std::string RegionGroupsToString(const absl::flat_hash_map<std::string, std::string>& groups) {
  std::map<std::string, std::vector<std::string>> by_group;
  for (const auto& [region, group] : groups) by_group[group].push_back(region);
  std::string out;
  for (auto& [group, regions] : by_group) {
    std::sort(regions.begin(), regions.end());
    out += (out.empty() ? "" : ";") + group + "=";
    for (std::size_t i = 0; i < regions.size(); ++i) out += (i ? "," : "") + regions[i];
  }
  return out;
}

std::string ToString(const HostPort& hp) {
  return hp.host.find(':') != std::string::npos ? "[" + hp.host + "]:" + std::to_string(hp.port)
                                                : hp.host + ":" + std::to_string(hp.port);
}

namespace {

// HOST[:PORT] or [IPV6][:PORT]; `port` keeps its default when none is given.
base::Status<> ParseRedisHost(std::string_view text, std::string& host, std::uint16_t& port) {
  if (text.starts_with('[')) {  // [IPv6]:port
    const auto close = text.find(']');
    if (close == std::string_view::npos) return base::Fail("unclosed '['");
    host = std::string(text.substr(1, close - 1));
    text.remove_prefix(close + 1);
    if (!text.empty() && !text.starts_with(':')) {
      return base::Fail("expected ':PORT' after ']'");
    }
  } else {
    const auto colon = text.rfind(':');
    host = std::string(text.substr(0, colon));
    text = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
  }
  if (text.starts_with(':')) {
    text.remove_prefix(1);
    unsigned p = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), p);
    if (ec != std::errc() || end != text.data() + text.size() || p == 0 || p > 65535) {
      return base::Fail("port must be a number in [1, 65535]");
    }
    port = static_cast<std::uint16_t>(p);
  }
  if (host.empty()) return base::Fail("missing host");
  return {};
}

// HOST:PORT,HOST:PORT,...
base::Status<> ParseNodes(std::string_view text, std::uint16_t default_port, std::string_view what,
                          std::vector<RedisUrl::Node>& out) {
  while (true) {
    const auto comma = text.find(',');
    RedisUrl::Node node{"", default_port};
    if (auto s = ParseRedisHost(text.substr(0, comma), node.host, node.port); !s.ok()) {
      return base::Fail(std::string(what) + " " + std::to_string(out.size() + 1) + ": " +
                        s.error().message);
    }
    out.push_back(std::move(node));
    if (comma == std::string_view::npos) return {};
    text.remove_prefix(comma + 1);
  }
}

base::Status<> ParseDb(std::string_view db, int& out) {
  const auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), out);
  if (ec != std::errc() || end != db.data() + db.size() || out < 0 || out > 15) {
    return base::Fail("database must be a number in [0, 15]");
  }
  return {};
}

}  // namespace

base::Result<std::optional<RedisUrl>> ParseStoreUrl(std::string_view text) {
  if (text == "memory") return std::nullopt;
  constexpr std::string_view kScheme = "redis://", kTlsScheme = "rediss://",
                             kSentinelScheme = "redis-sentinel://",
                             kTlsSentinelScheme = "rediss-sentinel://",
                             kClusterScheme = "redis-cluster://",
                             kTlsClusterScheme = "rediss-cluster://";
  RedisUrl url;
  bool sentinel = false, cluster = false;
  if (text.starts_with(kTlsScheme)) {
    url.tls = true;
    text.remove_prefix(kTlsScheme.size());
  } else if (text.starts_with(kScheme)) {
    text.remove_prefix(kScheme.size());
  } else if (text.starts_with(kSentinelScheme) || text.starts_with(kTlsSentinelScheme)) {
    sentinel = true;
    url.tls = text.starts_with(kTlsSentinelScheme);  // the Sentinels and the primary
    text.remove_prefix(url.tls ? kTlsSentinelScheme.size() : kSentinelScheme.size());
  } else if (text.starts_with(kClusterScheme) || text.starts_with(kTlsClusterScheme)) {
    cluster = true;
    url.tls = text.starts_with(kTlsClusterScheme);  // every node
    text.remove_prefix(url.tls ? kTlsClusterScheme.size() : kClusterScheme.size());
  } else {
    return base::Fail(
        "expected 'memory', redis[s]://[[USER]:PASSWORD@]HOST:PORT[/DB], "
        "redis[s]-sentinel://[[USER]:PASSWORD@]HOST:PORT,...,HOST:PORT/MASTER[/DB] or "
        "redis[s]-cluster://[[USER]:PASSWORD@]HOST:PORT,...,HOST:PORT");
  }
  if (const auto at = text.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = text.substr(0, at);
    if (const auto colon = auth.find(':'); colon != std::string_view::npos) {
      url.username = std::string(auth.substr(0, colon));  // an ACL user (README, "Redis")
      auth.remove_prefix(colon + 1);
    }
    url.password = std::string(auth);
    if (!url.username.empty() && url.password.empty()) {
      return base::Fail("an ACL user needs its password: redis://USER:PASSWORD@HOST:PORT");
    }
    if (url.username.find_first_of(" \t\r\n") != std::string::npos) {
      return base::Fail("the user name holds whitespace");
    }
    text.remove_prefix(at + 1);
  }
  std::string_view path;
  if (const auto slash = text.find('/'); slash != std::string_view::npos) {
    path = text.substr(slash + 1);
    text = text.substr(0, slash);
  }
  if (cluster) {  // the nodes to ask for the slot map; a cluster has one database
    if (!path.empty()) return base::Fail("a Redis Cluster has one database: no /DB");
    if (auto s = ParseNodes(text, 6379, "node", url.cluster_nodes); !s.ok()) {
      return base::Fail(s.error().message);
    }
    return url;
  }
  if (!sentinel) {
    if (!path.empty()) {
      if (auto s = ParseDb(path, url.db); !s.ok()) return base::Fail(s.error().message);
    }
    if (auto s = ParseRedisHost(text, url.host, url.port); !s.ok()) {
      return base::Fail(s.error().message);
    }
    return url;
  }
  // redis-sentinel://...: the Sentinels (port 26379 by default), the primary's name, a database.
  const auto name_end = path.find('/');
  url.master_name = std::string(path.substr(0, name_end));
  if (url.master_name.empty() || url.master_name.find_first_of(" \t\r\n") != std::string::npos) {
    return base::Fail("expected the primary's name after the Sentinels: .../MASTER[/DB]");
  }
  if (name_end != std::string_view::npos) {
    if (auto s = ParseDb(path.substr(name_end + 1), url.db); !s.ok()) {
      return base::Fail(s.error().message);
    }
  }
  if (auto s = ParseNodes(text, 26379, "Sentinel", url.sentinels); !s.ok()) {
    return base::Fail(s.error().message);
  }
  return url;
}

}  // namespace vrouter::app
