#include "router/app/config.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <sstream>

#include "router/base/options.h"
#include "router/edge/admin_auth.h"
#include "router/edge/ip_address.h"

namespace vrouter::app {
namespace po = boost::program_options;

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

std::variant<absl::flat_hash_map<std::string, std::string>, std::string> ParseRegionGroups(
    std::string_view text) {
  absl::flat_hash_map<std::string, std::string> out;
  while (!text.empty()) {
    const auto semi = text.find(';');
    std::string_view group_spec = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    if (group_spec.empty()) continue;
    const auto eq = group_spec.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return "'" + std::string(group_spec) + "' is not GROUP=REGION,REGION";
    }
    const std::string group(group_spec.substr(0, eq));
    std::string_view regions = group_spec.substr(eq + 1);
    while (!regions.empty()) {
      const auto comma = regions.find(',');
      const std::string region(regions.substr(0, comma));
      regions = comma == std::string_view::npos ? std::string_view() : regions.substr(comma + 1);
      if (region.empty()) return "empty region in group '" + group + "'";
      if (!out.emplace(region, group).second) {
        return "region '" + region + "' is in more than one group";
      }
    }
  }
  return out;
}

std::string ToString(const HostPort& hp) {
  return hp.host.find(':') != std::string::npos ? "[" + hp.host + "]:" + std::to_string(hp.port)
                                                : hp.host + ":" + std::to_string(hp.port);
}

