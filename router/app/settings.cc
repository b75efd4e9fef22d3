#include "router/app/settings.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "proto/decode_error.h"
#include "router/base/result.h"
#include "router/edge/admin_auth.h"
#include "router/store/gossip_auth.h"

namespace vrouter::app {
namespace {

namespace options = base::options;
using options::Range;

constexpr std::uint32_t kDayMs = 24 * 3600 * 1000;
constexpr unsigned kMaxThreads = 256;

// --listen, --tls-listen, --admin-listen: empty means not listening.
base::Status<> ParseEndpoint(std::string_view text, std::optional<HostPort>& out) {
  if (text.empty()) {
    out.reset();
    return {};
  }
  out = ParseHostPort(text);
  if (out) return {};
  return base::Fail("'" + std::string(text) +
                    "' is not HOST:PORT with a numeric IP (or localhost) and a port 0-65535");
}

std::string ShowEndpoint(const std::optional<HostPort>& hp) { return hp ? ToString(*hp) : ""; }

base::Status<> ParseStore(std::string_view text, std::optional<RedisUrl>& out) {
  auto parsed = ParseStoreUrl(text);
  if (auto* error = parsed.error_message()) return base::Fail(*error);
  out = std::get<0>(std::move(parsed));
  return {};
}

// Without the password: the default in --help and the dump.
std::string ShowStore(const std::optional<RedisUrl>& url) {
  if (!url) return "memory";
  auto nodes = [](const std::vector<RedisUrl::Node>& list) {
    std::string out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto& n = list[i];
      out += (i ? "," : "") +
             (n.host.find(':') != std::string::npos ? "[" + n.host + "]" : n.host) + ":" +
             std::to_string(n.port);
    }
    return out;
  };
  const std::string s = url->tls ? "s" : "";
  if (!url->cluster_nodes.empty()) return "redis" + s + "-cluster://" + nodes(url->cluster_nodes);
  if (!url->sentinels.empty()) {
    return "redis" + s + "-sentinel://" + nodes(url->sentinels) + "/" + url->master_name + "/" +
           std::to_string(url->db);
  }
  const std::string host =
      url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
  return std::string(url->tls ? "rediss://" : "redis://") + host + ":" + std::to_string(url->port) +
         "/" + std::to_string(url->db);
}

base::Status<> ParseRegionGroupsInto(std::string_view text,
                                     absl::flat_hash_map<std::string, std::string>& out) {
  auto parsed = ParseRegionGroups(text);
  if (auto* error = parsed.error_message()) return base::Fail(*error);
  out = std::get<0>(std::move(parsed));
  return {};
}

// Empty keeps the defaults; anything else overrides them (or is "off").
base::Status<> ParseRates(std::string_view text, edge::RateLimits& out) {
  if (text.empty()) {
    out = edge::RateLimits::Defaults();
    return {};
  }
  auto parsed = edge::ParseRateLimits(text, edge::RateLimits::Defaults());
  if (auto* error = parsed.error_message()) return base::Fail(*error);
  out = std::get<edge::RateLimits>(std::move(parsed));
  return {};
}

base::Status<> ParseRate(std::string_view text, edge::RateLimit& out) {
  auto parsed = edge::ParseRateLimit(text);
  if (auto* error = parsed.error_message()) return base::Fail(*error);
  out = std::get<edge::RateLimit>(parsed);
  return {};
}

std::string ShowRate(const edge::RateLimit& limit) {
  return options::FormatNumber(limit.per_second) + ":" + options::FormatNumber(limit.burst);
}

// TYPE=RATE:BURST for each limited type, or "off".
std::string ShowRates(const edge::RateLimits& limits) {
  if (limits == edge::RateLimits::Unlimited()) return "off";
  std::string out;
  for (std::size_t i = 0; i < edge::kClientMessageTypes; ++i) {
    const edge::RateLimit& l = limits.by_type[i];
    if (l.burst < 1) continue;
    out += (out.empty() ? "" : ",") + std::string(proto::kClientTypeNames[i]) + "=" +
           options::FormatNumber(l.per_second) + ":" + options::FormatNumber(l.burst);
  }
  return out;
}

base::Status<> CheckAdminToken(std::string_view token) {
  const bool printable =
      std::all_of(token.begin(), token.end(), [](char ch) { return ch > ' ' && ch < 0x7f; });
  if (token.empty() || (token.size() >= edge::kMinAdminTokenLength && printable)) return {};
  return base::Fail("must be at least " + std::to_string(edge::kMinAdminTokenLength) +
                    " printable characters without spaces (e.g. openssl rand -hex 16)");
}

// Empty means derived from the hostname. An id by the protocol's rule too (no control
// character): it names the replica's records in the shared store, which are checked by it.
base::Status<> CheckReplicaId(std::string_view id) {
  if (id.empty() || (id.size() <= 64 && id.find_first_of(" \"") == std::string_view::npos &&
                     proto::IsValidId(id))) {
    return {};
  }
  return base::Fail("must be 1-64 characters without spaces, quotes or control characters");
}

base::Status<> CheckReplicaKey(std::string_view key) {
  if (key.empty() || key.size() >= store::kMinReplicaKeyBytes) return {};
  return base::Fail("must be at least " + std::to_string(store::kMinReplicaKeyBytes) +
                    " characters (e.g. openssl rand -hex 32)");
}

base::Status<> CheckUrlScheme(std::string_view scheme) {
  const std::string problem = fleet::CheckUrlScheme(scheme);
  if (problem.empty()) return {};
  return base::Fail(problem);
}

base::Status<> CheckOrigin(std::string_view origin) {
  if ((origin.starts_with("https://") || origin.starts_with("http://")) &&
      origin.find('/', origin.find("//") + 2) == std::string_view::npos) {
    return {};
  }
  return base::Fail(
      "'" + std::string(origin) +
      "' is not an origin (scheme://host[:port], no path, e.g. https://app.example.com)");
}

options::Table<Config> MakeTable() {
  options::Table<Config> t(
      "usage: vrouter [serve] [options]\n"
      "       vrouter mint-token --user USER --space SPACE [--ttl-s N]\n"
      "       vrouter --version\n"
      "       vrouter --help-settings-json   (every setting: flag, variable, default, range)\n",
      "VROUTER_");
  // clang-format off
  t.Section("vrouter serve options (each also read from VROUTER_<NAME>, e.g. --tls-listen from "
            "VROUTER_TLS_LISTEN; a flag wins)");
  t.Custom("listen", VROUTER_FIELD(listen), "HOST:PORT",
           "HOST:PORT for plain ws clients (port 0: any free port)", ParseEndpoint, ShowEndpoint);
  t.Custom("tls-listen", VROUTER_FIELD(tls_listen), "HOST:PORT",
           "HOST:PORT for wss clients (needs --tls-cert/--tls-key)", ParseEndpoint, ShowEndpoint);
  t.Custom("admin-listen", VROUTER_FIELD(admin_listen), "HOST:PORT",
           "HOST:PORT for /healthz /readyz /metrics /v1/*", ParseEndpoint, ShowEndpoint);
  t.List("tls-cert", VROUTER_FIELD(tls_certs),
         "PEM certificate chain (ECDSA or RSA; ec.crt,rsa.crt for both)").Value("FILE");
  t.List("tls-key", VROUTER_FIELD(tls_keys), "PEM private key (ec.key,rsa.key for both)")
      .Value("FILE");
  t.Text("video-servers", VROUTER_FIELD(video_servers_file),
         "JSON file: [{id,url,region,capacity}]").Value("FILE");
  t.Text("auth-secret", VROUTER_FIELD(auth_secret),
         "HS256 key for client tokens (prefer VROUTER_AUTH_SECRET: flags show in ps)")
      .Value("SECRET");
  t.Text("admin-token", VROUTER_FIELD(admin_token),
         "bearer token that may read and write on the admin port (prefer VROUTER_ADMIN_TOKEN); "
         "with no admin token at all, only loopback may use /v1/*", CheckAdminToken)
      .Value("TOKEN");
  t.Text("admin-read-token", VROUTER_FIELD(admin_read_token),
         "bearer token that may only read on the admin port (prefer VROUTER_ADMIN_READ_TOKEN)",
         CheckAdminToken).Value("TOKEN");
  t.Text("replica-id", VROUTER_FIELD(replica_id), "name of this replica (default: hostname-random)",
         CheckReplicaId).Value("ID");
  t.Integer("threads", VROUTER_FIELD(threads), Range::In(1, kMaxThreads),
            "worker threads, one io_context each; the default is one per hardware thread");
  t.Integer("max-connections", VROUTER_FIELD(limits.max_connections), Range::In(0, 100'000'000),
            "client connections before refusing with 503 (0: open-files limit minus a reserve)");
  t.Integer("backlog", VROUTER_FIELD(backlog), Range::In(1, 65535),
            "listen backlog (connect storms)");
  t.Integer("max-message-bytes", VROUTER_FIELD(limits.max_message_bytes),
            Range::In(1024, 16 * 1024 * 1024),
            "largest client frame; above it the connection closes with 1009");
  t.Integer("max-batch", VROUTER_FIELD(limits.max_batch), Range::In(1, 100000),
            "user ids per lookup/watch");
  t.Integer("max-watches", VROUTER_FIELD(limits.max_watches), Range::In(1, 1000000),
            "watched users per session");
  t.Integer("send-queue-bytes", VROUTER_FIELD(limits.max_send_queue_bytes), Range::AtMost(1 << 30),
            "per-session send queue, at least --max-message-bytes; a client that lets it fill is "
            "closed (slow consumer)");
  t.Integer("max-pings-per-second", VROUTER_FIELD(limits.max_pings_per_second), Range::AtLeast(1),
            "WebSocket pings a client may send per second before close 1008");
  t.Millis("handshake-timeout-ms", VROUTER_FIELD(limits.handshake_timeout), Range::AtLeast(100),
           "TLS + HTTP upgrade deadline");
  t.Millis("hello-timeout-ms", VROUTER_FIELD(limits.hello_timeout), Range::AtLeast(100),
           "time from upgrade to a successful hello");
  t.Millis("idle-timeout-ms", VROUTER_FIELD(limits.idle_timeout), Range::AtLeast(1000),
           "silence before the router pings, then closes (pings at half of it)");
  t.Millis("resume-grace-ms", VROUTER_FIELD(resume_grace), Range::AtMost(kDayMs),
           "how long a disconnected user's assignment waits for a resume");
  t.Millis("drain-window-ms", VROUTER_FIELD(drain_window), Range::AtMost(kDayMs),
           "on SIGTERM, clients are sent goaway and closed spread over this window");
  t.Integer("token-leeway-s", VROUTER_FIELD(token_leeway_seconds), Range::In(0, 3600),
            "clock skew tolerated on token exp/nbf");
  t.Choice("log-level", VROUTER_FIELD(log_level),
           std::vector<std::pair<std::string, std::string>>{
               {"trace", "trace"}, {"debug", "debug"}, {"info", "info"}, {"warn", "warn"},
               {"error", "error"}, {"critical", "critical"}, {"off", "off"}},
           "what the JSON log on stdout says");
  t.Custom("store", VROUTER_FIELD(redis), "URL",
           "memory (one replica) or redis://[[USER]:PASSWORD@]HOST:PORT[/DB] shared by every replica "
           "(rediss:// for TLS; redis-sentinel://[[USER]:PASSWORD@]HOST:PORT,.../MASTER[/DB] "
           "behind Sentinel; redis-cluster://[[USER]:PASSWORD@]HOST:PORT,... for a Redis Cluster; "
           "rediss-sentinel:// and rediss-cluster:// over TLS; prefer VROUTER_STORE when it holds "
           "a password)",
           ParseStore, ShowStore);
  t.Text("redis-tls-ca", VROUTER_FIELD(redis_tls_ca),
         "rediss://: PEM file of the CAs the server's certificate must chain to (default: the "
         "system's)").Value("FILE");
  t.Text("redis-tls-cert", VROUTER_FIELD(redis_tls_cert),
         "rediss://: PEM client certificate chain, for a Redis with tls-auth-clients")
      .Value("FILE");
  t.Text("redis-tls-key", VROUTER_FIELD(redis_tls_key),
         "rediss://: PEM private key of --redis-tls-cert").Value("FILE");
  t.Text("redis-sentinel-password", VROUTER_FIELD(redis_sentinel_password),
         "redis-sentinel://: the Sentinels' own password, when they require one (prefer "
         "VROUTER_REDIS_SENTINEL_PASSWORD)").Value("SECRET");
  t.Text("redis-tls-server-name", VROUTER_FIELD(redis_tls_server_name),
         "rediss://: the name (or address) the server's certificate must carry (default: the "
         "store URL's host)").Value("NAME");
  t.Millis("redis-timeout-ms", VROUTER_FIELD(redis_timeout), Range::In(10, 60000),
           "Redis connect and command deadline; past it the replica treats Redis as down");
  t.Millis("lease-ttl-ms", VROUTER_FIELD(lease_ttl), Range::In(1000, 600000),
           "a replica silent this long is dead: its users' resume grace starts");
  t.Text("replica-key", VROUTER_FIELD(replica_key),
         "key shared by the replicas of a redis store, required with one: fleet messages "
         "between them are signed with it (HMAC-SHA256) and others refused (prefer "
         "VROUTER_REPLICA_KEY)", CheckReplicaKey).Value("SECRET");

  t.Section("Video servers: health, scoring, ejection, migration (defaults and their reasons: "
            "README, \"Fleet parameters\")");
  t.Text("video-server-secret", VROUTER_FIELD(video_server_secret),
         "HS256 key of video-server credentials, distinct from --auth-secret (prefer the env var)")
      .Value("SECRET");
  t.Integer("max-registered-capacity", VROUTER_FIELD(fleet.registration.max_capacity),
            Range::In(1, 10'000'000),
            "the most users a self-registered server may claim (declared servers keep the fleet "
            "file's capacity)");
  t.List("video-server-url-schemes", VROUTER_FIELD(fleet.registration.url_schemes),
         "URL schemes a self-registered server may give clients (wss, https; ws and http only "
         "for test rigs)",
         CheckUrlScheme);
  t.List("video-server-url-hosts", VROUTER_FIELD(fleet.registration.url_hosts),
         "host names a self-registered server's URL may use: a host matches a name when it is "
         "the name or ends with .name (e.g. media.example.com); empty: any");
  t.Millis("report-interval-ms", VROUTER_FIELD(fleet.report_interval), Range::In(100, 60000),
           "how often video servers send stats (told to them at register)");
  t.Integer("stale-after-reports", VROUTER_FIELD(fleet.stale_after_reports), Range::In(1, 100),
            "missed reports before a server is stale (no new users)");
  t.Millis("gone-after-ms", VROUTER_FIELD(fleet.gone_after), Range::Any(),
           "silence before a server is gone (its users are migrated); longer than "
           "--report-interval-ms * --stale-after-reports");
  t.Millis("forget-after-ms", VROUTER_FIELD(fleet.forget_after), Range::AtMost(7 * kDayMs),
           "a self-registered server gone this long with no users is forgotten");
  t.Real("packets-per-user", VROUTER_FIELD(fleet.scoring.packets_per_user), Range::In(1, 100000),
         "packets/s one user sends: converts a server's packet rate into users");
  t.Real("failure-penalty-factor", VROUTER_FIELD(fleet.scoring.failure_penalty_factor),
         Range::In(0, 100),
         "capacities of extra load per unit share of a server's users reporting failures");
  t.Millis("slow-start-window-ms", VROUTER_FIELD(fleet.scoring.slow_start_window), Range::Any(),
           "ramp of a new or returning server from the minimum weight to full weight");
  t.Real("slow-start-min-weight", VROUTER_FIELD(fleet.scoring.slow_start_min_weight),
         Range::In(0.01, 1), "weight a new or returning server starts at");
  t.Real("space-affinity-max-utilization",
         VROUTER_FIELD(fleet.scoring.space_affinity_max_utilization), Range::In(0, 1),
         "keep a space on one server while its utilization is below this");
  t.Integer("max-new-users-per-interval", VROUTER_FIELD(fleet.scoring.max_new_users_per_interval),
            Range::In(1, 1000000),
            "new users per server per report interval at full weight (or the capacity share "
            "below, when that is more)");
  t.Real("new-users-capacity-share",
         VROUTER_FIELD(fleet.scoring.new_users_per_interval_capacity_share), Range::In(0, 1),
         "share of a server's capacity it may take in new users per report interval at full "
         "weight, when that is more than --max-new-users-per-interval");
  t.Real("forwarding-min-packets-in", VROUTER_FIELD(fleet.scoring.forwarding.min_packets_in_rate),
         Range::In(0, 1e9), "packets/s in below which forwarding is not judged");
  t.Real("forwarding-min-ratio", VROUTER_FIELD(fleet.scoring.forwarding.min_out_in_ratio),
         Range::In(0, 1), "out/in packet ratio under which a server is not forwarding");
  t.Millis("forwarding-media-grace-ms", VROUTER_FIELD(fleet.scoring.forwarding.media_grace),
           Range::AtMost(600000),
           "how long users placed on a server must have been there before a server moving no "
           "packets at all counts as frozen");
  t.Custom("region-groups", VROUTER_FIELD(fleet.scoring.region_group), "GROUPS",
           "region groups for fallback, e.g. \"eu=eu-west,eu-central;us=us-east,us-west\"",
           ParseRegionGroupsInto, RegionGroupsToString);
  t.Integer("eject-not-forwarding-reports", VROUTER_FIELD(fleet.ejection.not_forwarding_reports),
            Range::In(1, 1000),
            "consecutive not-forwarding (or frozen) reports that eject a server");
  t.Real("eject-failure-share", VROUTER_FIELD(fleet.ejection.failure_share), Range::In(0.01, 1),
         "share of a server's users reporting failures that ejects it");
  t.Integer("eject-failure-min-reporters", VROUTER_FIELD(fleet.ejection.failure_min_reporters),
            Range::In(1, 1000000), "distinct reporters needed before the failure share counts");
  t.Millis("failure-window-ms", VROUTER_FIELD(fleet.ejection.failure_window), Range::Any(),
           "how long a client failure report counts (at least --report-interval-ms)");
  t.Real("eject-stdev-factor", VROUTER_FIELD(fleet.ejection.success_stdev_factor),
         Range::In(0.1, 100), "success-rate outlier: standard deviations under the fleet mean");
  t.Integer("eject-min-hosts", VROUTER_FIELD(fleet.ejection.success_min_hosts),
            Range::In(2, 1000000), "success-rate outlier: servers with enough volume needed");
  t.Integer("eject-min-volume", VROUTER_FIELD(fleet.ejection.success_min_volume), Range::Any(),
            "success-rate outlier: users a server needs to be judged");
  t.Integer("probation-max-users", VROUTER_FIELD(fleet.scoring.probation_max_users),
            Range::In(1, 1000), "users a server back from an ejection holds until it proves healthy");
  t.Real("eject-min-stdev", VROUTER_FIELD(fleet.ejection.success_min_stdev), Range::In(0, 1),
         "success-rate outlier: floor on the fleet's standard deviation (one report is no outlier)");
  t.Integer("eject-restart-loop-resets", VROUTER_FIELD(fleet.ejection.restart_loop_resets),
            Range::In(2, 1000), "counter resets (restarts) within the window that eject a server");
  t.Millis("eject-restart-loop-window-ms", VROUTER_FIELD(fleet.ejection.restart_loop_window),
           Range::AtLeast(1000), "the window for --eject-restart-loop-resets");
  t.Millis("ejection-base-ms", VROUTER_FIELD(fleet.ejection.base_ejection), Range::AtLeast(1000),
           "first ejection time; the n-th lasts n times this");
  t.Millis("ejection-max-ms", VROUTER_FIELD(fleet.ejection.max_ejection), Range::Any(),
           "longest ejection (at least --ejection-base-ms)");
  t.Real("max-ejected-share", VROUTER_FIELD(fleet.ejection.max_ejected_share), Range::In(0, 1),
         "most of the fleet ejected at once; beyond it the fleet fails open (panic)");
  t.Integer("migrate-batch", VROUTER_FIELD(fleet.migration.batch), Range::In(1, 1000000),
            "users moved off a drained/ejected/gone server per step");
  t.Millis("migrate-cooldown-ms", VROUTER_FIELD(fleet.migration.cooldown), Range::AtLeast(10),
           "pause between migration steps of one server");

  t.Section("Security and abuse limits (threat model and defaults: SECURITY.md)");
  t.Text("auth-keys-dir", VROUTER_FIELD(auth_keys_dir),
         "directory of client token keys named by kid: <kid>.pem (ES256 public key), "
         "<kid>.secret (HS256); re-read when it changes, for rotation").Value("DIR");
  t.List("allowed-origins", VROUTER_FIELD(allowed_origins),
         "comma-separated browser Origins allowed on /v1/client (e.g. https://app.example.com); "
         "others get 403; requests without Origin (non-browser clients) pass; empty: any",
         CheckOrigin);
  t.Integer("max-connections-per-ip", VROUTER_FIELD(limits.max_connections_per_ip), Range::Any(),
            "connections from one IP before 429: clients, and video servers until they register "
            "(0: no limit)");
  t.Integer("max-handshakes", VROUTER_FIELD(limits.max_handshakes), Range::Any(),
            "TLS handshakes and upgrades in flight before the listeners pause accepting "
            "(0: no limit)");
  t.Integer("max-handshakes-per-ip", VROUTER_FIELD(limits.max_handshakes_per_ip), Range::Any(),
            "handshakes in flight from one IP, counted from accept; more are closed at once "
            "(0: no limit)");
  t.Custom("rate-limits", VROUTER_FIELD(limits.rate_limits), "TYPE=RATE:BURST,...",
           "per-user limits (all of a user's connections on a replica share them; hellos also "
           "across replicas with a shared store) overriding the defaults (e.g. lookup=50:200), "
           "or off",
           ParseRates, ShowRates);
  t.Custom("hellos-per-ip", VROUTER_FIELD(limits.hellos_per_ip), "RATE:BURST",
           "hellos from one IP (all its connections; across replicas with a shared store) "
           "before rate_limited; RATE 0: no limit",
           ParseRate, ShowRate);
  t.Switch("lookups-across-spaces", VROUTER_FIELD(lookups_across_spaces),
           "lookups and watches see users of every space (default: only the caller's own; "
           "users elsewhere look absent). For deployments whose spaces are not private");
  t.Switch("proxy-protocol", VROUTER_FIELD(proxy_protocol),
           "client listeners read a PROXY protocol v1/v2 header from --trusted-proxies");
  t.Text("trusted-proxies", VROUTER_FIELD(trusted_proxies),
         "comma-separated CIDRs of load balancers whose PROXY header and X-Forwarded-For are "
         "believed").Value("CIDRS");
  t.Text("region-cidrs", VROUTER_FIELD(region_cidrs_file),
         "file of \"CIDR REGION\" lines: the region of a client whose token names none")
      .Value("FILE");
  t.Millis("reload-interval-ms", VROUTER_FIELD(reload_interval), Range::In(100, 3'600'000),
           "how often the TLS certificate, token keys and region table are checked for changes");
  // clang-format on

  // Rules over several settings: messages name every flag involved.
  using Error = options::Error;
  using Code = options::ErrorCode;
  t.Check([](const Config& c) -> std::optional<Error> {
    if (c.listen || c.tls_listen) return std::nullopt;
    return Error{Code::kRequired, "listen", "--listen or --tls-listen is required"};
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    if (c.tls_listen && (c.tls_certs.empty() || c.tls_keys.empty())) {
      return Error{Code::kRequired, "tls-cert", "--tls-listen needs --tls-cert and --tls-key"};
    }
    if (!c.tls_listen && (!c.tls_certs.empty() || !c.tls_keys.empty())) {
      return Error{Code::kConflict, "tls-listen",
                   "--tls-cert/--tls-key given without --tls-listen"};
    }
    if (c.tls_certs.size() != c.tls_keys.size() || c.tls_certs.size() > 2) {
      return Error{Code::kConflict, "tls-cert",
                   "--tls-cert and --tls-key must list the same number of files (one pair, or "
                   "two: one ECDSA and one RSA)"};
    }
    return std::nullopt;
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    if (c.limits.max_send_queue_bytes >= c.limits.max_message_bytes) return std::nullopt;
    return Error{Code::kConflict, "send-queue-bytes",
                 "--send-queue-bytes must be at least --max-message-bytes"};
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    const auto& f = c.fleet;
    if (f.gone_after <= f.report_interval * f.stale_after_reports) {
      return Error{Code::kConflict, "gone-after-ms",
                   "--gone-after-ms must be longer than --report-interval-ms * "
                   "--stale-after-reports"};
    }
    if (f.ejection.failure_window < f.report_interval) {
      return Error{Code::kConflict, "failure-window-ms",
                   "--failure-window-ms must be at least --report-interval-ms"};
    }
    if (f.ejection.max_ejection < f.ejection.base_ejection) {
      return Error{Code::kConflict, "ejection-max-ms",
                   "--ejection-max-ms must be at least --ejection-base-ms"};
    }
    return std::nullopt;
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    if (c.admin_token.empty() || c.admin_token != c.admin_read_token) return std::nullopt;
    return Error{Code::kConflict, "admin-read-token",
                 "--admin-read-token must differ from --admin-token"};
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    if (!c.redis || !c.replica_key.empty()) return std::nullopt;
    return Error{Code::kRequired, "replica-key",
                 "--store redis://... needs --replica-key (or VROUTER_REPLICA_KEY), the same on "
                 "every replica: without it, anyone who can publish on Redis could add video "
                 "servers (e.g. openssl rand -hex 32)"};
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    const bool tls_options = !c.redis_tls_ca.empty() || !c.redis_tls_cert.empty() ||
                             !c.redis_tls_key.empty() || !c.redis_tls_server_name.empty();
    if (tls_options && (!c.redis || !c.redis->tls)) {
      return Error{Code::kConflict, "store",
                   "--redis-tls-* options need a TLS store: --store rediss://..."};
    }
    if (!c.redis_sentinel_password.empty() && (!c.redis || c.redis->sentinels.empty())) {
      return Error{Code::kConflict, "redis-sentinel-password",
                   "--redis-sentinel-password needs a store behind Sentinel: --store "
                   "redis-sentinel://..."};
    }
    if (c.redis_tls_cert.empty() != c.redis_tls_key.empty()) {
      return Error{Code::kConflict, c.redis_tls_cert.empty() ? "redis-tls-cert" : "redis-tls-key",
                   "--redis-tls-cert and --redis-tls-key go together"};
    }
    return std::nullopt;
  });
  t.Check([](const Config& c) -> std::optional<Error> {
    if (!c.proxy_protocol || !c.trusted_proxies.empty()) return std::nullopt;
    return Error{Code::kRequired, "trusted-proxies",
                 "--proxy-protocol needs --trusted-proxies (the load balancers' addresses)"};
  });
  return t;
}

}  // namespace

