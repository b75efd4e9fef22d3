#include "router/app/config.h"

#include <gtest/gtest.h>

#include <map>

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

ParsedArgs Parse(std::vector<std::string> args, const Env& env = {}) {
  return ParseServeArgs(args, env.lookup(), 4);
}

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  auto p = Parse({"--listen", "127.0.0.1:8080", "--admin-listen", "127.0.0.1:9090"});
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->listen, (HostPort{"127.0.0.1", 8080}));
  EXPECT_EQ(p.config->threads, 4u);
  EXPECT_EQ(p.config->max_batch, 1000u);
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
        Bad{{"--listen", "127.0.0.1:80", "--threads", "lots"}, "threads"},
        Bad{{"--listen", "127.0.0.1:80", "--max-message-bytes", "10"}, "--max-message-bytes"},
        Bad{{"--listen", "127.0.0.1:80", "--log-level", "loud"}, "--log-level"},
        Bad{{"--listen", "127.0.0.1:80", "--bogus"}, "bogus"},
        Bad{{"--listen", "127.0.0.1:80", "--replica-id", "a b"}, "--replica-id"}));

TEST(ConfigTest, BadEnvironmentValueIsNamed) {
  Env env{{{"VROUTER_THREADS", "many"}}};
  auto p = Parse({"--listen", "127.0.0.1:1"}, env);
  EXPECT_FALSE(p.config);
  EXPECT_NE(p.error.find("threads"), std::string::npos) << p.error;
}

}  // namespace
}  // namespace vrouter::app
