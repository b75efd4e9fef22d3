#include "router/app/server.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include "proto/codec.h"
#include "router/admin/http.h"
#include "router/app/auth_keys.h"
#include "router/app/file_fingerprint.h"
#include "router/app/host_facts.h"
#include "router/assign/watch_hub.h"
#include "router/base/log.h"
#include "router/base/result.h"
#include "router/base/wake_clock.h"
#include "router/fleet/directory.h"
#include "router/net/listener.h"
#include "router/net/tls.h"
#include "router/net/ws_session.h"
#include "router/service/client_protocol.h"
#include "router/service/fleet_controller.h"
#include "router/service/service.h"
#include "router/service/session_registry.h"
#include "router/store/memory_store.h"
#include "router/store/redis_client.h"
#include "router/store/redis_store.h"
#include "router/telemetry/metrics.h"

#ifndef VROUTER_VERSION
#define VROUTER_VERSION "dev"
#endif
#ifndef VROUTER_GIT_COMMIT
#define VROUTER_GIT_COMMIT "unknown"
#endif

namespace vrouter::app {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// How often detached assignments past their resume grace are expired.
constexpr auto kSweepInterval = std::chrono::seconds(1);
// How long start-up waits to ask redis[s]://HOST:PORT whether it is a Redis Cluster node.
constexpr auto kClusterProbeTimeout = std::chrono::seconds(3);
// Longer than any bucket takes to refill and than a strike window (SECURITY.md's limits).
constexpr auto kBudgetIdle = std::chrono::seconds(60);
// How often shutdown checks whether every session has gone.
constexpr auto kDrainPoll = std::chrono::milliseconds(50);

base::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return base::Fail("cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return base::Result<std::string>(s.str());
}

tcp::endpoint ToEndpoint(const HostPort& hp) { return {asio::ip::make_address(hp.host), hp.port}; }

// The Redis host's address, resolved once at start-up (the client connects by address).
base::Result<std::string> ResolveHost(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec) return host;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0 || found == nullptr) {
    return base::Fail("cannot resolve " + host + ": " + gai_strerror(rc));
  }
  char text[INET6_ADDRSTRLEN] = {};
  const void* addr =
      found->ai_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(found->ai_addr)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr);
  inet_ntop(found->ai_family, addr, text, sizeof(text));
  freeaddrinfo(found);
  return std::string(text);
}

}  // namespace

struct Server::Impl {
  const Config config;  // as parsed: never changed here
  telemetry::Metrics metrics{VROUTER_VERSION, VROUTER_GIT_COMMIT};
  fleet::Directory fleet;
  assign::WatchHub hub;
  std::unique_ptr<store::AssignmentStore> store_owner;
  store::AssignmentStore* store = nullptr;
  store::RedisStore* redis = nullptr;  // set when the store is Redis
  service::SessionRegistry sessions;
  std::unique_ptr<service::FleetController> fleet_control;
  std::unique_ptr<service::Service> service;
  net::TlsContextHolder tls;
  std::string tls_fingerprint, keys_fingerprint, regions_fingerprint;

  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<net::Listener>> client_listeners;  // index i runs on ios[i % n]
  std::shared_ptr<net::Listener> admin_listener;
  std::uint16_t ws_port = 0, wss_port = 0, admin_port = 0;
  std::unique_ptr<asio::steady_timer> sweep_timer;
  std::unique_ptr<asio::steady_timer> fleet_timer;
  std::unique_ptr<asio::steady_timer> drain_timer;
  std::unique_ptr<asio::steady_timer> reload_timer;  // after `ios`: destroyed before them
  std::unique_ptr<asio::signal_set> signals;
  std::atomic<bool> shutdown_started{false};
  std::atomic<bool> started{false};

  explicit Impl(const Config& c) : config(c) {}

  asio::io_context& main_io() { return *ios.front(); }

