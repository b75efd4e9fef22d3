// An in-process router replica on loopback port 0 (ws, wss and admin) for integration tests,
// with a small static fleet, a known token secret, and short timeouts where a test needs them.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "router/app/config.h"
#include "router/app/server.h"

namespace vrouter::testing {

inline constexpr const char* kTestSecret = "integration-test-secret";
inline constexpr const char* kTestVideoServerSecret = "integration-test-video-server-secret";

// Two servers in eu-west, one in us-east; capacity 100 each; declared unmonitored (no reports
// expected), so the client-protocol tests need no simulated video servers.
std::string DefaultFleetJson();

class TestServer {
 public:
  // `tweak` edits the config before start (limits, timeouts).
  explicit TestServer(const std::function<void(app::Config&)>& tweak = {},
                      std::string fleet_json = DefaultFleetJson());
  ~TestServer();

  std::uint16_t ws_port() const { return server_->ws_port(); }
  std::uint16_t wss_port() const { return server_->wss_port(); }
  std::uint16_t admin_port() const { return server_->admin_port(); }
  app::Server& server() { return *server_; }
  // Starts the drain (as SIGTERM does) and waits for the replica to stop.
  void Shutdown();

 private:
  std::filesystem::path dir_;
  std::unique_ptr<app::Server> server_;
  bool stopped_ = false;
};

// A token for `user` in `space`, signed with kTestSecret, valid for an hour (or `ttl` seconds,
// negative for an expired one).
std::string Token(const std::string& user, const std::string& space = "space-1", long ttl = 3600);

}  // namespace vrouter::testing
