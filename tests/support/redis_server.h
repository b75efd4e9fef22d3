// A throwaway redis-server for tests: 127.0.0.1 only, a free port, no persistence, a temporary
// directory of its own, killed by the destructor (and by the kernel if the test process dies:
// PR_SET_PDEATHSIG). Not thread-safe: use it from the test's main thread (the one that created
// it, which the death signal is tied to).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace vrouter::testing {

struct RedisServerOptions {
  std::string binary = "/usr/bin/redis-server";
  std::string password;  // requirepass when not empty
  // An ACL user: "NAME on >PASSWORD RULES..." (the `user` directive), when not empty.
  std::string acl_user;
  // A directory holding cert.pem and key.pem (self-signed; also the CA), when not empty: a TLS
  // port besides the plain one (tls_port()), which asks clients for a certificate signed by it.
  std::string tls_dir;
  // A replica of the primary on this port of 127.0.0.1 (replicaof), when not 0.
  std::uint16_t replica_of = 0;
  // A Sentinel (redis-server --sentinel) monitoring the primary on this port of 127.0.0.1 as
  // `master_name`, quorum 2, down after 1 s, when not 0 (the other fields but tls_dir are then
  // ignored). With tls_dir, the Sentinel also listens for TLS and speaks TLS to the primary
  // (tls-replication: `sentinel_for` is then the primary's TLS port).
  std::uint16_t sentinel_for = 0;
  std::string master_name = "vrouter";
  // A Redis Cluster node (cluster-enabled) that serves all 16384 slots alone: it answers as a
  // cluster does, CROSSSLOT included, without other nodes.
  bool cluster_node = false;
  // A Redis Cluster node left for ClusterFleet to join to others (cluster-enabled, node timeout
  // 1 s, cluster-require-full-coverage no, no slots of its own yet).
  bool cluster_member = false;
};

class RedisServer {
 public:
  // Starts it and waits (up to 10 s) until it answers PING; check ok().
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();  // resumes it if paused, kills it, removes its directory

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }   // why it is not running
  std::uint16_t port() const { return port_; }          // plain
  std::uint16_t tls_port() const { return tls_port_; }  // options.tls_dir: TLS
  bool running() const { return pid_ > 0; }

  bool Stop();     // SIGTERM and wait (SIGKILL after 5 s); resumes it first if paused
  void Kill();     // SIGKILL and wait
  bool Pause();    // SIGSTOP: connections are accepted by the kernel but never answered
  bool Resume();   // SIGCONT
  bool Restart();  // Stop (if running), then start again on the same port; false: see error()

 private:
  bool Launch();  // fork/exec and wait for PING
  bool WaitReady();
  void Reap(int signal);

  RedisServerOptions options_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  std::uint16_t cluster_bus_port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
  std::string error_;
};

// A primary, its replica and three Sentinels watching it (as "vrouter"), all on 127.0.0.1: what
// the Sentinel tests fail over. Start() returns once the replica is in sync and every Sentinel
// knows it (so that it can be promoted).
class SentinelFleet {
 public:
  bool Start(std::string& error);
  RedisServer& primary() { return *primary_; }
  RedisServer& replica() { return *replica_; }
  std::vector<std::uint16_t> sentinel_ports() const;
  static constexpr const char* kMasterName = "vrouter";

 private:
  std::unique_ptr<RedisServer> primary_, replica_;
  std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

// A Redis Cluster made the way operators make one (`redis-cli --cluster create`): `primaries`
// primaries, each with `replicas` replicas, node timeout 1 s. Start() returns once every node says
// cluster_state:ok.
class ClusterFleet {
 public:
  // With `tls_dir` (as RedisServerOptions::tls_dir): the cluster speaks TLS on its bus and to
  // clients that connect over TLS, whom CLUSTER SLOTS tells the TLS ports (tls_port()).
  bool Start(int primaries, int replicas, std::string& error, const std::string& tls_dir = {});
  // An ACL user on every node (RedisServerOptions::acl_user), when set before Start().
  std::string acl_user;
  std::vector<std::unique_ptr<RedisServer>>& nodes() { return nodes_; }
  // Every node's port, in creation order: redis-cli made the first `primaries` the primaries, in
  // slot order.
  std::vector<std::uint16_t> ports() const;

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// An inline command (e.g. "INFO replication") to 127.0.0.1:`port` over a fresh socket: what
// arrives within 500 ms (empty when nothing does). For tests' readiness checks.
std::string InlineCommand(std::uint16_t port, const std::string& command);

// The node id of the Redis Cluster node at 127.0.0.1:`port` (CLUSTER MYID), empty if none.
std::string ClusterNodeId(std::uint16_t port);

// Moves `slots` hash slots (the lowest first) from the primary at `from` to the one at `to`
// with `redis-cli --cluster reshard`, keys included: true when it succeeded.
bool ReshardCluster(std::uint16_t from, std::uint16_t to, int slots);

}  // namespace vrouter::testing
