#include "bench/load/load_options.h"

#include <gtest/gtest.h>

#include <vector>

namespace vrouter::bench::load {
namespace {

LoadParse Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "vrouter_load");
  return ParseLoadOptions(static_cast<int>(args.size()), args.data());
}

std::string Error(std::vector<const char*> args) {
  auto p = Parse(std::move(args));
  EXPECT_FALSE(p.options.has_value());
  EXPECT_EQ(p.exit_code, 2);
  return p.message;
}

TEST(LoadOptionsTest, DefaultsAndAFullCommandLine) {
  auto p = Parse({"--urls",         "wss://127.0.0.1:8443/v1/client,wss://127.0.0.1:8444/v1/client",
                  "--secret-file",  "s",
                  "--users-total",  "100",
                  "--process",      "1",
                  "--processes",    "2",
                  "--mode",         "lookup",
                  "--rate",         "500",
                  "--surge",        "30,15",
                  "--broken",       "sim-3@60",
                  "--expect-drops", "--t0-unix-ms",
                  "1700000000000"});
  ASSERT_TRUE(p.options) << p.message;
  const auto& o = *p.options;
  EXPECT_EQ(o.urls.size(), 2u);
  EXPECT_TRUE(o.tls());
  EXPECT_EQ(o.urls[1].port, 8444);
  EXPECT_EQ(o.process, 1u);
  EXPECT_EQ(o.crowd.users_total, 100u);
  EXPECT_EQ(o.mode, Mode::kLookup);
  EXPECT_EQ(o.rate, 500);
  EXPECT_EQ(*o.surge_on, 30);
  EXPECT_EQ(o.surge_off, 15);
  EXPECT_EQ(o.broken_server, "sim-3");
  EXPECT_EQ(o.broken_at, 60);
  EXPECT_TRUE(o.expect_drops);
  EXPECT_EQ(*o.t0_unix_ms, 1700000000000);
  EXPECT_EQ(o.crowd.space_size, 50u);
}

TEST(LoadOptionsTest, HelpIsNotAnError) {
  auto p = Parse({"--help"});
  EXPECT_FALSE(p.options);
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_NE(p.message.find("--users-total"), std::string::npos);
}

TEST(LoadOptionsTest, EchoModeNeedsNoSecret) {
  auto p = Parse({"--urls", "ws://127.0.0.1:1/v1/client", "--users-total", "1", "--mode", "echo"});
  EXPECT_TRUE(p.options) << p.message;
}

TEST(LoadOptionsTest, BadInputsNameTheFlag) {
  const char* ws = "ws://127.0.0.1:1/v1/client";
  EXPECT_NE(Error({"--users-total", "1"}).find("urls"), std::string::npos);
  EXPECT_NE(
      Error({"--urls", "http://x/", "--users-total", "1", "--secret-file", "s"}).find("--urls"),
      std::string::npos);
  EXPECT_NE(Error({"--urls", "ws://a:1/,wss://b:2/", "--users-total", "1", "--secret-file", "s"})
                .find("mix"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1"}).find("--secret-file"), std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "0", "--secret-file", "s"}).find("--users-total"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--process", "2",
                   "--processes", "2"})
                .find("--process"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--mode", "x"})
                .find("--mode"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--surge", "30"})
                .find("--surge"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--broken", "sim-3"})
                .find("--broken"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--duration", "0"})
                .find("--duration"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--ca", "c.pem"})
                .find("--ca"),
            std::string::npos);
  EXPECT_NE(Error({"--urls", ws, "--users-total", "1", "--secret-file", "s", "--rate", "nan"})
                .find("--rate"),
            std::string::npos);
}

}  // namespace
}  // namespace vrouter::bench::load
