#include <gtest/gtest.h>

#include <map>

#include "router/app/settings.h"

namespace vrouter::app {
namespace {

struct Env {
  std::map<std::string, std::string> vars;
  EnvLookup lookup() const {
    return [this](const std::string& n) -> std::optional<std::string> {
      auto it = vars.find(n);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  }
};

// A plain (or TLS) store URL, field by field.
RedisUrl Url(std::string host, std::uint16_t port, std::string password, int db,
             std::string username, bool tls = false) {
  RedisUrl u;
  u.host = std::move(host);
  u.port = port;
  u.password = std::move(password);
  u.db = db;
  u.username = std::move(username);
  u.tls = tls;
  return u;
}

ParsedArgs Parse(std::vector<std::string> args, const Env& env = {}) {
  HostFacts host;
  host.hardware_threads = 4;
  return ParseServeArgs(args, env.lookup(), host);
}

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  auto p = Parse({"--listen", "127.0.0.1:8080", "--admin-listen", "127.0.0.1:9090"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->listen, (HostPort{"127.0.0.1", 8080}));
  EXPECT_EQ(p.config->threads, 4u);
  EXPECT_EQ(p.config->limits.max_batch, 1000u);
  EXPECT_TRUE(p.config->auth_secret.empty());
}

TEST(ConfigTest, EnvironmentFillsInAndFlagsWin) {
  Env env{{{"VROUTER_LISTEN", "0.0.0.0:1"},
           {"VROUTER_THREADS", "2"},
           {"VROUTER_AUTH_SECRET", "s"},
           {"VROUTER_RESUME_GRACE_MS", "5000"}}};
  auto p = Parse({"--listen", "[::1]:2"}, env);
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->listen, (HostPort{"::1", 2}));
  EXPECT_EQ(p.config->threads, 2u);
  EXPECT_EQ(p.config->auth_secret, "s");
  EXPECT_EQ(p.config->resume_grace.count(), 5000);
}

TEST(ConfigTest, AdminTokensComeFromTheEnvironment) {
  Env env{{{"VROUTER_ADMIN_TOKEN", "write-0123456789abcdef"},
           {"VROUTER_ADMIN_READ_TOKEN", "read-0123456789abcdef"}}};
  auto p = Parse({"--listen", "127.0.0.1:1"}, env);
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->admin_token, "write-0123456789abcdef");
  EXPECT_EQ(p.config->admin_read_token, "read-0123456789abcdef");
  EXPECT_TRUE(Parse({"--listen", "127.0.0.1:1"}).config->admin_token.empty());
}

TEST(ConfigTest, SecurityFlagsAndTheirDefaults) {
  auto d = Parse({"--listen", "127.0.0.1:1"});
  ASSERT_TRUE(d.config) << d.error;
  EXPECT_EQ(d.config->limits.rate_limits, edge::RateLimits::Defaults());
  EXPECT_EQ(d.config->limits.max_connections_per_ip, 1000u);
  EXPECT_FALSE(d.config->proxy_protocol);
  auto p =
      Parse({"--tls-listen", "127.0.0.1:1", "--tls-cert", "ec.crt, rsa.crt", "--tls-key",
             "ec.key,rsa.key", "--allowed-origins", "https://app.example.com,http://localhost:8080",
             "--proxy-protocol", "--trusted-proxies", "10.0.0.0/8", "--rate-limits", "off",
             "--max-connections-per-ip", "0", "--auth-keys-dir", "/keys"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->tls_certs, (std::vector<std::string>{"ec.crt", "rsa.crt"}));
  EXPECT_EQ(p.config->tls_keys, (std::vector<std::string>{"ec.key", "rsa.key"}));
  EXPECT_EQ(p.config->allowed_origins.size(), 2u);
  EXPECT_TRUE(p.config->proxy_protocol);
  EXPECT_EQ(p.config->limits.rate_limits, edge::RateLimits::Unlimited());
  EXPECT_EQ(p.config->auth_keys_dir, "/keys");
}

TEST(ConfigTest, HelpListsEveryOperatorFlag) {
  auto p = Parse({"--help"});
  for (const char* flag : {"--listen", "--tls-listen", "--admin-listen", "--tls-cert", "--tls-key",
                           "--video-servers", "--auth-secret", "--threads"}) {
    EXPECT_NE(p.help.find(flag), std::string::npos) << flag;
  }
}

struct Bad {
  std::vector<std::string> args;
  std::string names;  // the error must name this setting
};

class ConfigBadTest : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigBadTest, RefusedWithMessageNamingTheSetting) {
  auto p = Parse(GetParam().args);
  EXPECT_FALSE(p.config);
  EXPECT_NE(p.error.find(GetParam().names), std::string::npos) << p.error;
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigBadTest,
    ::testing::Values(
        Bad{{}, "--listen"}, Bad{{"--listen", "nohost"}, "--listen"},
        Bad{{"--listen", "example.com:80"}, "--listen"},
        Bad{{"--listen", "127.0.0.1:70000"}, "--listen"},
        Bad{{"--listen", "127.0.0.1:80", "--admin-listen", "1.2.3.4"}, "--admin-listen"},
        Bad{{"--tls-listen", "127.0.0.1:443"}, "--tls-cert"},
        Bad{{"--listen", "127.0.0.1:80", "--tls-cert", "c.pem"}, "--tls-listen"},
        Bad{{"--listen", "127.0.0.1:80", "--threads", "0"}, "--threads"},
        // Boost's own message for these loops forever (config_fuzz found it).
        Bad{{"--listen", "127.0.0.1:80", "--threads=%value%"}, "threads"},
        Bad{{"--listen", "127.0.0.1:80", "--%canonical_option%"}, "unknown option"},
        Bad{{"--tls-listen", "127.0.0.1:443", "--tls-cert", ",", "--tls-key", " "}, "--tls-cert"},
        Bad{{"--tls-listen", "127.0.0.1:443", "--tls-cert", "a,b", "--tls-key", "a"}, "--tls-cert"},
        Bad{{"--listen", "127.0.0.1:80", "--max-connections=-5"}, "--max-connections"},
        Bad{{"--listen", "127.0.0.1:80", "--resume-grace-ms=-1"}, "--resume-grace-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--rate-limits", "lookup=1"}, "--rate-limits"},
        Bad{{"--listen", "127.0.0.1:80", "--allowed-origins", "https://a.example/path"},
            "--allowed-origins"},
        Bad{{"--listen", "127.0.0.1:80", "--proxy-protocol"}, "--trusted-proxies"},
        Bad{{"--listen", "127.0.0.1:80", "--reload-interval-ms", "5"}, "--reload-interval-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--threads", "lots"}, "threads"},
        Bad{{"--listen", "127.0.0.1:80", "--max-message-bytes", "10"}, "--max-message-bytes"},
        Bad{{"--listen", "127.0.0.1:80", "--log-level", "loud"}, "--log-level"},
        Bad{{"--listen", "127.0.0.1:80", "--bogus"}, "bogus"},
        Bad{{"--listen", "127.0.0.1:80", "--replica-id", "a b"}, "--replica-id"},
        Bad{{"--listen", "127.0.0.1:80", "--report-interval-ms", "5"}, "--report-interval-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--gone-after-ms", "2000"}, "--gone-after-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--slow-start-min-weight", "0"},
            "--slow-start-min-weight"},
        Bad{{"--listen", "127.0.0.1:80", "--max-ejected-share", "1.5"}, "--max-ejected-share"},
        Bad{{"--listen", "127.0.0.1:80", "--eject-failure-share", "-1"}, "--eject-failure-share"},
        Bad{{"--listen", "127.0.0.1:80", "--ejection-base-ms", "60000", "--ejection-max-ms",
             "1000"},
            "--ejection-base-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--failure-window-ms", "10"}, "--failure-window-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--migrate-batch", "0"}, "--migrate-batch"},
        Bad{{"--listen", "127.0.0.1:80", "--region-groups", "eu=a,b;us=b"}, "--region-groups"},
        Bad{{"--listen", "127.0.0.1:80", "--region-groups", "=a"}, "--region-groups"},
        Bad{{"--listen", "127.0.0.1:80", "--forwarding-min-ratio", "2"}, "--forwarding-min-ratio"},
        Bad{{"--listen", "127.0.0.1:80", "--forwarding-media-grace-ms", "700000"},
            "--forwarding-media-grace-ms"},
        Bad{{"--listen", "127.0.0.1:80", "--admin-token", "short"}, "--admin-token"},
        Bad{{"--listen", "127.0.0.1:80", "--admin-read-token", "has a space in it 0123"},
            "--admin-read-token"},
        Bad{{"--listen", "127.0.0.1:80", "--admin-token", "same-token-0123456789",
             "--admin-read-token", "same-token-0123456789"},
            "--admin-read-token"}));