const options::Table<Config>& ServeSettings() {
  static const options::Table<Config> table = MakeTable();
  return table;
}

Config DefaultConfig(const HostFacts& host) {
  Config c;
  c.threads = std::clamp(host.hardware_threads, 1u, kMaxThreads);
  return c;
}

ParsedArgs ParseServeArgs(const std::vector<std::string>& args, const EnvLookup& env,
                          const HostFacts& host) {
  ParsedArgs out;
  auto parsed = ServeSettings().Parse(args, env, DefaultConfig(host));
  if (parsed.error) {
    out.error = std::move(parsed.error->message);
    out.error_code = parsed.error->code;
    out.error_setting = std::move(parsed.error->setting);
    return out;
  }
  if (!parsed.value) {
    out.help = std::move(parsed.help);
    return out;
  }
  // What the flags leave to the machine, derived here so that the Config is complete.
  Config& c = *parsed.value;
  if (c.replica_id.empty()) {
    std::ostringstream id;
    id << (host.hostname.empty() ? "replica" : host.hostname) << "-" << std::hex
       << (host.random & 0xffffff);
    c.replica_id = id.str().substr(0, 64);
  }
  if (c.limits.max_connections == 0) c.limits.max_connections = host.connection_budget;
  out.config = std::move(c);
  return out;
}

std::string SettingsJson(const HostFacts& host) {
  return ServeSettings().Json(DefaultConfig(host));
}

}  // namespace vrouter::app
