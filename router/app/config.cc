#include "router/app/config.h"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <sstream>

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
  boost::system::error_code addr_ec;
  boost::asio::ip::make_address(h, addr_ec);
  if (addr_ec) return std::nullopt;
  return HostPort{h, static_cast<std::uint16_t>(value)};
}

std::string ToString(const HostPort& hp) {
  return hp.host.find(':') != std::string::npos ? "[" + hp.host + "]:" + std::to_string(hp.port)
                                                : hp.host + ":" + std::to_string(hp.port);
}

namespace {

struct Raw {
  std::string listen, tls_listen, admin_listen, tls_cert, tls_key, video_servers, auth_secret,
      replica_id, log_level;
  unsigned threads = 0;
  std::uint64_t max_connections = 0, send_queue_bytes = 0;
  int backlog = 0;
  std::uint32_t max_message_bytes = 0, max_batch = 0, max_watches = 0, max_pings = 0;
  std::uint32_t handshake_ms = 0, hello_ms = 0, idle_ms = 0, grace_ms = 0, drain_ms = 0;
  std::int64_t leeway_s = 0;
};

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
    ("replica-id", po::value(&r.replica_id), "name of this replica (default: hostname-random)")
    ("threads", po::value(&r.threads)->default_value(hw), "worker threads, one io_context each")
    ("max-connections", po::value(&r.max_connections)->default_value(0),
     "client connections before refusing with 503 (0: open-files limit minus a reserve)")
    ("backlog", po::value(&r.backlog)->default_value(d.backlog), "listen backlog (connect storms)")
    ("max-message-bytes", po::value(&r.max_message_bytes)->default_value(d.max_message_bytes),
     "largest client frame; above it the connection closes with 1009")
    ("max-batch", po::value(&r.max_batch)->default_value(d.max_batch), "user ids per lookup/watch")
    ("max-watches", po::value(&r.max_watches)->default_value(d.max_watches), "watched users per session")
    ("send-queue-bytes", po::value(&r.send_queue_bytes)->default_value(d.send_queue_bytes),
     "per-session send queue; a client that lets it fill is closed (slow consumer)")
    ("max-pings-per-second", po::value(&r.max_pings)->default_value(d.max_pings_per_second),
     "WebSocket pings a client may send per second before close 1008")
    ("handshake-timeout-ms", po::value(&r.handshake_ms)->default_value(ms(d.handshake_timeout)),
     "TLS + HTTP upgrade deadline")
    ("hello-timeout-ms", po::value(&r.hello_ms)->default_value(ms(d.hello_timeout)),
     "time from upgrade to a successful hello")
    ("idle-timeout-ms", po::value(&r.idle_ms)->default_value(ms(d.idle_timeout)),
     "silence before the router pings, then closes (pings at half of it)")
    ("resume-grace-ms", po::value(&r.grace_ms)->default_value(ms(d.resume_grace)),
     "how long a disconnected user's assignment waits for a resume")
    ("drain-window-ms", po::value(&r.drain_ms)->default_value(ms(d.drain_window)),
     "on SIGTERM, clients are sent goaway and closed spread over this window")
    ("token-leeway-s", po::value(&r.leeway_s)->default_value(d.token_leeway_seconds),
     "clock skew tolerated on token exp/nbf")
    ("log-level", po::value(&r.log_level)->default_value(d.log_level),
     "trace, debug, info, warn, error, critical, off");
  // clang-format on
  return o;
}

std::string EnvName(const std::string& option) {
  std::string name = "VROUTER_";
  for (char c : option) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

}  // namespace

ParsedArgs ParseServeArgs(const std::vector<std::string>& args, const EnvLookup& env,
                          unsigned hardware_threads) {
  ParsedArgs out;
  const Config defaults;
  Raw raw;
  const unsigned hw = hardware_threads == 0 ? 1 : hardware_threads;
  po::options_description options = Options(raw, defaults, hw);
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
  if (!raw.replica_id.empty() && (raw.replica_id.size() > 64 ||
                                  raw.replica_id.find_first_of(" \t\r\n\"") != std::string::npos)) {
    return fail("--replica-id must be 1-64 characters without spaces or quotes");
  }
  static constexpr const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                            "error", "critical", "off"};
  if (std::find(std::begin(kLevels), std::end(kLevels), raw.log_level) == std::end(kLevels)) {
    return fail("--log-level must be one of trace, debug, info, warn, error, critical, off");
  }

  c.tls_cert = raw.tls_cert;
  c.tls_key = raw.tls_key;
  c.video_servers_file = raw.video_servers;
  c.auth_secret = raw.auth_secret;
  c.replica_id = raw.replica_id;
  c.threads = raw.threads;
  c.max_connections = raw.max_connections;
  c.backlog = raw.backlog;
  c.max_message_bytes = raw.max_message_bytes;
  c.max_batch = raw.max_batch;
  c.max_watches = raw.max_watches;
  c.send_queue_bytes = raw.send_queue_bytes;
  c.max_pings_per_second = raw.max_pings;
  c.handshake_timeout = std::chrono::milliseconds(raw.handshake_ms);
  c.hello_timeout = std::chrono::milliseconds(raw.hello_ms);
  c.idle_timeout = std::chrono::milliseconds(raw.idle_ms);
  c.resume_grace = std::chrono::milliseconds(raw.grace_ms);
  c.drain_window = std::chrono::milliseconds(raw.drain_ms);
  c.token_leeway_seconds = raw.leeway_s;
  c.log_level = raw.log_level;
  out.config = std::move(c);
  return out;
}

}  // namespace vrouter::app
