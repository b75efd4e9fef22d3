#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <vector>

namespace vrouter::testing {
namespace {

using Clock = std::chrono::steady_clock;

// A port nobody listens on now: the kernel picks it for a socket bound to port 0. (Another
// process could take it before redis-server binds it; on a test machine that is rare enough.)
std::uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// True when something on the port answers an inline PING (+PONG, or -NOAUTH with requirepass).
bool Answers(std::uint16_t port) {
  const std::string reply = InlineCommand(port, "PING");
  return reply.starts_with('+') || reply.starts_with("-NOAUTH");
}

// Polls `done` every `every` until it holds (true) or `deadline` passes (false).
bool PollUntil(const std::function<bool()>& done, Clock::time_point deadline,
               std::chrono::milliseconds every = std::chrono::milliseconds(50)) {
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(every);
  }
  return true;
}

std::vector<std::uint16_t> PortsOf(const std::vector<std::unique_ptr<RedisServer>>& servers) {
  std::vector<std::uint16_t> out;
  out.reserve(servers.size());
  for (const auto& s : servers) out.push_back(s->port());
  return out;
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "vrouter-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    error_ = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  dir_ = tmpl;
  port_ = FreePort();
  if (!options_.tls_dir.empty()) tls_port_ = FreePort();
  if (port_ == 0 || (!options_.tls_dir.empty() && (tls_port_ == 0 || tls_port_ == port_))) {
    error_ = "no free port";
    return;
  }
  Launch();
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    if (paused_) ::kill(pid_, SIGCONT);
    Reap(SIGKILL);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

bool RedisServer::Launch() {
  error_.clear();
  const std::string port = std::to_string(port_);
  const std::string dir = dir_.string();
  const std::string logfile = (dir_ / "redis.log").string();
  std::vector<std::string> args = {options_.binary,
                                   "--port",
                                   port,
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir,
                                   "--logfile",
                                   logfile,
                                   "--daemonize",
                                   "no"};
  if (options_.cluster_node || options_.cluster_member) {
    if (options_.cluster_member) {
      args.push_back("--cluster-node-timeout");
      args.push_back("1000");
      // As README advises for vrouter: a shard without a primary stops only its own slots.
      args.push_back("--cluster-require-full-coverage");
      args.push_back("no");
    }
    args.push_back("--cluster-enabled");
    args.push_back("yes");
    args.push_back("--cluster-config-file");
    args.push_back((dir_ / "nodes.conf").string());
    // The bus port defaults to the port + 10000, past 65535 for most ephemeral ports.
    if (cluster_bus_port_ == 0) cluster_bus_port_ = FreePort();
    args.push_back("--cluster-port");
    args.push_back(std::to_string(cluster_bus_port_));
  }
  if (options_.replica_of != 0) {
    args.push_back("--replicaof");
    args.push_back("127.0.0.1");
    args.push_back(std::to_string(options_.replica_of));
  }
  if (options_.sentinel_for != 0) {
    // A Sentinel reads (and rewrites) a configuration file; written again on every launch.
    const std::string conf = (dir_ / "sentinel.conf").string();
    const std::string& name = options_.master_name;
    std::ofstream(conf) << "port " << port << "\nbind 127.0.0.1\ndir " << dir << "\nlogfile "
                        << logfile << "\nsentinel monitor " << name << " 127.0.0.1 "
                        << options_.sentinel_for << " 2\nsentinel down-after-milliseconds " << name
                        << " 1000\nsentinel failover-timeout " << name
                        << " 5000\nsentinel parallel-syncs " << name << " 1\n";
    args = {options_.binary, conf, "--sentinel"};
  }
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  if (!options_.tls_dir.empty()) {
    const std::string cert = options_.tls_dir + "/cert.pem";
    for (std::string a : {std::string("--tls-port"), std::to_string(tls_port_),
                          std::string("--tls-cert-file"), cert, std::string("--tls-key-file"),
                          options_.tls_dir + "/key.pem", std::string("--tls-ca-cert-file"), cert,
                          std::string("--tls-auth-clients"), std::string("yes")}) {
      args.push_back(std::move(a));
    }
    if (options_.sentinel_for != 0 || options_.cluster_member) {
      args.push_back("--tls-replication");
      args.push_back("yes");
    }
    if (options_.cluster_member) {  // the bus too; CLUSTER SLOTS then names the TLS ports
      args.push_back("--tls-cluster");
      args.push_back("yes");
    }
  }
  if (!options_.acl_user.empty()) {
    args.push_back("--user");
    // The directive's words, one argument each (redis-server joins them into one config line).
    std::size_t start = 0;
    while (start < options_.acl_user.size()) {
      const std::size_t end =
          std::min(options_.acl_user.find(' ', start), options_.acl_user.size());
      if (end > start) args.push_back(options_.acl_user.substr(start, end - start));
      start = end + 1;
    }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Early errors (bad arguments) go to stderr, not the log file.
  int out = ::open((dir_ / "stderr.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) {
    error_ = std::string("open stderr.log: ") + std::strerror(errno);
    return false;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    ::close(out);
    return false;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec (the parent has threads).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no leftover server if the test process dies
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    // The test's own sockets (hiredis does not set CLOEXEC) must not live on in the server.
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  pid_ = pid;
  paused_ = false;
  if (!WaitReady()) return false;
  if (!options_.cluster_node) return true;
  // Every slot to this node (a no-op error on a restart: it keeps them in nodes.conf), then wait
  // for the cluster to say ok.
  InlineCommand(port_, "CLUSTER ADDSLOTSRANGE 0 16383");
  if (!PollUntil(
          [&] {
            return InlineCommand(port_, "CLUSTER INFO").find("cluster_state:ok") !=
                   std::string::npos;
          },
          Clock::now() + std::chrono::seconds(10))) {
    error_ = "the one-node cluster never reached cluster_state:ok";
    return false;
  }
  return true;
}

bool RedisServer::WaitReady() {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "redis-server exited (status " + std::to_string(status) +
               "): " + ReadFile(dir_ / "stderr.log") + ReadFile(dir_ / "redis.log");
      return false;
    }
    if (Answers(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  error_ = "redis-server did not answer PING within 10 s: " + ReadFile(dir_ / "redis.log");
  Reap(SIGKILL);
  return false;
}

void RedisServer::Reap(int signal) {
  if (pid_ <= 0) return;
  ::kill(pid_, signal);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  paused_ = false;
}

bool RedisServer::Stop() {
  if (pid_ <= 0) return true;
  if (paused_) Resume();
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Reap(SIGKILL);
  return false;
}

void RedisServer::Kill() { Reap(SIGKILL); }

bool RedisServer::Pause() {
  if (pid_ <= 0 || ::kill(pid_, SIGSTOP) != 0) return false;
  // Returns once it is stopped, so the test's next step meets a stalled server.
  int status = 0;
  while (::waitpid(pid_, &status, WUNTRACED) < 0 && errno == EINTR) {
  }
  paused_ = true;
  return WIFSTOPPED(status);
}

bool RedisServer::Resume() {
  if (pid_ <= 0 || ::kill(pid_, SIGCONT) != 0) return false;
  paused_ = false;
  return true;
}

bool RedisServer::Restart() {
  Stop();
  return Launch();
}

std::string InlineCommand(std::uint16_t port, const std::string& command) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  timeval tv{0, 500 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  std::string out;
  const std::string line = command + "\r\n";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
    char buf[4096];
    ssize_t n = 0;
    // A reply of a few KB at most arrives in one go on loopback; stop at the first short read.
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      if (n < static_cast<ssize_t>(sizeof(buf))) break;
    }
  }
  ::close(fd);
  return out;
}

bool SentinelFleet::Start(std::string& error) {
  primary_ = std::make_unique<RedisServer>();
  if (!primary_->ok()) {
    error = "primary: " + primary_->error();
    return false;
  }
  RedisServerOptions replica;
  replica.replica_of = primary_->port();
  replica_ = std::make_unique<RedisServer>(replica);
  if (!replica_->ok()) {
    error = "replica: " + replica_->error();
    return false;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  if (!PollUntil(
          [&] {
            return InlineCommand(replica_->port(), "INFO replication")
                       .find("master_link_status:up") != std::string::npos;
          },
          deadline)) {
    error = "the replica never synced";
    return false;
  }
  for (int i = 0; i < 3; ++i) {
    RedisServerOptions s;
    s.sentinel_for = primary_->port();
    s.master_name = kMasterName;
    sentinels_.push_back(std::make_unique<RedisServer>(s));
    if (!sentinels_.back()->ok()) {
      error = "sentinel: " + sentinels_.back()->error();
      return false;
    }
  }
  for (const auto& s : sentinels_) {
    // "*0" while it knows no replica (it learns them from the primary's INFO).
    if (!PollUntil(
            [&] {
              return InlineCommand(s->port(), std::string("SENTINEL replicas ") + kMasterName)
                  .starts_with("*1");
            },
            deadline, std::chrono::milliseconds(100))) {
      error = "a Sentinel never saw the replica";
      return false;
    }
  }
  return true;
}

std::vector<std::uint16_t> SentinelFleet::sentinel_ports() const { return PortsOf(sentinels_); }

bool ClusterFleet::Start(int primaries, int replicas, std::string& error,
                         const std::string& tls_dir) {
  std::string command = "/usr/bin/redis-cli --cluster create";
  if (!tls_dir.empty()) {
    const std::string cert = tls_dir + "/cert.pem";
    command += " --tls --cacert " + cert + " --cert " + cert + " --key " + tls_dir + "/key.pem";
  }
  for (int i = 0; i < primaries * (1 + replicas); ++i) {
    RedisServerOptions o;
    o.cluster_member = true;
    o.tls_dir = tls_dir;
    o.acl_user = acl_user;
    nodes_.push_back(std::make_unique<RedisServer>(o));
    if (!nodes_.back()->ok()) {
      error = "node: " + nodes_.back()->error();
      return false;
    }
    const auto& n = *nodes_.back();
    command += " 127.0.0.1:" + std::to_string(tls_dir.empty() ? n.port() : n.tls_port());
  }
  command += " --cluster-replicas " + std::to_string(replicas) + " --cluster-yes >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) {  // NOLINT(cert-env33-c): the tests' own command
    error = "redis-cli --cluster create failed";
    return false;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (const auto& n : nodes_) {
    if (!PollUntil(
            [&] {
              return InlineCommand(n->port(), "CLUSTER INFO").find("cluster_state:ok") !=
                     std::string::npos;
            },
            deadline)) {
      error = "the cluster never reached cluster_state:ok";
      return false;
    }
    // A replica that has not synced once cannot be promoted (its data would be too old).
    if (!PollUntil(
            [&] {
              const std::string info = InlineCommand(n->port(), "INFO replication");
              return info.find("role:master") != std::string::npos ||
                     info.find("master_link_status:up") != std::string::npos;
            },
            deadline)) {
      error = "a replica never synced";
      return false;
    }
  }
  return true;
}

std::vector<std::uint16_t> ClusterFleet::ports() const { return PortsOf(nodes_); }

std::string ClusterNodeId(std::uint16_t port) {
  const std::string reply = InlineCommand(port, "CLUSTER MYID");  // "$40\r\n<id>\r\n"
  const auto start = reply.find("\r\n");
  return start == std::string::npos ? "" : reply.substr(start + 2, 40);
}

bool ReshardCluster(std::uint16_t from, std::uint16_t to, int slots) {
  const std::string command =
      "/usr/bin/redis-cli --cluster reshard 127.0.0.1:" + std::to_string(from) +
      " --cluster-from " + ClusterNodeId(from) + " --cluster-to " + ClusterNodeId(to) +
      " --cluster-slots " + std::to_string(slots) +
      " --cluster-yes --cluster-pipeline 10 >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;  // NOLINT(cert-env33-c): the test's own command
}

}  // namespace vrouter::testing