  std::string OpenClientListeners(const HostPort& where, telemetry::Transport transport,
                                  std::uint16_t& bound_port) {
    tcp::endpoint endpoint = ToEndpoint(where);
    for (std::size_t i = 0; i < ios.size(); ++i) {
      net::TlsContextHolder* holder = transport == telemetry::Transport::kWss ? &tls : nullptr;
      service::Service* svc = service.get();
      auto opened =
          net::Listener::Open(*ios[i], endpoint, config.backlog, /*reuse_port=*/true, metrics,
                              [svc, transport, holder](tcp::socket socket) {
                                net::StartWsSession(std::move(socket), *svc, transport,
                                                    holder != nullptr ? holder->Get() : nullptr);
                              });
      if (auto* err = opened.error_message()) return *err;
      auto listener = std::get<std::shared_ptr<net::Listener>>(std::move(opened));
      listener->SetAcceptGate([svc] { return svc->ReserveHandshake(); });
      if (i == 0) {
        bound_port = listener->local_endpoint().port();
        endpoint.port(bound_port);  // the other workers join the port the first one got
      }
      client_listeners.push_back(std::move(listener));
    }
    return {};
  }

  void Sweep() {
    sweep_timer->expires_after(kSweepInterval);
    sweep_timer->async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      const auto now = service->steady_now();
      const std::size_t expired = store->ExpireDetached(now);
      if (expired > 0) metrics.assignments_expired->Increment(static_cast<double>(expired));
      // A budget idle this long has refilled: forgetting it gives nothing away.
      service->user_budgets.Sweep(now - kBudgetIdle);
      service->address_budgets.Sweep(now - kBudgetIdle);
      service->departures.Forget(now - service->rejoin_window);
      Sweep();
    });
  }

  // Every --reload-interval-ms: files that change under a running replica (cert-manager renewing
  // the certificate, a token key added or retired). A file that fails to load keeps the previous
  // version in service, with an error log and a metric.
  void Reload() {
    reload_timer->expires_after(config.reload_interval);
    reload_timer->async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      ReloadTls(/*initial=*/false);
      ReloadKeys(/*initial=*/false);
      ReloadRegions(/*initial=*/false);
      Reload();
    });
  }

  // Re-reads one file-backed setting when its files changed (always at start-up). `load` builds
  // and installs the new version, or says why it cannot, and then the previous version stays in
  // service: at start-up the error is returned, later it is logged and counted.
  base::Status<> ReloadIfChanged(telemetry::Metrics::Reloadable what, std::string_view failed_event,
                                 const std::vector<std::string>& files, std::string& fingerprint,
                                 bool initial, const std::function<base::Status<>()>& load) {
    std::string now = FilesFingerprint(files);
    if (!initial && now == fingerprint) return {};
    fingerprint = std::move(now);
    base::Status<> loaded = load();
    const auto i = static_cast<int>(what);
    if (loaded.ok()) {
      if (!initial) metrics.reloads_ok[i]->Increment();
      return {};
    }
    if (initial) return loaded;
    metrics.reloads_failed[i]->Increment();
    log::Error(failed_event, {{"error", loaded.error().message}, {"kept", "the previous version"}});
    return {};
  }

  base::Status<> ReloadTls(bool initial) {
    if (!config.tls_listen) return {};
    std::vector<std::string> files = config.tls_certs;
    files.insert(files.end(), config.tls_keys.begin(), config.tls_keys.end());
    return ReloadIfChanged(
        telemetry::Metrics::Reloadable::kTls, "tls_reload_failed", files, tls_fingerprint, initial,
        [&]() -> base::Status<> {
          auto loaded = net::MakeServerTlsContext(config.tls_certs, config.tls_keys);
          if (auto* err = loaded.error_message()) return base::Fail(*err);
          auto& ok = std::get<net::ServerTls>(loaded);
          if (!initial && ok.not_after_unix != 0 && ok.not_after_unix <= service->unix_seconds()) {
            return base::Fail("the new certificate has expired");
          }
          tls.Set(std::move(ok.context));
          metrics.tls_cert_expiry->Set(static_cast<double>(ok.not_after_unix));
          if (!initial) log::Info("tls_reloaded", {{"not_after_unix", ok.not_after_unix}});
          return {};
        });
  }

  base::Status<> ReloadRegions(bool initial) {
    const std::string& file = config.region_cidrs_file;
    if (file.empty()) return {};
    return ReloadIfChanged(
        telemetry::Metrics::Reloadable::kRegionCidrs, "region_cidrs_reload_failed", {file},
        regions_fingerprint, initial, [&]() -> base::Status<> {
          auto text = ReadFile(file);
          if (!text.ok()) {
            return base::Fail("--region-cidrs " + file + ": " + text.error().message);
          }
          auto table = edge::RegionTable::Parse(text.value());
          if (auto* err = table.error_message()) {
            return base::Fail("--region-cidrs " + file + ": " + *err);
          }
          auto parsed = std::make_shared<const edge::RegionTable>(
              std::get<edge::RegionTable>(std::move(table)));
          if (!initial) log::Info("region_cidrs_reloaded", {{"ranges", parsed->size()}});
          service->regions.store(std::move(parsed));
          return {};
        });
  }

  base::Status<> ReloadKeys(bool initial) {
    // --auth-secret alone is read once; the directory, when there is one, is watched.
    std::vector<std::string> files;
    if (!config.auth_keys_dir.empty()) files.push_back(config.auth_keys_dir);
    if (files.empty() && !initial) return {};
    return ReloadIfChanged(telemetry::Metrics::Reloadable::kAuthKeys, "auth_keys_reload_failed",
                           files, keys_fingerprint, initial, [&]() -> base::Status<> {
                             auto loaded = LoadClientKeys(config.auth_secret, config.auth_keys_dir);
                             if (auto* err = loaded.error_message()) return base::Fail(*err);
                             auto& ring = std::get<edge::TokenKeyRing>(loaded);
                             std::string kids;
                             for (const auto& k : ring.keys()) {
                               kids += (kids.empty() ? "" : ",") +
                                       (k.kid.empty() ? std::string("-") : k.kid) + ":" +
                                       std::string(edge::TokenAlgName(k.alg));
                             }
                             service->client_keys.Set(std::move(ring));
                             if (!initial) log::Info("auth_keys_reloaded", {{"keys", kids}});
                             return {};
                           });
  }

  // Every report interval: ejections, staleness, migrations, fleet metrics.
  void FleetTick() {
    fleet_timer->expires_after(fleet_control->report_interval());
    fleet_timer->async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      fleet_control->Tick();
      FleetTick();
    });
  }

  // Runs on the main io_context.
  void Drain() {
    log::Info("shutdown_started",
              {{"sessions", sessions.size()}, {"drain_window_ms", config.drain_window.count()}});
    metrics.ready->Set(0);
    // The listeners stay open until the end: new upgrades get 503 with Retry-After (the session's
    // admission sees `draining`), which a client retries elsewhere at once, rather than a refused
    // TCP connection, which it cannot tell from a dead host.
    // Spread the goodbyes over 80% of the window: clients reconnect elsewhere in a trickle,
    // not as one herd; the last 20% is slack for close handshakes.
    std::mt19937 rng(std::random_device{}());
    const auto spread = std::max<std::int64_t>(1, config.drain_window.count() * 8 / 10);
    std::uniform_int_distribution<std::int64_t> jitter(0, spread);
    for (const auto& session : sessions.Snapshot()) {
      const auto delay = std::chrono::milliseconds(jitter(rng));
      const proto::ServerMessage goaway =
          proto::GoAway{"shutdown", static_cast<std::uint32_t>(delay.count())};
      session->Push(std::make_shared<const std::string>(proto::Encode(goaway)));
      metrics.messages_sent[goaway.index()]->Increment();
      session->CloseAsync(proto::close_code::kGoingAway, "shutdown", delay);
    }
    // Video servers keep reporting while clients leave (joins elsewhere need no help from us,
    // but a migration in progress does), then are told to go at the end of the spread.
    fleet_control->CloseConnections(proto::close_code::kGoingAway, "shutdown",
                                    std::chrono::milliseconds(spread));
    const auto deadline = std::chrono::steady_clock::now() + config.drain_window;
    WaitForDrain(deadline);
  }

  void WaitForDrain(std::chrono::steady_clock::time_point deadline) {
    if (sessions.size() == 0 || std::chrono::steady_clock::now() >= deadline) {
      log::Info("shutdown_done", {{"sessions_left", sessions.size()}});
      for (std::size_t i = 0; i < client_listeners.size(); ++i) {
        asio::post(*ios[i % ios.size()], [l = client_listeners[i]] { l->Stop(); });
      }
      if (admin_listener) admin_listener->Stop();
      if (redis != nullptr) redis->Stop();
      sweep_timer->cancel();
      fleet_timer->cancel();
      reload_timer->cancel();
      if (signals) signals->cancel();
      guards.clear();
      // Behind the listeners' Stop on each thread (one thread per io_context runs its handlers
      // in order): the acceptors are closed before their threads end.
      for (auto& io : ios) asio::post(*io, [io = io.get()] { io->stop(); });
      return;
    }
    drain_timer->expires_after(kDrainPoll);
    drain_timer->async_wait([this, deadline](boost::system::error_code ec) {
      if (!ec) WaitForDrain(deadline);
    });
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (impl_->started && !impl_->threads.empty()) {
    BeginShutdown();
    Wait();
  }
}

