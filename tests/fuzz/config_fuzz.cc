// libFuzzer target: the replica's configuration parser (router/app/settings.h): ParseServeArgs and
// the parsers of single values it uses, ParseHostPort, ParseStoreUrl, ParseRegionGroups and
// (router/edge/rate_limit.h) ParseRateLimits.
// Flags and VROUTER_* variables come from operators, manifests and templating, so a bad value
// must be refused with a message naming it, never crash, throw or yield a half-valid Config.
//
// Input format: lines separated by '\n' or NUL (argv and environment entries cannot hold NUL).
//   VROUTER_NAME=VALUE  an environment variable (the last one of a name wins);
//   #hw=N               the hardware thread count in the HostFacts given to ParseServeArgs
//                       (default 4);
//   anything else       one argv entry, in order (empty lines are empty entries).
// Each entry and each variable's value is also fed to the three value parsers, and so is the
// whole input (which may hold NUL and newlines).
//
// Invariants: exactly one of config, error and help is set, the one set being non-empty; a Config
// respects the rules ParseServeArgs enforces; a parsed host:port, Redis URL or region-group map
// prints back to text that parses to the same value.
//
// Nothing here touches the filesystem or blocks: ParseServeArgs only records --tls-cert,
// --tls-key, --video-servers, --auth-keys-dir and --region-cidrs as paths (Server::Create reads
// them), the settings table reads no response or config files, and hosts must be numeric (no DNS).
// The one system call is if_nametoindex, for an IPv6 scope id ("[fe80::1%eth0]:80"), from
// boost::asio::ip::make_address.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target config_fuzz
//   build/fuzz/tests/config_fuzz -max_total_time=600 tests/fuzz/corpus/config
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "router/app/config.h"
#include "router/app/settings.h"
#include "router/edge/rate_limit.h"
#include "router/store/gossip_auth.h"

namespace {

namespace app = vrouter::app;

// Command lines and environments are a few KiB; this bounds the cost of one run.
constexpr std::size_t kMaxInputBytes = 64 * 1024;
constexpr std::size_t kMaxEntries = 1024;
constexpr unsigned kDefaultHardwareThreads = 4;

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "config_fuzz: %s\n  %.*s\n", what,
               static_cast<int>(std::min<std::size_t>(detail.size(), 2000)), detail.data());
  std::abort();
}

void CheckHostPort(std::string_view text) {
  const std::optional<app::HostPort> hp = app::ParseHostPort(text);
  if (!hp) return;
  if (hp->host.empty()) Fail("ParseHostPort: empty host", text);
  const std::string printed = app::ToString(*hp);
  const std::optional<app::HostPort> again = app::ParseHostPort(printed);
  if (!again || !(*again == *hp)) Fail("ParseHostPort(ToString(hp)) != hp", printed);
}

void CheckRedisUrl(const app::RedisUrl& url, std::string_view text) {
  for (const auto& n : url.cluster_nodes) {
    if (n.host.empty() || n.port == 0) Fail("ParseStoreUrl: a cluster node without address", text);
  }
  if (!url.cluster_nodes.empty()) {
    if (!url.sentinels.empty() || url.db != 0) Fail("ParseStoreUrl: cluster mixed", text);
  } else if (url.sentinels.empty()) {
    if (url.host.empty()) Fail("ParseStoreUrl: empty host", text);
    if (url.port == 0) Fail("ParseStoreUrl: port 0", text);
  } else {
    for (const auto& s : url.sentinels) {
      if (s.host.empty() || s.port == 0) Fail("ParseStoreUrl: a Sentinel without address", text);
    }
    if (url.master_name.empty() || url.master_name.find_first_of("/ \t\r\n") != std::string::npos) {
      Fail("ParseStoreUrl: a primary's name that cannot be printed back", text);
    }
  }
  if (url.db < 0 || url.db > 15) Fail("ParseStoreUrl: db outside [0, 15]", text);
  if (!url.username.empty() && url.password.empty()) Fail("ParseStoreUrl: user, no password", text);
  if (url.username.find_first_of(": \t\r\n") != std::string::npos) {
    Fail("ParseStoreUrl: a user name that cannot be printed back", text);
  }
}

