// The replica's whole configuration: one immutable struct, built once in main from flags and
// VROUTER_* environment variables (a flag wins over its variable), validated before anything
// starts. Each member's default is its initializer here (or in the struct it belongs to:
// service::SessionLimits, fleet::FleetParams); which flag fills it, its range and its help text
// are the settings table's (router/app/settings.cc), whose ParseServeArgs is a pure function of
// (argv, environment, host facts), so every rule is unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "router/base/result.h"
#include "router/fleet/fleet_model.h"
#include "router/service/session_limits.h"

namespace vrouter::app {

struct HostPort {
  std::string host;  // numeric IPv4/IPv6 address
  std::uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};

// --store redis[s]://[[USER]:PASSWORD@]HOST:PORT[/DB], or
// redis-sentinel://[[USER]:PASSWORD@]HOST:PORT,...,HOST:PORT/MASTER[/DB], or
// redis-cluster://[[USER]:PASSWORD@]HOST:PORT,...,HOST:PORT
struct RedisUrl {
  std::string host;  // name or address, resolved at start-up
  std::uint16_t port = 6379;
  std::string password;
  int db = 0;
  std::string username;  // an ACL user (AUTH USER PASSWORD); empty: the default user
  bool tls = false;      // rediss://, rediss-sentinel:// (Sentinels too), rediss-cluster://
  // redis-sentinel://: the Sentinels to ask, and the name they know the primary by (host and
  // port above are then unused).
  struct Node {
    std::string host;
    std::uint16_t port = 26379;
    bool operator==(const Node&) const = default;
  };
  std::vector<Node> sentinels;
  std::string master_name;
  // redis-cluster://: nodes of the cluster to ask for its slot map (host and port above unused).
  std::vector<Node> cluster_nodes;
  bool operator==(const RedisUrl&) const = default;
};
// "memory" -> nullopt; "redis://..." or "rediss://..." -> the URL; anything else -> an error
// message.
base::Result<std::optional<RedisUrl>> ParseStoreUrl(std::string_view text);

struct Config {
  std::optional<HostPort> listen;        // plain ws
  std::optional<HostPort> tls_listen;    // wss
  std::optional<HostPort> admin_listen;  // /healthz /readyz /metrics /v1/...
  // Certificate chains and their keys, pairwise: one ECDSA and one RSA pair serve every client
  // (OpenSSL picks by what the client offers). Re-read when the files change.
  std::vector<std::string> tls_certs;
  std::vector<std::string> tls_keys;
  std::string video_servers_file;
  std::string auth_secret;
  std::string video_server_secret;  // key of video-server credentials (distinct from clients')
  std::string replica_key;          // authenticates fleet messages between replicas (a redis store)
  std::string admin_token;          // admin port: read and write (empty: loopback only)
  std::string admin_read_token;     // admin port: read only
  std::string replica_id;           // parsing fills it: the flag, else hostname + random suffix
  unsigned threads = 1;             // parsing's default: one per hardware thread
  int backlog = 4096;
  // Frame size, batch sizes, send queue, pings, deadlines, connection caps (max_connections is
  // resolved from the open-files limit by parsing when the flag leaves it 0), rate limits.
  service::SessionLimits limits;
  std::chrono::milliseconds resume_grace{30000};
  std::chrono::milliseconds drain_window{10000};
  std::int64_t token_leeway_seconds = 30;
  std::string log_level = "info";
  // The shared store: nullopt = the embedded in-memory store (one replica).
  std::optional<RedisUrl> redis;
  std::chrono::milliseconds redis_timeout{1000};  // connect and per-command deadline
  // rediss:// only: the CA file, the client certificate and key (both or neither), and the name
  // the server's certificate must carry (default: the URL's host).
  std::string redis_tls_ca, redis_tls_cert, redis_tls_key, redis_tls_server_name;
  // redis-sentinel:// only: the Sentinels' own password (their requirepass), if they have one.
  std::string redis_sentinel_password;
  std::chrono::milliseconds lease_ttl{5000};  // silence after which a replica is dead
  // Fleet health, scoring, ejection and migration; each default and its reason is documented
  // where the field is declared (router/fleet/fleet_model.h, scoring.h, ejection.h).
  fleet::FleetParams fleet;

  // Security and abuse limits (SECURITY.md).
  std::string auth_keys_dir;                 // <kid>.pem (ES256) and <kid>.secret (HS256) files
  std::vector<std::string> allowed_origins;  // browser Origins allowed on /v1/client; empty: any
  bool lookups_across_spaces = false;        // lookups and watches see users of every space
  bool proxy_protocol = false;    // client listeners expect a PROXY v1/v2 header from proxies
  std::string trusted_proxies;    // CIDRs allowed to send PROXY headers and X-Forwarded-For
  std::string region_cidrs_file;  // "CIDR REGION" lines: the region of clients without one
  std::chrono::milliseconds reload_interval{10000};  // how often changed files are noticed
};

// "eu=eu-west,eu-central;us=us-east" -> region -> group. Returns an error message on bad input.
base::Result<absl::flat_hash_map<std::string, std::string>> ParseRegionGroups(
    std::string_view text);
// The text ParseRegionGroups reads back: groups and their regions in sorted order.
std::string RegionGroupsToString(const absl::flat_hash_map<std::string, std::string>& groups);

std::optional<HostPort> ParseHostPort(std::string_view text);
std::string ToString(const HostPort& hp);

}  // namespace vrouter::app