base::Result<std::unique_ptr<Server>> Server::Create(const Config& config) {
  auto impl = std::make_unique<Impl>(config);
  const Config& c = impl->config;
  // ParseServeArgs derives both (from the hostname and the open-files limit).
  if (c.replica_id.empty() || c.limits.max_connections == 0) {
    return base::Fail(std::string("incomplete configuration: no replica id or connection cap"));
  }
  const std::size_t budget = ConnectionBudget();
  impl->metrics.max_connections->Set(static_cast<double>(c.limits.max_connections));
  if (c.limits.max_connections > budget) {
    log::Warn("max_connections_above_open_files_limit",
              {{"max_connections", c.limits.max_connections},
               {"budget", budget},
               {"detail", "accept() will fail with EMFILE before the cap: raise nofile"}});
  }

  auto steady_now = [] { return std::chrono::steady_clock::now(); };
  if (c.redis) {
    store::RedisStoreOptions o;
    if (c.redis->sentinels.empty() && c.redis->cluster_nodes.empty()) {
      auto address = ResolveHost(c.redis->host);
      if (auto* err = address.error_message()) return base::Fail("--store: " + *err);
      o.redis.host = address.value();
    }
    // Behind Sentinel the client resolves each Sentinel's name on every attempt.
    for (const auto& s : c.redis->sentinels)
      o.redis.sentinel.sentinels.emplace_back(s.host, s.port);
    o.redis.sentinel.master_name = c.redis->master_name;
    o.redis.sentinel.password = c.redis_sentinel_password;
    o.redis.sentinel.tls = c.redis->tls && !c.redis->sentinels.empty();
    for (const auto& n : c.redis->cluster_nodes) o.cluster_seeds.emplace_back(n.host, n.port);
    o.redis.port = c.redis->port;
    o.redis.username = c.redis->username;
    o.redis.password = c.redis->password;
    o.redis.db = c.redis->db;
    o.redis.tls.enabled = c.redis->tls;
    o.redis.tls.ca_file = c.redis_tls_ca;
    o.redis.tls.cert_file = c.redis_tls_cert;
    o.redis.tls.key_file = c.redis_tls_key;
    // The certificate names the host the operator wrote, not the address it resolved to.
    o.redis.tls.server_name =
        c.redis_tls_server_name.empty() ? c.redis->host : c.redis_tls_server_name;
    for (const std::string* file : {&c.redis_tls_ca, &c.redis_tls_cert, &c.redis_tls_key}) {
      if (!file->empty() && !std::ifstream(*file).good()) {
        return base::Fail("--redis-tls-*: cannot read " + *file);
      }
    }
    o.redis.connect_timeout = c.redis_timeout;
    o.redis.command_timeout = c.redis_timeout;
    // redis[s]://HOST:PORT that turns out to be a Redis Cluster node: the cluster, seeded by it.
    // Asked once at start-up (the store's mode, and so its scripts, are chosen here); when
    // Redis cannot be asked now, it is taken for one Redis, and said so.
    if (c.redis->sentinels.empty() && c.redis->cluster_nodes.empty()) {
      std::string why;
      const auto cluster = store::RedisClient::IsClusterNode(o.redis, kClusterProbeTimeout, why);
      if (cluster == true) {
        log::Info("store_is_cluster", {{"seed", o.redis.host + ":" + std::to_string(o.redis.port)},
                                       {"detail", "a Redis Cluster node: used as the cluster"}});
        if (o.redis.db != 0) return base::Fail("--store: a Redis Cluster has one database: no /DB");
        o.cluster_seeds.emplace_back(o.redis.host, o.redis.port);
        // Each node's certificate carries its own name, not the seed's (as rediss-cluster://).
        o.redis.tls.server_name = c.redis_tls_server_name;
      } else if (!cluster) {
        log::Warn("store_cluster_probe_failed",
                  {{"why", why},
                   {"detail",
                    "taken for one Redis; if it is a Redis Cluster node, restart once "
                    "it answers, or use redis-cluster://"}});
      }
    }
    // The store's identity of this process: the replica id plus a per-start suffix, so a
    // restarted replica (same StatefulSet ordinal) never mistakes its predecessor's sessions for
    // its own; the predecessor's lease lapses and its users get the resume grace.
    std::mt19937_64 rng(std::random_device{}());
    std::ostringstream boot;
    boot << c.replica_id << "~" << std::hex << (rng() & 0xffffff);
    o.replica_id = boot.str();
    o.resume_grace = c.resume_grace;
    o.lease_ttl = c.lease_ttl;
    o.replica_key = c.replica_key;
    Impl* raw = impl.get();
    auto redis = std::make_unique<store::RedisStore>(
        std::move(o), impl->metrics, [raw](const std::string& user, std::uint64_t session) {
          // A newer session of this user on another replica took the assignment over.
          if (auto handle = raw->sessions.Get(session)) {
            raw->metrics.sessions_replaced->Increment();
            handle->CloseAsync(proto::close_code::kSessionReplaced, "session_replaced");
          }
          log::Debug("session_replaced_elsewhere", {{"user", user}, {"session", session}});
        });
    impl->redis = redis.get();
    impl->store_owner = std::move(redis);
  } else {
    impl->store_owner = std::make_unique<store::MemoryStore>(c.resume_grace);
  }
  impl->store = impl->store_owner.get();
  impl->fleet_control = std::make_unique<service::FleetController>(
      c.fleet, *impl->store, impl->fleet, impl->metrics, impl->sessions, steady_now,
      std::random_device{}());
  if (impl->redis != nullptr) {
    // Video-server reports and client failure reports reach every replica's model.
    store::RedisStore* redis = impl->redis;
    service::FleetController* fleet = impl->fleet_control.get();
    fleet->ShareThrough(c.replica_id,
                        [redis](std::string m) { redis->PublishFleet(std::move(m)); });
    redis->SetFleetListener([fleet](std::string_view m) { fleet->OnShared(m); });
  }
  if (!c.video_servers_file.empty()) {
    auto text = ReadFile(c.video_servers_file);
    if (!text.ok()) return base::Fail("--video-servers: " + text.error().message);
    auto parsed = fleet::ParseVideoServers(text.value());
    if (auto* err = parsed.error_message()) {
      return base::Fail("--video-servers " + c.video_servers_file + ": " + *err);
    }
    impl->fleet_control->Declare(std::get<std::vector<fleet::VideoServer>>(parsed));
  }

  impl->service.reset(new service::Service{
      .replica_id = c.replica_id,
      .client_keys = edge::SharedKeyRing(),  // loaded below, then on every change
      .video_server_secret = c.video_server_secret,
      .token_leeway_seconds = c.token_leeway_seconds,
      .limits = c.limits,
      .admin = {.read_token = c.admin_read_token, .write_token = c.admin_token},
      .started_at = steady_now(),
      .store = *impl->store,
      .hub = impl->hub,
      .fleet = impl->fleet,
      .fleet_control = *impl->fleet_control,
      .metrics = impl->metrics,
      .sessions = impl->sessions,
      .unix_seconds =
          [] {
            return std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                .count();
          },
      // Sessions read it per frame (rate limits, assignment times): once per wake-up suffices.
      .steady_now = [] { return base::WakeClock::Now(); },
  });
  impl->service->proxy_protocol = c.proxy_protocol;
  impl->service->rejoin_window = c.resume_grace;
  impl->service->lookups_across_spaces = c.lookups_across_spaces;
  impl->service->allowed_origins = c.allowed_origins;
  if (!c.trusted_proxies.empty()) {
    auto trusted = edge::CidrSet::Parse(c.trusted_proxies);
    if (auto* err = trusted.error_message()) return base::Fail("--trusted-proxies: " + *err);
    impl->service->trusted_proxies = std::get<edge::CidrSet>(std::move(trusted));
  }
  if (auto st = impl->ReloadRegions(/*initial=*/true); !st.ok()) return base::Fail(st.error());
  if (auto st = impl->ReloadTls(/*initial=*/true); !st.ok()) return base::Fail(st.error());
  if (auto st = impl->ReloadKeys(/*initial=*/true); !st.ok()) return base::Fail(st.error());
  Impl* raw = impl.get();
  impl->store->SetChangeListener([raw](const assign::AssignmentChange& change) {
    service::PublishChange(change, *raw->fleet.Snapshot(), raw->hub, raw->metrics);
  });

  for (unsigned i = 0; i < c.threads; ++i) {
    impl->ios.push_back(std::make_unique<asio::io_context>(1));  // one thread each: no locking
    impl->guards.push_back(asio::make_work_guard(*impl->ios.back()));
  }
  if (c.listen) {
    auto err = impl->OpenClientListeners(*c.listen, telemetry::Transport::kWs, impl->ws_port);
    if (!err.empty()) return base::Fail("--listen: " + err);
  }
  if (c.tls_listen) {
    auto err = impl->OpenClientListeners(*c.tls_listen, telemetry::Transport::kWss, impl->wss_port);
    if (!err.empty()) return base::Fail("--tls-listen: " + err);
  }
  if (c.admin_listen) {
    service::Service* svc = impl->service.get();
    auto opened = net::Listener::Open(impl->main_io(), ToEndpoint(*c.admin_listen), 128,
                                      /*reuse_port=*/false, impl->metrics, [svc](tcp::socket s) {
                                        admin::StartAdminSession(std::move(s), *svc);
                                      });
    if (auto* err = opened.error_message()) return base::Fail("--admin-listen: " + *err);
    impl->admin_listener = std::get<std::shared_ptr<net::Listener>>(std::move(opened));
    impl->admin_port = impl->admin_listener->local_endpoint().port();
  }
  impl->sweep_timer = std::make_unique<asio::steady_timer>(impl->main_io());
  impl->fleet_timer = std::make_unique<asio::steady_timer>(impl->main_io());
  impl->drain_timer = std::make_unique<asio::steady_timer>(impl->main_io());
  impl->reload_timer = std::make_unique<asio::steady_timer>(impl->main_io());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Start() {
  Impl& s = *impl_;
  s.started = true;
  s.metrics.ready->Set(1);
  if (s.redis != nullptr) s.redis->Start();
  for (auto& l : s.client_listeners) l->Start();
  if (s.admin_listener) s.admin_listener->Start();
  s.Sweep();
  s.FleetTick();
  s.Reload();
  const auto& c = s.config;
  log::Info(
      "listening",
      {{"replica", c.replica_id},
       {"ws", c.listen ? "ws://" + ToString({c.listen->host, s.ws_port}) + "/v1/client" : ""},
       {"wss",
        c.tls_listen ? "wss://" + ToString({c.tls_listen->host, s.wss_port}) + "/v1/client" : ""},
       {"admin", c.admin_listen ? "http://" + ToString({c.admin_listen->host, s.admin_port}) : ""},
       {"threads", c.threads},
       {"video_servers", s.fleet.Snapshot()->servers().size()},
       {"max_connections", c.limits.max_connections},
       {"auth_configured", !s.service->client_keys.Get()->empty()},
       {"video_server_auth_configured", !c.video_server_secret.empty()}});
  for (auto& io : s.ios) {
    s.threads.emplace_back([io = io.get()] { io->run(); });
  }
}

void Server::HandleSignals() {
  Impl& s = *impl_;
  s.signals = std::make_unique<asio::signal_set>(s.main_io(), SIGTERM, SIGINT);
  s.signals->async_wait([this](boost::system::error_code ec, int signo) {
    if (ec) return;
    log::Info("signal", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
    BeginShutdown();
  });
}

void Server::BeginShutdown() {
  Impl& s = *impl_;
  if (s.shutdown_started.exchange(true)) return;
  s.service->draining = true;
  asio::post(s.main_io(), [&s] { s.Drain(); });
}

void Server::Wait() {
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

std::uint16_t Server::ws_port() const { return impl_->ws_port; }
std::uint16_t Server::wss_port() const { return impl_->wss_port; }
std::uint16_t Server::admin_port() const { return impl_->admin_port; }
const std::string& Server::replica_id() const { return impl_->config.replica_id; }

}  // namespace vrouter::app