void CheckStoreUrl(std::string_view text) {
  const auto parsed = app::ParseStoreUrl(text);
  if (const auto* error = parsed.error_message()) {
    if (error->empty()) Fail("ParseStoreUrl: empty error", text);
    return;
  }
  const std::optional<app::RedisUrl>& url = std::get<0>(parsed);
  if (!url) {
    if (text != "memory") Fail("ParseStoreUrl: the memory store from another text", text);
    return;
  }
  CheckRedisUrl(*url, text);
  // Hosts are not validated here (names are resolved at start-up), so a host holding '[' or ']'
  // cannot be printed back unambiguously; such a host never resolves anyway.
  auto host = [](const std::string& h) {
    return h.find(':') != std::string::npos ? "[" + h + "]" : h;
  };
  std::string printed;
  if (!url->cluster_nodes.empty()) {
    printed = url->tls ? "rediss-cluster://" : "redis-cluster://";
    if (!url->password.empty()) printed += url->username + ":" + url->password + "@";
    for (std::size_t i = 0; i < url->cluster_nodes.size(); ++i) {
      const auto& n = url->cluster_nodes[i];
      if (n.host.find_first_of("[]") != std::string::npos) return;
      printed += (i ? "," : "") + host(n.host) + ":" + std::to_string(n.port);
    }
  } else if (url->sentinels.empty()) {
    if (url->host.find_first_of("[]") != std::string::npos) return;
    printed = url->tls ? "rediss://" : "redis://";
    if (!url->password.empty()) printed += url->username + ":" + url->password + "@";
    printed += host(url->host) + ":" + std::to_string(url->port) + "/" + std::to_string(url->db);
  } else {
    printed = url->tls ? "rediss-sentinel://" : "redis-sentinel://";
    if (!url->password.empty()) printed += url->username + ":" + url->password + "@";
    for (std::size_t i = 0; i < url->sentinels.size(); ++i) {
      const auto& s = url->sentinels[i];
      if (s.host.find_first_of("[]") != std::string::npos) return;
      printed += (i ? "," : "") + host(s.host) + ":" + std::to_string(s.port);
    }
    printed += "/" + url->master_name + "/" + std::to_string(url->db);
  }
  const auto again = app::ParseStoreUrl(printed);
  const auto* again_url = std::get_if<0>(&again);
  if (again_url == nullptr || !*again_url || !(**again_url == *url)) {
    Fail("ParseStoreUrl(print(url)) != url", printed);
  }
}

void CheckRegionGroups(std::string_view text) {
  const auto parsed = app::ParseRegionGroups(text);
  if (const auto* error = parsed.error_message()) {
    if (error->empty()) Fail("ParseRegionGroups: empty error", text);
    return;
  }
  const auto& groups = std::get<0>(parsed);
  for (const auto& [region, group] : groups) {
    if (region.empty() || group.empty()) Fail("ParseRegionGroups: empty region or group", text);
  }
  const std::string printed = app::RegionGroupsToString(groups);
  const auto again = app::ParseRegionGroups(printed);
  const auto* again_groups = std::get_if<0>(&again);
  if (again_groups == nullptr || *again_groups != groups) {
    Fail("ParseRegionGroups(print(groups)) != groups", printed);
  }
}

void CheckRateLimits(std::string_view text) {
  const auto parsed = vrouter::edge::ParseRateLimits(text, vrouter::edge::RateLimits::Defaults());
  if (const auto* error = parsed.error_message()) {
    if (error->empty()) Fail("ParseRateLimits: empty error", text);
  }
}

void CheckValueParsers(std::string_view text) {
  CheckHostPort(text);
  CheckStoreUrl(text);
  CheckRegionGroups(text);
  CheckRateLimits(text);
}