TEST(ConfigTest, FleetFlagsAndEnvironmentReachTheParams) {
  Env env{{{"VROUTER_VIDEO_SERVER_SECRET", "vs-key"}, {"VROUTER_MIGRATE_BATCH", "7"}}};
  auto p = Parse({"--listen", "127.0.0.1:1", "--report-interval-ms", "500", "--region-groups",
                  "eu=eu-west,eu-central;us=us-east", "--max-new-users-per-interval", "9",
                  "--eject-not-forwarding-reports", "4", "--max-ejected-share", "0.5"},
                 env);
  ASSERT_TRUE(p.config) << p.error;
  const auto& f = p.config->fleet;
  EXPECT_EQ(p.config->video_server_secret, "vs-key");
  EXPECT_EQ(f.report_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(f.scoring.region_group.at("eu-central"), "eu");
  EXPECT_EQ(f.scoring.region_group.at("us-east"), "us");
  EXPECT_EQ(f.scoring.max_new_users_per_interval, 9u);
  EXPECT_EQ(f.ejection.not_forwarding_reports, 4u);
  EXPECT_DOUBLE_EQ(f.ejection.max_ejected_share, 0.5);
  EXPECT_EQ(f.migration.batch, 7u);
  // Untouched parameters keep the documented defaults.
  EXPECT_EQ(f.gone_after, fleet::FleetParams{}.gone_after);
  EXPECT_DOUBLE_EQ(f.scoring.slow_start_min_weight, 0.1);
}

TEST(ConfigTest, BadEnvironmentValueIsNamed) {
  Env env{{{"VROUTER_THREADS", "many"}}};
  auto p = Parse({"--listen", "127.0.0.1:1"}, env);
  EXPECT_FALSE(p.config);
  EXPECT_NE(p.error.find("threads"), std::string::npos) << p.error;
}

TEST(ConfigTest, StoreIsMemoryByDefaultAndRedisByUrl) {
  auto p = Parse({"--listen", "127.0.0.1:1"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_FALSE(p.config->redis);
  Env env{{{"VROUTER_STORE", "redis://:s3cret@redis.internal:6380/2"},
           {"VROUTER_REPLICA_KEY", "0123456789abcdef0123"}}};
  p = Parse({"--listen", "127.0.0.1:1", "--lease-ttl-ms", "3000"}, env);
  ASSERT_TRUE(p.config) << p.error;
  ASSERT_TRUE(p.config->redis);
  EXPECT_EQ(*p.config->redis, (Url("redis.internal", 6380, "s3cret", 2, "")));
  EXPECT_EQ(p.config->lease_ttl, std::chrono::milliseconds(3000));
}

// Replicas sharing a Redis authenticate their fleet messages with a shared key: without one,
// anyone able to publish on Redis could add video servers. The key is refused when short.
TEST(ConfigTest, RedisStoreNeedsAReplicaKey) {
  auto p = Parse({"--listen", "127.0.0.1:1", "--store", "redis://127.0.0.1:6379"});
  EXPECT_FALSE(p.config);
  EXPECT_NE(p.error.find("--replica-key"), std::string::npos) << p.error;
  EXPECT_NE(p.error.find("VROUTER_REPLICA_KEY"), std::string::npos) << p.error;

  p = Parse({"--listen", "127.0.0.1:1", "--store", "redis://127.0.0.1:6379", "--replica-key",
             "too-short"});
  EXPECT_FALSE(p.config);
  EXPECT_NE(p.error.find("replica-key"), std::string::npos) << p.error;

  Env env{{{"VROUTER_REPLICA_KEY", "0123456789abcdef"}}};
  p = Parse({"--listen", "127.0.0.1:1", "--store", "redis://127.0.0.1:6379"}, env);
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->replica_key, "0123456789abcdef");
  // The in-memory store needs none.
  EXPECT_TRUE(Parse({"--listen", "127.0.0.1:1"}).config);
}

// The replica id names the replica's records in Redis, which are read back as ids.
TEST(ConfigTest, ReplicaIdHoldsNoControlCharacter) {
  EXPECT_TRUE(Parse({"--listen", "127.0.0.1:1", "--replica-id", "router-a"}).config);
  EXPECT_FALSE(Parse({"--listen", "127.0.0.1:1", "--replica-id", "router\x01a"}).config);
  EXPECT_FALSE(Parse({"--listen", "127.0.0.1:1", "--replica-id", "router\x7f"}).config);
}

TEST(ConfigTest, StoreUrlForms) {
  auto ok = [](std::string_view text) {
    auto r = ParseStoreUrl(text);
    EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
    return r.index() == 0 ? std::get<0>(r) : std::nullopt;
  };
  EXPECT_EQ(ok("redis://127.0.0.1"), (Url("127.0.0.1", 6379, "", 0, "")));
  EXPECT_EQ(ok("redis://user:pw@10.0.0.1:7000"), (Url("10.0.0.1", 7000, "pw", 0, "user")));
  EXPECT_EQ(ok("redis://:pw@10.0.0.1:7000"), (Url("10.0.0.1", 7000, "pw", 0, "")));
  EXPECT_EQ(ok("redis://[::1]:6390/3"), (Url("::1", 6390, "", 3, "")));
  EXPECT_EQ(ok("rediss://user:pw@redis.example:6380/1"),
            (Url("redis.example", 6380, "pw", 1, "user", /*tls=*/true)));
  const auto sentinel = ok("redis-sentinel://u:pw@10.0.0.1:26380,s2,[::1]:5/vr-main/2");
  ASSERT_TRUE(sentinel.has_value());
  EXPECT_EQ(sentinel->sentinels,
            (std::vector<RedisUrl::Node>{{"10.0.0.1", 26380}, {"s2", 26379}, {"::1", 5}}));
  EXPECT_EQ(sentinel->master_name, "vr-main");
  EXPECT_EQ(sentinel->db, 2);
  EXPECT_EQ(sentinel->username, "u");
  EXPECT_EQ(sentinel->password, "pw");
  EXPECT_FALSE(sentinel->tls);
  const auto cluster = ok("redis-cluster://u:pw@10.0.0.1:7000,n2,[::1]:7002");
  ASSERT_TRUE(cluster.has_value());
  EXPECT_EQ(cluster->cluster_nodes,
            (std::vector<RedisUrl::Node>{{"10.0.0.1", 7000}, {"n2", 6379}, {"::1", 7002}}));
  EXPECT_TRUE(cluster->sentinels.empty());
  EXPECT_EQ(cluster->username, "u");
  EXPECT_FALSE(cluster->tls);
  // Over TLS: the Sentinels and the primary, or every cluster node.
  const auto tls_sentinel = ok("rediss-sentinel://s1:26380,s2/vr-main");
  ASSERT_TRUE(tls_sentinel.has_value());
  EXPECT_TRUE(tls_sentinel->tls);
  EXPECT_EQ(tls_sentinel->sentinels, (std::vector<RedisUrl::Node>{{"s1", 26380}, {"s2", 26379}}));
  const auto tls_cluster = ok("rediss-cluster://n1:7000");
  ASSERT_TRUE(tls_cluster.has_value());
  EXPECT_TRUE(tls_cluster->tls);
  EXPECT_EQ(tls_cluster->cluster_nodes, (std::vector<RedisUrl::Node>{{"n1", 7000}}));
  for (std::string_view bad : {"redis-cluster://h1:1/0",
                               "rediss-cluster://",
                               "rediss-sentinel://h1:1",
                               "redis-sentinels://h1:1/m",
                               "redis-cluster://",
                               "redis-cluster://h1:1,",
                               "redis-cluster://h:0",
                               "redis-sentinel://h1:1,h2:2",
                               "redis-sentinel://h1:1/",
                               "redis-sentinel://h1:1,/m",
                               "redis-sentinel://h1:0/m",
                               "redis-sentinel://h1/m/16",
                               "redis-sentinel:///m",
                               "rediss://",
                               "rediss:/h:1",
                               "redis://",
                               "redis://host:0",
                               "redis://host:70000",
                               "redis://host:12x",
                               "redis://host/16",
                               "redis://[::1",
                               "mysql://x",
                               "",
                               "redis",
                               "redis://vrouter:@h:1",
                               "redis://a b:pw@h:1"}) {
    auto r = ParseStoreUrl(bad);
    EXPECT_EQ(r.index(), 1u) << bad;
  }
}

// rediss:// takes its certificate options; they mean nothing without it, and a client
// certificate needs its key.
TEST(ConfigTest, RedisTlsOptions) {
  const std::vector<std::string> base{"--listen", "127.0.0.1:1", "--replica-key",
                                      std::string(32, 'k')};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return Parse(args);
  };
  auto p =
      with({"--store", "rediss://10.0.0.1:6380", "--redis-tls-ca", "ca.pem", "--redis-tls-cert",
            "c.pem", "--redis-tls-key", "c.key", "--redis-tls-server-name", "redis.internal"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_TRUE(p.config->redis->tls);
  EXPECT_EQ(p.config->redis_tls_ca, "ca.pem");
  EXPECT_EQ(p.config->redis_tls_server_name, "redis.internal");
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--store", "redis://10.0.0.1:6379", "--redis-tls-ca", "ca.pem"},
           {"--redis-tls-server-name", "x"},
           {"--store", "rediss://10.0.0.1:6380", "--redis-tls-cert", "c.pem"},
           {"--store", "rediss://10.0.0.1:6380", "--redis-tls-key", "c.key"}}) {
    const auto r = with(bad);
    EXPECT_FALSE(r.config) << bad.back();
    EXPECT_NE(r.error.find("redis-tls"), std::string::npos) << r.error;
  }
}

TEST(ConfigTest, BadStoreSettingsAreNamed) {
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{
           {"--store", "redis://h:99999"}, {"--redis-timeout-ms", "5"}, {"--lease-ttl-ms", "10"}}) {
    std::vector<std::string> args{"--listen", "127.0.0.1:1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = Parse(args);
    EXPECT_FALSE(p.config) << extra[0];
    EXPECT_NE(p.error.find(extra[0]), std::string::npos) << p.error;
  }
}

}  // namespace
}  // namespace vrouter::app
