#include "tests/support/test_server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "router/edge/token.h"

#ifndef VROUTER_TEST_CERT_DIR
#error "VROUTER_TEST_CERT_DIR must point at the generated test certificate"
#endif

namespace vrouter::testing {

std::string DefaultFleetJson() {
  return R"([
    {"id": "sfu-a", "url": "wss://sfu-a.test/", "region": "eu-west", "capacity": 100,
     "monitored": false},
    {"id": "sfu-b", "url": "wss://sfu-b.test/", "region": "eu-west", "capacity": 100,
     "monitored": false},
    {"id": "sfu-c", "url": "wss://sfu-c.test/", "region": "us-east", "capacity": 100,
     "monitored": false}
  ])";
}

TestServer::TestServer(const std::function<void(app::Config&)>& tweak, std::string fleet_json) {
  static int counter = 0;
  dir_ = std::filesystem::temp_directory_path() /
         ("vrouter-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "fleet.json") << fleet_json;

  app::Config c;
  c.listen = app::HostPort{"127.0.0.1", 0};
  c.tls_listen = app::HostPort{"127.0.0.1", 0};
  c.admin_listen = app::HostPort{"127.0.0.1", 0};
  c.tls_certs = {std::string(VROUTER_TEST_CERT_DIR) + "/cert.pem"};
  c.tls_keys = {std::string(VROUTER_TEST_CERT_DIR) + "/key.pem"};
  c.video_servers_file = (dir_ / "fleet.json").string();
  c.auth_secret = kTestSecret;
  c.video_server_secret = kTestVideoServerSecret;
  c.replica_id = "test-replica";
  c.limits.max_connections = 10'000;  // what ParseServeArgs derives from the open-files limit
  c.threads = 2;
  c.drain_window = std::chrono::milliseconds(500);
  if (tweak) tweak(c);
  auto created = app::Server::Create(c);
  if (auto* err = created.error_message()) {
    ADD_FAILURE() << "server did not start: " << *err;
    return;
  }
  server_ = std::get<std::unique_ptr<app::Server>>(std::move(created));
  server_->Start();
}

void TestServer::Shutdown() {
  if (stopped_ || !server_) return;
  stopped_ = true;
  server_->BeginShutdown();
  server_->Wait();
}

TestServer::~TestServer() {
  Shutdown();
  server_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string Token(const std::string& user, const std::string& space, long ttl) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return edge::MintToken(user, space, kTestSecret, now - 10, now + ttl);
}

}  // namespace vrouter::testing