// The rules ParseServeArgs promises for a Config it returns.
void CheckConfig(const app::Config& c, std::string_view input) {
  if (!c.listen && !c.tls_listen) Fail("Config without --listen or --tls-listen", input);
  if (c.tls_certs.size() != c.tls_keys.size() || c.tls_certs.size() > 2) {
    Fail("Config with unpaired certificates and keys", input);
  }
  if (c.tls_listen.has_value() != !c.tls_certs.empty()) {
    Fail("Config with --tls-listen but no cert, or a cert but no --tls-listen", input);
  }
  for (const auto& path : c.tls_certs) {
    if (path.empty()) Fail("Config with an empty certificate path", input);
  }
  for (const auto& path : c.tls_keys) {
    if (path.empty()) Fail("Config with an empty key path", input);
  }
  if (c.threads < 1 || c.threads > 256) Fail("Config threads outside [1, 256]", input);
  if (c.backlog < 1 || c.backlog > 65535) Fail("Config backlog outside [1, 65535]", input);
  const auto& limits = c.limits;
  if (limits.max_message_bytes < 1024 || limits.max_send_queue_bytes < limits.max_message_bytes) {
    Fail("Config max_message_bytes / send_queue_bytes", input);
  }
  if (limits.max_batch < 1 || limits.max_watches < 1 || limits.max_pings_per_second < 1) {
    Fail("Config limit of 0", input);
  }
  if (limits.max_connections == 0) Fail("Config without a connection cap", input);
  if (c.token_leeway_seconds < 0 || c.token_leeway_seconds > 3600) {
    Fail("Config token leeway outside [0, 3600]", input);
  }
  if (c.replica_id.empty() || c.replica_id.size() > 64) {
    Fail("Config replica id empty or above 64 bytes", input);
  }
  if (c.redis) CheckRedisUrl(*c.redis, input);
  if (c.redis && c.replica_key.size() < vrouter::store::kMinReplicaKeyBytes) {
    Fail("Config with a redis store and no replica key", input);
  }
  if (c.redis_timeout.count() < 10 || c.lease_ttl.count() < 1000) {
    Fail("Config redis timeout or lease ttl too short", input);
  }
  if (!c.admin_token.empty() && c.admin_token == c.admin_read_token) {
    Fail("Config with equal admin tokens", input);
  }
  for (const auto& origin : c.allowed_origins) {
    if (!origin.starts_with("https://") && !origin.starts_with("http://")) {
      Fail("Config with an allowed origin that is not http(s)://", input);
    }
  }
  if (c.proxy_protocol && c.trusted_proxies.empty()) {
    Fail("Config with --proxy-protocol but no trusted proxies", input);
  }
  if (c.reload_interval.count() < 100) Fail("Config reload interval below 100 ms", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInputBytes) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckValueParsers(input);

  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  unsigned hardware_threads = kDefaultHardwareThreads;
  std::string_view rest = input;
  for (std::size_t entries = 0; !rest.empty() && entries < kMaxEntries; ++entries) {
    const std::size_t end = std::min(rest.find('\n'), rest.find('\0'));
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.starts_with("#hw=")) {
      const std::string_view n = line.substr(4);
      std::from_chars(n.data(), n.data() + n.size(), hardware_threads);  // unchanged on error
      continue;
    }
    if (line.starts_with("VROUTER_") && line.find('=') != std::string_view::npos) {
      const std::size_t eq = line.find('=');
      env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      CheckValueParsers(line.substr(eq + 1));
      continue;
    }
    args.emplace_back(line);
    CheckValueParsers(line);
  }

  const app::EnvLookup lookup = [&env](const std::string& name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  const app::HostFacts host{.hardware_threads = hardware_threads,
                            .hostname = "fuzz-host",
                            .random = 0xabcdef,
                            .connection_budget = 1000};
  const app::ParsedArgs parsed = app::ParseServeArgs(args, lookup, host);
  const int set =
      (parsed.config ? 1 : 0) + (parsed.error.empty() ? 0 : 1) + (parsed.help.empty() ? 0 : 1);
  if (set != 1) {
    Fail("ParseServeArgs: not exactly one of config, error, help", parsed.error);
  }
  if (parsed.config) CheckConfig(*parsed.config, input);
  return 0;
}
