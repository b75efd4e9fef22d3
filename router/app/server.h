// One router replica: worker threads (one io_context each), listeners, admin port, the store
// (in memory, or Redis with its own thread), the timers, and the shutdown sequence. main() and
// the integration tests drive it the same way:
//   auto server = Server::Create(config);  server->Start();  ...  server->BeginShutdown();
//   server->Wait();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include "router/app/config.h"
#include "router/base/result.h"

namespace vrouter::app {

class Server {
 public:
  // Validates what needs the filesystem (certificate, video-server file) and binds every port.
  // Returns a message naming the setting on failure.
  static base::Result<std::unique_ptr<Server>> Create(const Config& config);
  ~Server();

  // Starts the worker threads. Returns immediately.
  void Start();
  // Thread-safe, idempotent: turn unready, send goaway, drain, then stop (Wait returns).
  void BeginShutdown();
  // Blocks until the replica stopped. Installs SIGTERM/SIGINT handling when `handle_signals`.
  void Wait();
  void HandleSignals();

  // Bound ports (useful with port 0); 0 when that listener is not configured.
  std::uint16_t ws_port() const;
  std::uint16_t wss_port() const;
  std::uint16_t admin_port() const;
  const std::string& replica_id() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vrouter::app