namespace {

struct Raw {
  std::string admin_token, admin_read_token;
  // Security.
  std::string auth_keys_dir, allowed_origins, rate_limits, trusted_proxies, region_cidrs;
  std::uint32_t max_per_ip = 0, max_handshakes = 0, reload_ms = 0;
  bool proxy_protocol = false;
  std::string listen, tls_listen, admin_listen, tls_cert, tls_key, video_servers, auth_secret,
      replica_id, log_level;
  unsigned threads = 0;
  std::uint64_t max_connections = 0, send_queue_bytes = 0;
  int backlog = 0;
  std::uint32_t max_message_bytes = 0, max_batch = 0, max_watches = 0, max_pings = 0;
  std::uint32_t handshake_ms = 0, hello_ms = 0, idle_ms = 0, grace_ms = 0, drain_ms = 0;
  std::int64_t leeway_s = 0;
  std::string store;
  std::uint32_t redis_timeout_ms = 0, lease_ttl_ms = 0;
  // Fleet.
  std::string video_server_secret, region_groups;
  std::uint32_t report_ms = 0, stale_reports = 0, gone_ms = 0, forget_ms = 0, slow_start_ms = 0,
                new_per_interval = 0, eject_reports = 0, failure_min_reporters = 0,
                failure_window_ms = 0, min_hosts = 0, min_volume = 0, eject_base_ms = 0,
                eject_max_ms = 0, migrate_batch = 0, migrate_cooldown_ms = 0, media_grace_ms = 0;
  double packets_per_user = 0, penalty_factor = 0, slow_start_min_weight = 0, affinity_max = 0,
         min_packets_in = 0, min_ratio = 0, failure_share = 0, stdev_factor = 0,
         max_ejected_share = 0;
};

po::options_description FleetOptions(Raw& r, const fleet::FleetParams& d) {
  po::options_description o(
      "Video servers: health, scoring, ejection, migration (defaults and their reasons: README, "
      "\"Fleet parameters\")");
  auto ms = [](std::chrono::milliseconds v) { return static_cast<std::uint32_t>(v.count()); };
  const auto& sc = d.scoring;
  const auto& ej = d.ejection;
  // clang-format off
  o.add_options()
    ("video-server-secret", po::value(&r.video_server_secret),
     "HS256 key of video-server credentials, distinct from --auth-secret (prefer the env var)")
    ("report-interval-ms", po::value(&r.report_ms)->default_value(ms(d.report_interval)),
     "how often video servers send stats (told to them at register)")
    ("stale-after-reports", po::value(&r.stale_reports)->default_value(d.stale_after_reports),
     "missed reports before a server is stale (no new users)")
    ("gone-after-ms", po::value(&r.gone_ms)->default_value(ms(d.gone_after)),
     "silence before a server is gone (its users are migrated)")
    ("forget-after-ms", po::value(&r.forget_ms)->default_value(ms(d.forget_after)),
     "a self-registered server gone this long with no users is forgotten")
    ("packets-per-user", po::value(&r.packets_per_user)->default_value(sc.packets_per_user),
     "packets/s one user sends: converts a server's packet rate into users")
    ("failure-penalty-factor", po::value(&r.penalty_factor)->default_value(sc.failure_penalty_factor),
     "capacities of extra load per unit share of a server's users reporting failures")
    ("slow-start-window-ms", po::value(&r.slow_start_ms)->default_value(ms(sc.slow_start_window)),
     "ramp of a new or returning server from the minimum weight to full weight")
    ("slow-start-min-weight", po::value(&r.slow_start_min_weight)->default_value(sc.slow_start_min_weight),
     "weight a new or returning server starts at, (0, 1]")
    ("space-affinity-max-utilization", po::value(&r.affinity_max)->default_value(sc.space_affinity_max_utilization),
     "keep a space on one server while its utilization is below this")
    ("max-new-users-per-interval", po::value(&r.new_per_interval)->default_value(sc.max_new_users_per_interval),
     "new users per server per report interval at full weight")
    ("forwarding-min-packets-in", po::value(&r.min_packets_in)->default_value(sc.forwarding.min_packets_in_rate),
     "packets/s in below which forwarding is not judged")
    ("forwarding-min-ratio", po::value(&r.min_ratio)->default_value(sc.forwarding.min_out_in_ratio),
     "out/in packet ratio under which a server is not forwarding")
    ("forwarding-media-grace-ms", po::value(&r.media_grace_ms)->default_value(ms(sc.forwarding.media_grace)),
     "how long users placed on a server must have been there before a server moving no packets "
     "at all counts as frozen")
    ("region-groups", po::value(&r.region_groups),
     "region groups for fallback, e.g. \"eu=eu-west,eu-central;us=us-east,us-west\"")
    ("eject-not-forwarding-reports", po::value(&r.eject_reports)->default_value(ej.not_forwarding_reports),
     "consecutive not-forwarding (or frozen) reports that eject a server")
    ("eject-failure-share", po::value(&r.failure_share)->default_value(ej.failure_share),
     "share of a server's users reporting failures that ejects it")
    ("eject-failure-min-reporters", po::value(&r.failure_min_reporters)->default_value(ej.failure_min_reporters),
     "distinct reporters needed before the failure share counts")
    ("failure-window-ms", po::value(&r.failure_window_ms)->default_value(ms(ej.failure_window)),
     "how long a client failure report counts")
    ("eject-stdev-factor", po::value(&r.stdev_factor)->default_value(ej.success_stdev_factor),
     "success-rate outlier: standard deviations under the fleet mean")
    ("eject-min-hosts", po::value(&r.min_hosts)->default_value(ej.success_min_hosts),
     "success-rate outlier: servers with enough volume needed")
    ("eject-min-volume", po::value(&r.min_volume)->default_value(ej.success_min_volume),
     "success-rate outlier: users a server needs to be judged")
    ("ejection-base-ms", po::value(&r.eject_base_ms)->default_value(ms(ej.base_ejection)),
     "first ejection time; the n-th lasts n times this")
    ("ejection-max-ms", po::value(&r.eject_max_ms)->default_value(ms(ej.max_ejection)),
     "longest ejection")
    ("max-ejected-share", po::value(&r.max_ejected_share)->default_value(ej.max_ejected_share),
     "most of the fleet ejected at once; beyond it the fleet fails open (panic)")
    ("migrate-batch", po::value(&r.migrate_batch)->default_value(d.migration.batch),
     "users moved off a drained/ejected/gone server per step")
    ("migrate-cooldown-ms", po::value(&r.migrate_cooldown_ms)->default_value(ms(d.migration.cooldown)),
     "pause between migration steps of one server");
  // clang-format on
  return o;
}

// Checks the fleet flags and fills `f`. Returns an error naming the flag, or empty.
std::string FleetFromRaw(const Raw& r, fleet::FleetParams& f) {
  auto in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
  if (!in(r.report_ms, 100, 60000)) return "--report-interval-ms must be in [100, 60000]";
  if (!in(r.stale_reports, 1, 100)) return "--stale-after-reports must be in [1, 100]";
  if (r.gone_ms <= static_cast<std::uint64_t>(r.report_ms) * r.stale_reports) {
    return "--gone-after-ms must be longer than --report-interval-ms * --stale-after-reports";
  }
  if (!in(r.packets_per_user, 1, 100000)) return "--packets-per-user must be in [1, 100000]";
  if (!in(r.penalty_factor, 0, 100)) return "--failure-penalty-factor must be in [0, 100]";
  if (!in(r.slow_start_min_weight, 0.01, 1)) return "--slow-start-min-weight must be in [0.01, 1]";
  if (!in(r.affinity_max, 0, 1)) return "--space-affinity-max-utilization must be in [0, 1]";
  if (!in(r.new_per_interval, 1, 1000000)) {
    return "--max-new-users-per-interval must be in [1, 1000000]";
  }
  if (!in(r.min_packets_in, 0, 1e9)) return "--forwarding-min-packets-in must be in [0, 1e9]";
  if (!in(r.min_ratio, 0, 1)) return "--forwarding-min-ratio must be in [0, 1]";
  if (r.media_grace_ms > 600000) return "--forwarding-media-grace-ms must be in [0, 600000]";
  if (r.forget_ms > 7 * 24 * 3600 * 1000u) return "--forget-after-ms must be at most a week";
  if (!in(r.eject_reports, 1, 1000)) return "--eject-not-forwarding-reports must be in [1, 1000]";
  if (!in(r.failure_share, 0.01, 1)) return "--eject-failure-share must be in [0.01, 1]";
  if (!in(r.failure_min_reporters, 1, 1000000)) {
    return "--eject-failure-min-reporters must be at least 1";
  }
  if (r.failure_window_ms < r.report_ms) {
    return "--failure-window-ms must be at least --report-interval-ms";
  }
  if (!in(r.stdev_factor, 0.1, 100)) return "--eject-stdev-factor must be in [0.1, 100]";
  if (!in(r.min_hosts, 2, 1000000)) return "--eject-min-hosts must be at least 2";
  if (r.eject_base_ms < 1000 || r.eject_max_ms < r.eject_base_ms) {
    return "--ejection-base-ms must be >= 1000 and --ejection-max-ms >= --ejection-base-ms";
  }
  if (!in(r.max_ejected_share, 0, 1)) return "--max-ejected-share must be in [0, 1]";
  if (!in(r.migrate_batch, 1, 1000000)) return "--migrate-batch must be at least 1";
  if (r.migrate_cooldown_ms < 10) return "--migrate-cooldown-ms must be at least 10";
  using Ms = std::chrono::milliseconds;
  f.report_interval = Ms(r.report_ms);
  f.stale_after_reports = r.stale_reports;
  f.gone_after = Ms(r.gone_ms);
  f.forget_after = Ms(r.forget_ms);
  f.scoring.packets_per_user = r.packets_per_user;
  f.scoring.failure_penalty_factor = r.penalty_factor;
  f.scoring.slow_start_window = Ms(r.slow_start_ms);
  f.scoring.slow_start_min_weight = r.slow_start_min_weight;
  f.scoring.space_affinity_max_utilization = r.affinity_max;
  f.scoring.max_new_users_per_interval = r.new_per_interval;
  f.scoring.forwarding.min_packets_in_rate = r.min_packets_in;
  f.scoring.forwarding.min_out_in_ratio = r.min_ratio;
  f.scoring.forwarding.media_grace = Ms(r.media_grace_ms);
  auto groups = ParseRegionGroups(r.region_groups);
  if (auto* err = std::get_if<std::string>(&groups)) return "--region-groups: " + *err;
  f.scoring.region_group = std::get<0>(std::move(groups));
  f.ejection.not_forwarding_reports = r.eject_reports;
  f.ejection.failure_share = r.failure_share;
  f.ejection.failure_min_reporters = r.failure_min_reporters;
  f.ejection.failure_window = Ms(r.failure_window_ms);
  f.ejection.success_stdev_factor = r.stdev_factor;
  f.ejection.success_min_hosts = r.min_hosts;
  f.ejection.success_min_volume = r.min_volume;
  f.ejection.base_ejection = Ms(r.eject_base_ms);
  f.ejection.max_ejection = Ms(r.eject_max_ms);
  f.ejection.max_ejected_share = r.max_ejected_share;
  f.migration.batch = r.migrate_batch;
  f.migration.cooldown = Ms(r.migrate_cooldown_ms);
  return {};
}

po::options_description Options(Raw& r, const Config& d, unsigned hw) {
  po::options_description o(
      "vrouter serve options (each also read from VROUTER_<NAME>, e.g. "
      "--tls-listen from VROUTER_TLS_LISTEN; a flag wins)");
  auto ms = [](std::chrono::milliseconds v) { return static_cast<std::uint32_t>(v.count()); };
  // clang-format off
  o.add_options()
    ("help,h", "print this help")
    ("listen", po::value(&r.listen), "HOST:PORT for plain ws clients (port 0: any free port)")
    ("tls-listen", po::value(&r.tls_listen), "HOST:PORT for wss clients (needs --tls-cert/--tls-key)")
    ("admin-listen", po::value(&r.admin_listen), "HOST:PORT for /healthz /readyz /metrics /v1/*")
    ("tls-cert", po::value(&r.tls_cert), "PEM certificate chain (ECDSA or RSA)")
    ("tls-key", po::value(&r.tls_key), "PEM private key")
    ("video-servers", po::value(&r.video_servers), "JSON file: [{id,url,region,capacity}]")
    ("auth-secret", po::value(&r.auth_secret),
     "HS256 key for client tokens (prefer VROUTER_AUTH_SECRET: flags show in ps)")
    ("admin-token", po::value(&r.admin_token),
     "bearer token that may read and write on the admin port (prefer VROUTER_ADMIN_TOKEN); "
     "with no admin token at all, only loopback may use /v1/*")
    ("admin-read-token", po::value(&r.admin_read_token),
     "bearer token that may only read on the admin port (prefer VROUTER_ADMIN_READ_TOKEN)")
    ("replica-id", po::value(&r.replica_id), "name of this replica (default: hostname-random)")
    ("threads", po::value(&r.threads)->default_value(hw), "worker threads, one io_context each")
    ("max-connections", po::value(&r.max_connections)->default_value(d.limits.max_connections),
     "client connections before refusing with 503 (0: open-files limit minus a reserve)")
    ("backlog", po::value(&r.backlog)->default_value(d.backlog), "listen backlog (connect storms)")
    ("max-message-bytes", po::value(&r.max_message_bytes)->default_value(d.limits.max_message_bytes),
     "largest client frame; above it the connection closes with 1009")
    ("max-batch", po::value(&r.max_batch)->default_value(d.limits.max_batch), "user ids per lookup/watch")
    ("max-watches", po::value(&r.max_watches)->default_value(d.limits.max_watches), "watched users per session")
    ("send-queue-bytes", po::value(&r.send_queue_bytes)->default_value(d.limits.max_send_queue_bytes),
     "per-session send queue; a client that lets it fill is closed (slow consumer)")
    ("max-pings-per-second", po::value(&r.max_pings)->default_value(d.limits.max_pings_per_second),
     "WebSocket pings a client may send per second before close 1008")
    ("handshake-timeout-ms", po::value(&r.handshake_ms)->default_value(ms(d.limits.handshake_timeout)),
     "TLS + HTTP upgrade deadline")
    ("hello-timeout-ms", po::value(&r.hello_ms)->default_value(ms(d.limits.hello_timeout)),
     "time from upgrade to a successful hello")
    ("idle-timeout-ms", po::value(&r.idle_ms)->default_value(ms(d.limits.idle_timeout)),
     "silence before the router pings, then closes (pings at half of it)")
    ("resume-grace-ms", po::value(&r.grace_ms)->default_value(ms(d.resume_grace)),
     "how long a disconnected user's assignment waits for a resume")
    ("drain-window-ms", po::value(&r.drain_ms)->default_value(ms(d.drain_window)),
     "on SIGTERM, clients are sent goaway and closed spread over this window")
    ("token-leeway-s", po::value(&r.leeway_s)->default_value(d.token_leeway_seconds),
     "clock skew tolerated on token exp/nbf")
    ("log-level", po::value(&r.log_level)->default_value(d.log_level),
     "trace, debug, info, warn, error, critical, off")
    ("store", po::value(&r.store)->default_value("memory"),
     "memory (one replica) or redis://[:PASSWORD@]HOST:PORT[/DB] shared by every replica "
     "(prefer VROUTER_STORE when it holds a password)")
    ("redis-timeout-ms", po::value(&r.redis_timeout_ms)->default_value(ms(d.redis_timeout)),
     "Redis connect and command deadline; past it the replica treats Redis as down")
    ("lease-ttl-ms", po::value(&r.lease_ttl_ms)->default_value(ms(d.lease_ttl)),
     "a replica silent this long is dead: its users' resume grace starts");
  // clang-format on
  return o;
}

po::options_description SecurityOptions(Raw& r, const Config& d) {
  po::options_description o("Security and abuse limits (threat model and defaults: SECURITY.md)");
  // clang-format off
  o.add_options()
    ("auth-keys-dir", po::value(&r.auth_keys_dir),
     "directory of client token keys named by kid: <kid>.pem (ES256 public key), <kid>.secret "
     "(HS256); re-read when it changes, for rotation")
    ("allowed-origins", po::value(&r.allowed_origins),
     "comma-separated browser Origins allowed on /v1/client (e.g. https://app.example.com); "
     "others get 403; requests without Origin (non-browser clients) pass; empty: any")
    ("max-connections-per-ip", po::value(&r.max_per_ip)->default_value(d.limits.max_connections_per_ip),
     "client connections from one IP before 429 (0: no limit)")
    ("max-handshakes", po::value(&r.max_handshakes)->default_value(d.limits.max_handshakes),
     "TLS handshakes and upgrades in flight before the listeners pause accepting (0: no limit)")
    ("rate-limits", po::value(&r.rate_limits),
     "per-connection limits overriding the defaults, TYPE=RATE:BURST,... (e.g. lookup=50:200), "
     "or off")
    ("proxy-protocol", po::value(&r.proxy_protocol)->implicit_value(true)->default_value(false),
     "client listeners read a PROXY protocol v1/v2 header from --trusted-proxies")
    ("trusted-proxies", po::value(&r.trusted_proxies),
     "comma-separated CIDRs of load balancers whose PROXY header and X-Forwarded-For are believed")
    ("region-cidrs", po::value(&r.region_cidrs),
     "file of \"CIDR REGION\" lines: the region of a client whose token names none")
    ("reload-interval-ms", po::value(&r.reload_ms)->default_value(static_cast<std::uint32_t>(d.reload_interval.count())),
     "how often the TLS certificate, token keys and region table are checked for changes");
  // clang-format on
  return o;
}

// Not e.what(): Boost 1.81 substitutes its %placeholders% in a loop that never ends when the
// offending value itself contains one ("--threads=%value%" hung the replica at start-up; found by
// tests/fuzz/config_fuzz.cc).
std::string Describe(const po::error_with_option_name& e) {
  std::string what = "bad usage";
  if (dynamic_cast<const po::unknown_option*>(&e) != nullptr) {
    what = "unknown option";
  } else if (dynamic_cast<const po::multiple_occurrences*>(&e) != nullptr) {
    what = "given more than once";
  } else if (dynamic_cast<const po::validation_error*>(&e) != nullptr) {
    what = "invalid value";
  } else if (dynamic_cast<const po::invalid_command_line_syntax*>(&e) != nullptr) {
    what = "malformed (missing or unexpected value?)";
  }
  const std::string option = e.get_option_name();
  return (option.empty() ? std::string("an option") : option) + ": " + what;
}

using base::options::SplitList;

std::string EnvName(const std::string& option) {
  std::string name = "VROUTER_";
  for (char c : option) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

}  // namespace

std::variant<std::optional<RedisUrl>, std::string> ParseStoreUrl(std::string_view text) {
  using Result = std::variant<std::optional<RedisUrl>, std::string>;
  if (text == "memory") return Result(std::in_place_index<0>, std::nullopt);
  if (text.starts_with("rediss://")) {
    return Result(std::in_place_index<1>,
                  "TLS to Redis is not supported: Debian 12's hiredis 0.14 has no TLS; run a TLS "
                  "tunnel (e.g. stunnel) on loopback and point redis:// at it");
  }
  constexpr std::string_view kScheme = "redis://";
  if (!text.starts_with(kScheme)) {
    return Result(std::in_place_index<1>,
                  "expected 'memory' or redis://[:PASSWORD@]HOST:PORT[/DB]");
  }
  text.remove_prefix(kScheme.size());
  RedisUrl url;
  if (const auto at = text.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = text.substr(0, at);
    if (const auto colon = auth.find(':'); colon != std::string_view::npos) {
      auth.remove_prefix(colon + 1);  // user names (ACL) are not used: the password alone
    }
    url.password = std::string(auth);
    text.remove_prefix(at + 1);
  }
  if (const auto slash = text.find('/'); slash != std::string_view::npos) {
    const std::string_view db = text.substr(slash + 1);
    if (!db.empty()) {
      const auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), url.db);
      if (ec != std::errc() || end != db.data() + db.size() || url.db < 0 || url.db > 15) {
        return Result(std::in_place_index<1>, "database must be a number in [0, 15]");
      }
    }
    text = text.substr(0, slash);
  }
  if (text.starts_with('[')) {  // [IPv6]:port
    const auto close = text.find(']');
    if (close == std::string_view::npos) return Result(std::in_place_index<1>, "unclosed '['");
    url.host = std::string(text.substr(1, close - 1));
    text.remove_prefix(close + 1);
    if (!text.empty() && !text.starts_with(':')) {
      return Result(std::in_place_index<1>, "expected ':PORT' after ']'");
    }
  } else {
    const auto colon = text.rfind(':');
    url.host = std::string(text.substr(0, colon));
    text = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
  }
  if (text.starts_with(':')) {
    text.remove_prefix(1);
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535) {
      return Result(std::in_place_index<1>, "port must be a number in [1, 65535]");
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  if (url.host.empty()) return Result(std::in_place_index<1>, "missing host");
  return Result(std::in_place_index<0>, std::move(url));
}

