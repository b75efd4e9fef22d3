// The settings table itself (router/app/settings.cc): every row is well-formed, reaches its
// Config member from its flag and from its variable, and refuses values outside its range with a
// typed error naming it. Table-driven: a row added to the table is covered without a test edit
// (unless it is text that needs an example below).
#include "router/app/settings.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace vrouter::app {
namespace {

namespace options = base::options;

const options::Table<Config>& Table() { return ServeSettings(); }

HostFacts Host() {
  HostFacts h;
  h.hardware_threads = 4;
  h.hostname = "host";
  h.random = 0xabc;
  h.connection_budget = 5000;
  return h;
}

using Vars = std::map<std::string, std::string>;

EnvLookup Lookup(Vars vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A value for each row that is not a number, a switch or a choice (and for rows that need other
// settings alongside), as the table prints it back.
struct Example {
  std::string value;
  std::vector<std::string> with;  // other flags the value needs to be accepted
};

const std::map<std::string, Example>& Examples() {
  static const std::map<std::string, Example> examples = {
      {"listen", {"127.0.0.1:7", {}}},
      {"tls-listen", {"127.0.0.1:8", {"--tls-cert", "c.pem", "--tls-key", "k.pem"}}},
      {"admin-listen", {"[::1]:9", {}}},
      {"tls-cert", {"ec.crt,rsa.crt", {"--tls-listen", "127.0.0.1:8", "--tls-key", "a,b"}}},
      {"tls-key", {"ec.key,rsa.key", {"--tls-listen", "127.0.0.1:8", "--tls-cert", "a,b"}}},
      {"video-servers", {"fleet.json", {}}},
      {"auth-secret", {"s3cret", {}}},
      {"admin-token", {"write-0123456789abcdef", {}}},
      {"admin-read-token", {"read-0123456789abcdef", {}}},
      {"replica-id", {"replica-a", {}}},
      {"store", {"redis://10.0.0.1:6380/2", {"--replica-key", "replica-key-0123456789"}}},
      {"replica-key", {"replica-key-0123456789", {}}},
      {"redis-tls-ca",
       {"ca.pem",
        {"--store", "rediss://10.0.0.1:6380", "--replica-key", "replica-key-0123456789"}}},
      {"redis-tls-cert",
       {"c.pem",
        {"--store", "rediss://10.0.0.1:6380", "--replica-key", "replica-key-0123456789",
         "--redis-tls-key", "c.key"}}},
      {"redis-tls-key",
       {"c.key",
        {"--store", "rediss://10.0.0.1:6380", "--replica-key", "replica-key-0123456789",
         "--redis-tls-cert", "c.pem"}}},
      {"redis-sentinel-password",
       {"sentinel-secret",
        {"--store", "redis-sentinel://10.0.0.1:26379/vr", "--replica-key",
         "replica-key-0123456789"}}},
      {"redis-tls-server-name",
       {"redis.internal",
        {"--store", "rediss://10.0.0.1:6380", "--replica-key", "replica-key-0123456789"}}},
      {"video-server-secret", {"vs-key", {}}},
      {"region-groups", {"eu=eu-central,eu-west;us=us-east", {}}},
      {"auth-keys-dir", {"/keys", {}}},
      {"allowed-origins", {"https://a.example,http://localhost:8080", {}}},
      {"rate-limits", {"off", {}}},
      {"hellos-per-ip", {"5:20", {}}},
      {"video-server-url-schemes", {"wss,ws", {}}},
      {"video-server-url-hosts", {"media.example.com,sfu.example.net", {}}},
      {"proxy-protocol", {"true", {"--trusted-proxies", "10.0.0.0/8"}}},
      {"trusted-proxies", {"10.0.0.0/8", {}}},
      {"region-cidrs", {"regions.txt", {}}},
  };
  return examples;
}

bool IsWhole(const options::Setting& s) { return s.type == "integer" || s.type == "milliseconds"; }

// A value of `s` other than its default `dflt`, inside its range.
std::string Sample(const options::Setting& s, const std::string& dflt) {
  if (const auto it = Examples().find(s.flag); it != Examples().end()) return it->second.value;
  if (s.is_switch) return dflt == "true" ? "false" : "true";
  if (!s.choices.empty()) return s.choices[0] == dflt ? s.choices[1] : s.choices[0];
  if (IsWhole(s)) {
    const std::uint64_t d = std::stoull(dflt);
    return std::to_string(d < std::stoull(s.max) ? d + 1 : d - 1);
  }
  if (s.type == "number") {
    const double d = std::stod(dflt);
    const double hi = s.max.empty() ? d + 2 : std::stod(s.max);
    const double lo = s.min.empty() ? d - 2 : std::stod(s.min);
    return options::FormatNumber(d < hi ? (d + hi) / 2 : (d + lo) / 2);
  }
  ADD_FAILURE() << "--" << s.flag << " (" << s.type << ") needs an entry in Examples()";
  return dflt;
}

// The other settings a command line for `flag` needs to be valid.
std::vector<std::string> CommandLineFor(const std::string& flag) {
  std::vector<std::string> args;
  if (flag != "listen") args = {"--listen", "127.0.0.1:1"};
  if (const auto it = Examples().find(flag); it != Examples().end()) {
    args.insert(args.end(), it->second.with.begin(), it->second.with.end());
  }
  return args;
}

bool Mentions(const std::vector<std::string>& args, const std::string& flag) {
  for (const auto& a : args) {
    if (a == "--" + flag) return true;
  }
  return false;
}

TEST(SettingsTableTest, EveryRowHasAUniqueFlagAndVariableAndHelp) {
  std::set<std::string> flags, envs;
  ASSERT_GE(Table().settings().size(), 60u);
  for (const auto& s : Table().settings()) {
    SCOPED_TRACE(s.flag);
    EXPECT_TRUE(flags.insert(s.flag).second) << "flag twice";
    EXPECT_TRUE(envs.insert(s.env).second) << "variable twice";
    for (char c : s.flag) {
      EXPECT_TRUE(std::islower(c) || std::isdigit(c) || c == '-') << s.flag;
    }
    std::string env = "VROUTER_";
    for (char c : s.flag) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
    EXPECT_EQ(s.env, env);
    EXPECT_GE(s.help.size(), 10u);
    EXPECT_FALSE(s.section.empty());
    EXPECT_FALSE(s.required);  // every router setting has a default or a rule naming it
  }
}

// Every row with its default as the table prints it.
class SettingsRowsTest : public ::testing::Test {
 protected:
  const Config defaults_ = DefaultConfig(Host());
  const std::vector<std::string> before_ = Table().Show(defaults_);
  const std::vector<options::Setting>& rows_ = Table().settings();
};

TEST_F(SettingsRowsTest, EveryNumericDefaultIsInsideItsOwnRange) {
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    const auto& s = rows_[i];
    if ((!IsWhole(s) && s.type != "number") || s.min.empty()) continue;
    SCOPED_TRACE(s.flag + " default '" + before_[i] + "'");
    const long double v = std::stold(before_[i]);
    EXPECT_GE(v, std::stold(s.min));
    if (s.min_exclusive) {
      EXPECT_GT(v, std::stold(s.min));
    }
    if (!s.max.empty()) {
      EXPECT_LE(v, std::stold(s.max));
    }
  }
}

TEST_F(SettingsRowsTest, EachRowReachesItsMemberFromTheFlagAndFromTheVariable) {
  const Config& defaults = defaults_;
  const auto& before = before_;
  const auto& rows = rows_;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& s = rows[i];
    const std::string value = Sample(s, before[i]);
    ASSERT_NE(value, before[i]) << s.flag;
    for (const bool from_env : {false, true}) {
      SCOPED_TRACE(s.flag + (from_env ? " from " + s.env : " from the flag") + " = " + value);
      std::vector<std::string> args = CommandLineFor(s.flag);
      Vars vars;
      if (from_env) {
        vars[s.env] = value;
      } else {
        args.push_back("--" + s.flag + "=" + value);
      }
      const auto p = Table().Parse(args, Lookup(vars), defaults);
      ASSERT_TRUE(p.value) << p.error->message;
      const auto after = Table().Show(*p.value);
      EXPECT_EQ(after[i], value);
      // No other row moved (two rows filling one member would).
      for (std::size_t j = 0; j < rows.size(); ++j) {
        if (j == i || Mentions(args, rows[j].flag)) continue;
        EXPECT_EQ(after[j], before[j]) << "--" << rows[j].flag << " moved too";
      }
    }
    // The flag wins over the variable; and the default, given back, reads back as itself.
    if (before[i].empty()) continue;  // absent (no listener, no file): nothing to give back
    auto args = CommandLineFor(s.flag);
    args.push_back("--" + s.flag + "=" + before[i]);
    const auto p = Table().Parse(args, Lookup({{s.env, value}}), defaults);
    ASSERT_TRUE(p.value) << s.flag << ": " << p.error->message;
    EXPECT_EQ(Table().Show(*p.value)[i], before[i]) << s.flag;
  }
}

TEST(SettingsTableTest, OutOfRangeValuesAreTypedErrorsNamingTheSetting) {
  int checked = 0;
  for (const auto& s : Table().settings()) {
    if (!IsWhole(s) && s.type != "number") continue;
    std::vector<std::string> bad;
    if (IsWhole(s)) {
      bad.push_back(std::to_string(std::stoll(s.min) - 1));
      bad.push_back(s.max + "0");
    } else {
      if (!s.min.empty()) {
        bad.push_back(options::FormatNumber(std::stod(s.min) - (s.min_exclusive ? 0 : 1)));
      }
      if (!s.max.empty()) bad.push_back(options::FormatNumber(std::stod(s.max) + 1));
    }
    for (const auto& value : bad) {
      for (const bool from_env : {false, true}) {
        SCOPED_TRACE("--" + s.flag + " " + value + (from_env ? " from " + s.env : ""));
        auto args = CommandLineFor(s.flag);
        if (!from_env) args.push_back("--" + s.flag + "=" + value);
        const auto p =
            ParseServeArgs(args, Lookup(from_env ? Vars{{s.env, value}} : Vars{}), Host());
        ASSERT_FALSE(p.config);
        EXPECT_EQ(p.error_code, options::ErrorCode::kOutOfRange) << p.error;
        EXPECT_EQ(p.error_setting, s.flag);
        EXPECT_NE(p.error.find("--" + s.flag), std::string::npos) << p.error;
        EXPECT_NE(p.error.find(s.env), std::string::npos) << p.error;
        EXPECT_NE(p.error.find(s.RangeText()), std::string::npos) << p.error;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 150);
}

TEST(SettingsTableTest, MalformedNumbersAreTypedErrorsToo) {
  const auto p =
      ParseServeArgs({"--listen", "127.0.0.1:1", "--max-batch", "lots"}, Lookup({}), Host());
  EXPECT_EQ(p.error_code, options::ErrorCode::kBadSyntax);
  EXPECT_EQ(p.error_setting, "max-batch");
  EXPECT_EQ(p.error, "--max-batch (VROUTER_MAX_BATCH): 'lots' is not a whole number");
  const auto q = ParseServeArgs({"--listen", "127.0.0.1:1"},
                                Lookup({{"VROUTER_PACKETS_PER_USER", "nan"}}), Host());
  EXPECT_EQ(q.error_code, options::ErrorCode::kBadSyntax);
  EXPECT_EQ(q.error_setting, "packets-per-user");
}

TEST(SettingsTableTest, SessionLimitsAreDefinedOnceAndFilledByTheirFlags) {
  // The defaults are SessionLimits' own, except the connection cap parsing derives.
  const auto d = ParseServeArgs({"--listen", "127.0.0.1:1"}, Lookup({}), Host());
  ASSERT_TRUE(d.config) << d.error;
  service::SessionLimits expected;
  expected.max_connections = Host().connection_budget;
  EXPECT_TRUE(d.config->limits == expected);

  const auto p = ParseServeArgs({"--listen",
                                 "127.0.0.1:1",
                                 "--max-message-bytes",
                                 "2048",
                                 "--max-batch",
                                 "7",
                                 "--max-watches",
                                 "8",
                                 "--send-queue-bytes",
                                 "4096",
                                 "--max-pings-per-second",
                                 "9",
                                 "--handshake-timeout-ms",
                                 "101",
                                 "--hello-timeout-ms",
                                 "102",
                                 "--idle-timeout-ms",
                                 "1003",
                                 "--max-connections",
                                 "11",
                                 "--max-connections-per-ip",
                                 "12",
                                 "--max-handshakes",
                                 "13",
                                 "--rate-limits",
                                 "off"},
                                Lookup({}), Host());
  ASSERT_TRUE(p.config) << p.error;
  const auto& g = p.config->limits;
  EXPECT_EQ(g.max_message_bytes, 2048u);
  EXPECT_EQ(g.max_batch, 7u);
  EXPECT_EQ(g.max_watches, 8u);
  EXPECT_EQ(g.max_send_queue_bytes, 4096u);
  EXPECT_EQ(g.max_pings_per_second, 9u);
  EXPECT_EQ(g.handshake_timeout.count(), 101);
  EXPECT_EQ(g.hello_timeout.count(), 102);
  EXPECT_EQ(g.idle_timeout.count(), 1003);
  EXPECT_EQ(g.max_connections, 11u);
  EXPECT_EQ(g.max_connections_per_ip, 12u);
  EXPECT_EQ(g.max_handshakes, 13u);
  EXPECT_EQ(g.rate_limits, edge::RateLimits::Unlimited());
}

TEST(SettingsTableTest, WhatTheMachineDecidesComesFromTheHostFacts) {
  const std::vector<std::string> args = {"--listen", "127.0.0.1:1"};
  auto p = ParseServeArgs(args, Lookup({}), Host());
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->replica_id, "host-abc");
  EXPECT_EQ(p.config->limits.max_connections, 5000u);
  EXPECT_EQ(p.config->threads, 4u);
  p = ParseServeArgs({"--listen", "127.0.0.1:1", "--replica-id", "r", "--max-connections", "7"},
                     Lookup({}), Host());
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->replica_id, "r");
  EXPECT_EQ(p.config->limits.max_connections, 7u);
  HostFacts odd = Host();
  odd.hostname.clear();
  odd.hardware_threads = 0;
  p = ParseServeArgs(args, Lookup({}), odd);
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->replica_id, "replica-abc");
  EXPECT_EQ(p.config->threads, 1u);
  odd.hostname = std::string(100, 'h');
  odd.hardware_threads = 1000;
  p = ParseServeArgs(args, Lookup({}), odd);
  ASSERT_TRUE(p.config) << p.error;
  EXPECT_EQ(p.config->replica_id.size(), 64u);
  EXPECT_EQ(p.config->threads, 256u);
}

TEST(SettingsTableTest, HelpAndTheJsonDumpCoverEveryRow) {
  const auto help = ParseServeArgs({"--help"}, Lookup({}), Host()).help;
  const auto dump = boost::json::parse(SettingsJson(Host())).as_object();
  EXPECT_EQ(dump.at("env_prefix").as_string(), "VROUTER_");
  const auto& rows = dump.at("settings").as_array();
  const auto defaults = Table().Show(DefaultConfig(Host()));
  ASSERT_EQ(rows.size(), Table().settings().size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& s = Table().settings()[i];
    const auto& row = rows[i].as_object();
    EXPECT_NE(help.find("  --" + s.flag + " "), std::string::npos) << s.flag;
    EXPECT_EQ(row.at("flag").as_string(), "--" + s.flag);
    EXPECT_EQ(row.at("env").as_string(), s.env);
    EXPECT_EQ(row.at("default").as_string(), defaults[i]);
    EXPECT_EQ(row.at("help").as_string(), s.help);
  }
}

}  // namespace
}  // namespace vrouter::app
