// vrouter: the video router. `vrouter --help` lists everything.
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "router/app/host_facts.h"
#include "router/app/server.h"
#include "router/app/settings.h"
#include "router/base/log.h"
#include "router/edge/token.h"

namespace {

std::optional<std::string> GetEnv(const std::string& name) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read while parsing, before any thread starts
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// vrouter mint-token --user U --space S [--ttl-s N] [--auth-secret K | VROUTER_AUTH_SECRET]
// vrouter mint-token --video-server ID [--ttl-s N] [--video-server-secret K |
//                    VROUTER_VIDEO_SERVER_SECRET]
int MintToken(const std::vector<std::string>& args) {
  std::string user, space, server, secret = GetEnv("VROUTER_AUTH_SECRET").value_or("");
  std::string server_secret = GetEnv("VROUTER_VIDEO_SERVER_SECRET").value_or("");
  long ttl = 3600;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    std::optional<std::string> v;
    if (a == "--help" || a == "-h") {
      std::cout << "usage: vrouter mint-token --user USER --space SPACE [--ttl-s SECONDS]\n"
                   "       [--auth-secret KEY] (default: $VROUTER_AUTH_SECRET)\n"
                   "   or: vrouter mint-token --video-server ID [--ttl-s SECONDS]\n"
                   "       [--video-server-secret KEY] (default: $VROUTER_VIDEO_SERVER_SECRET)\n"
                   "Prints an HS256 client token, or a video-server credential, for development\n"
                   "and tests.\n";
      return 0;
    }
    if ((a == "--user" || a == "--space" || a == "--ttl-s" || a == "--auth-secret" ||
         a == "--video-server" || a == "--video-server-secret") &&
        !(v = next())) {
      std::cerr << "vrouter mint-token: " << a << " needs a value\n";
      return 2;
    }
    if (a == "--user") {
      user = *v;
    } else if (a == "--space") {
      space = *v;
    } else if (a == "--auth-secret") {
      secret = *v;
    } else if (a == "--video-server") {
      server = *v;
    } else if (a == "--video-server-secret") {
      server_secret = *v;
    } else if (a == "--ttl-s") {
      char* end = nullptr;
      ttl = std::strtol(v->c_str(), &end, 10);
      if (*end != '\0' || ttl <= 0) {
        std::cerr << "vrouter mint-token: --ttl-s must be a positive integer\n";
        return 2;
      }
    } else {
      std::cerr << "vrouter mint-token: unknown argument '" << a << "'\n";
      return 2;
    }
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  if (!server.empty()) {
    if (server_secret.empty()) {
      std::cerr << "vrouter mint-token: --video-server needs --video-server-secret or "
                   "VROUTER_VIDEO_SERVER_SECRET\n";
      return 2;
    }
    const std::string token = vrouter::edge::MintServerToken(server, server_secret, now, now + ttl);
    if (token.empty()) {
      std::cerr << "vrouter mint-token: signing failed\n";
      return 1;
    }
    std::cout << token << "\n";
    return 0;
  }
  if (user.empty() || space.empty() || secret.empty()) {
    std::cerr << "vrouter mint-token: --user, --space and a secret (--auth-secret or "
                 "VROUTER_AUTH_SECRET) are required\n";
    return 2;
  }
  const std::string token = vrouter::edge::MintToken(user, space, secret, now, now + ttl);
  if (token.empty()) {
    std::cerr << "vrouter mint-token: signing failed\n";
    return 1;
  }
  std::cout << token << "\n";
  return 0;
}

int Serve(const std::vector<std::string>& args) {
  // Before the facts are read: the connection budget follows the raised limit.
  const auto raised = vrouter::app::RaiseOpenFilesLimit();
  const auto parsed = vrouter::app::ParseServeArgs(args, GetEnv, vrouter::app::ReadHostFacts());
  if (!parsed.help.empty()) {
    std::cout << parsed.help;
    return 0;
  }
  if (!parsed.config) {
    std::cerr << "vrouter: " << parsed.error << "\n(see vrouter --help)\n";
    return 2;
  }
  vrouter::log::Init(parsed.config->log_level);
  if (raised) {
    vrouter::log::Info("open_files_limit_raised", {{"from", raised->from}, {"to", raised->to}});
  }
  auto created = vrouter::app::Server::Create(*parsed.config);
  if (auto* err = created.error_message()) {
    vrouter::log::Error("startup_failed", {{"error", *err}});
    std::cerr << "vrouter: " << *err << "\n";
    return 2;
  }
  auto& server = *std::get<std::unique_ptr<vrouter::app::Server>>(created);
  server.HandleSignals();
  server.Start();
  server.Wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Abseil's lock-order (deadlock) detection is on in Debian's build of the library: a graph
  // lookup on every lock, ~260 instructions per lookup on the assignment table's shard lock
  // (BENCHMARKS.md, "The cost of lock-order checks"). Debug builds and the tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args.front() == "--version") {
    std::cout << "vrouter " << VROUTER_VERSION << " (" << VROUTER_GIT_COMMIT << ")\n";
    return 0;
  }
  if (!args.empty() && args.front() == "--help-settings-json") {
    std::cout << vrouter::app::SettingsJson(vrouter::app::ReadHostFacts());
    return 0;
  }
  if (!args.empty() && args.front() == "mint-token") {
    return MintToken({args.begin() + 1, args.end()});
  }
  if (!args.empty() && args.front() == "serve") args.erase(args.begin());
  return Serve(args);
}