ParsedArgs ParseServeArgs(const std::vector<std::string>& args, const EnvLookup& env,
                          const HostFacts& host) {
  ParsedArgs out;
  const Config defaults;
  Raw raw;
  const unsigned hw = std::clamp(host.hardware_threads, 1u, 256u);
  po::options_description options = Options(raw, defaults, hw);
  options.add(FleetOptions(raw, defaults.fleet));
  options.add(SecurityOptions(raw, defaults));
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    // Environment second: po::store keeps the first value it saw, so flags win.
    std::vector<std::string> env_args;
    for (const auto& opt : options.options()) {
      const std::string& name = opt->long_name();
      if (name == "help") continue;
      if (auto value = env(EnvName(name))) env_args.push_back("--" + name + "=" + *value);
    }
    po::store(po::command_line_parser(env_args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error_with_option_name& e) {
    out.error = Describe(e);
    return out;
  } catch (const po::error& e) {
    out.error = e.what();
    return out;
  }
  if (vm.count("help") != 0) {
    std::ostringstream help;
    help << "usage: vrouter [serve] [options]\n"
            "       vrouter mint-token --user USER --space SPACE [--ttl-s N]\n"
            "       vrouter --version\n\n"
         << options;
    out.help = help.str();
    return out;
  }

  Config c;
  auto endpoint = [&](const std::string& text, const char* flag,
                      std::optional<HostPort>& dst) -> bool {
    if (text.empty()) return true;
    dst = ParseHostPort(text);
    if (!dst)
      out.error = std::string(flag) + ": '" + text +
                  "' is not HOST:PORT with a numeric "
                  "IP (or localhost) and a port 0-65535";
    return dst.has_value();
  };
  if (!endpoint(raw.listen, "--listen", c.listen) ||
      !endpoint(raw.tls_listen, "--tls-listen", c.tls_listen) ||
      !endpoint(raw.admin_listen, "--admin-listen", c.admin_listen)) {
    return out;
  }
  auto fail = [&](std::string message) {
    out.error = std::move(message);
    return out;
  };
  if (!c.listen && !c.tls_listen) return fail("--listen or --tls-listen is required");
  if (c.tls_listen && (raw.tls_cert.empty() || raw.tls_key.empty())) {
    return fail("--tls-listen needs --tls-cert and --tls-key");
  }
  if (!c.tls_listen && (!raw.tls_cert.empty() || !raw.tls_key.empty())) {
    return fail("--tls-cert/--tls-key given without --tls-listen");
  }
  c.tls_certs = SplitList(raw.tls_cert);
  c.tls_keys = SplitList(raw.tls_key);
  if (c.tls_listen && c.tls_certs.empty())
    return fail("--tls-listen needs --tls-cert and --tls-key");
  if (c.tls_certs.size() != c.tls_keys.size() || c.tls_certs.size() > 2) {
    return fail(
        "--tls-cert and --tls-key must list the same number of files (one pair, or two: one "
        "ECDSA and one RSA)");
  }
  if (raw.threads < 1 || raw.threads > 256) return fail("--threads must be in [1, 256]");
  if (raw.backlog < 1 || raw.backlog > 65535) return fail("--backlog must be in [1, 65535]");
  if (raw.max_message_bytes < 1024 || raw.max_message_bytes > 16 * 1024 * 1024) {
    return fail("--max-message-bytes must be in [1024, 16777216]");
  }
  if (raw.max_batch < 1 || raw.max_batch > 100000)
    return fail("--max-batch must be in [1, 100000]");
  if (raw.max_watches < 1 || raw.max_watches > 1000000) {
    return fail("--max-watches must be in [1, 1000000]");
  }
  if (raw.send_queue_bytes < raw.max_message_bytes) {
    return fail("--send-queue-bytes must be at least --max-message-bytes");
  }
  if (raw.max_pings < 1) return fail("--max-pings-per-second must be at least 1");
  if (raw.handshake_ms < 100 || raw.hello_ms < 100 || raw.idle_ms < 1000) {
    return fail(
        "--handshake-timeout-ms and --hello-timeout-ms must be >= 100, "
        "--idle-timeout-ms >= 1000");
  }
  if (raw.leeway_s < 0 || raw.leeway_s > 3600) return fail("--token-leeway-s must be in [0, 3600]");
  // Unsigned options take "-1" as a huge number (Boost's lexical_cast): bound what would
  // otherwise wrap around silently.
  constexpr std::uint32_t kDayMs = 24 * 3600 * 1000;
  if (raw.grace_ms > kDayMs || raw.drain_ms > kDayMs) {
    return fail("--resume-grace-ms and --drain-window-ms must be at most a day (86400000)");
  }
  if (raw.max_connections > 100'000'000) return fail("--max-connections must be at most 1e8");
  if (raw.send_queue_bytes > std::uint64_t{1} << 30) {
    return fail("--send-queue-bytes must be at most 1 GiB");
  }
  if (!raw.replica_id.empty() && (raw.replica_id.size() > 64 ||
                                  raw.replica_id.find_first_of(" \t\r\n\"") != std::string::npos)) {
    return fail("--replica-id must be 1-64 characters without spaces or quotes");
  }
  static constexpr const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                            "error", "critical", "off"};
  if (std::find(std::begin(kLevels), std::end(kLevels), raw.log_level) == std::end(kLevels)) {
    return fail("--log-level must be one of trace, debug, info, warn, error, critical, off");
  }

  if (std::string err = FleetFromRaw(raw, c.fleet); !err.empty()) return fail(std::move(err));
  auto store = ParseStoreUrl(raw.store);
  if (auto* err = std::get_if<std::string>(&store)) return fail("--store: " + *err);
  c.redis = std::get<0>(std::move(store));
  if (raw.redis_timeout_ms < 10 || raw.redis_timeout_ms > 60000) {
    return fail("--redis-timeout-ms must be in [10, 60000]");
  }
  if (raw.lease_ttl_ms < 1000 || raw.lease_ttl_ms > 600000) {
    return fail("--lease-ttl-ms must be in [1000, 600000]");
  }
  c.redis_timeout = std::chrono::milliseconds(raw.redis_timeout_ms);
  c.lease_ttl = std::chrono::milliseconds(raw.lease_ttl_ms);

  for (const auto& [flag, token] : {std::pair{"--admin-token", &raw.admin_token},
                                    std::pair{"--admin-read-token", &raw.admin_read_token}}) {
    if (token->empty()) continue;
    const bool printable =
        std::all_of(token->begin(), token->end(), [](char ch) { return ch > ' ' && ch < 0x7f; });
    if (token->size() < edge::kMinAdminTokenLength || !printable) {
      return fail(std::string(flag) + " must be at least " +
                  std::to_string(edge::kMinAdminTokenLength) +
                  " printable characters without spaces (e.g. openssl rand -hex 16)");
    }
  }
  if (!raw.admin_token.empty() && raw.admin_token == raw.admin_read_token) {
    return fail("--admin-read-token must differ from --admin-token");
  }
  c.admin_token = raw.admin_token;
  c.admin_read_token = raw.admin_read_token;
  c.video_servers_file = raw.video_servers;
  c.auth_secret = raw.auth_secret;
  c.video_server_secret = raw.video_server_secret;
  c.replica_id = raw.replica_id;
  c.threads = raw.threads;
  c.limits.max_connections = raw.max_connections;
  c.backlog = raw.backlog;
  c.limits.max_message_bytes = raw.max_message_bytes;
  c.limits.max_batch = raw.max_batch;
  c.limits.max_watches = raw.max_watches;
  c.limits.max_send_queue_bytes = raw.send_queue_bytes;
  c.limits.max_pings_per_second = raw.max_pings;
  c.limits.handshake_timeout = std::chrono::milliseconds(raw.handshake_ms);
  c.limits.hello_timeout = std::chrono::milliseconds(raw.hello_ms);
  c.limits.idle_timeout = std::chrono::milliseconds(raw.idle_ms);
  c.resume_grace = std::chrono::milliseconds(raw.grace_ms);
  c.drain_window = std::chrono::milliseconds(raw.drain_ms);
  c.token_leeway_seconds = raw.leeway_s;
  c.log_level = raw.log_level;

  c.auth_keys_dir = raw.auth_keys_dir;
  c.allowed_origins = SplitList(raw.allowed_origins);
  for (const auto& origin : c.allowed_origins) {
    if (!(origin.starts_with("https://") || origin.starts_with("http://")) ||
        origin.find('/', origin.find("//") + 2) != std::string::npos) {
      return fail("--allowed-origins: '" + origin +
                  "' is not an origin (scheme://host[:port], no path, e.g. "
                  "https://app.example.com)");
    }
  }
  c.limits.max_connections_per_ip = raw.max_per_ip;
  c.limits.max_handshakes = raw.max_handshakes;
  if (!raw.rate_limits.empty()) {
    auto limits = edge::ParseRateLimits(raw.rate_limits, edge::RateLimits::Defaults());
    if (auto* err = std::get_if<std::string>(&limits)) return fail("--rate-limits: " + *err);
    c.limits.rate_limits = std::get<edge::RateLimits>(std::move(limits));
  }
  c.proxy_protocol = raw.proxy_protocol;
  c.trusted_proxies = raw.trusted_proxies;
  if (c.proxy_protocol && c.trusted_proxies.empty()) {
    return fail("--proxy-protocol needs --trusted-proxies (the load balancers' addresses)");
  }
  c.region_cidrs_file = raw.region_cidrs;
  if (raw.reload_ms < 100 || raw.reload_ms > 3600000) {
    return fail("--reload-interval-ms must be in [100, 3600000]");
  }
  c.reload_interval = std::chrono::milliseconds(raw.reload_ms);
  // What the flags leave to the machine, derived here so that the Config is complete.
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

}  // namespace vrouter::app
