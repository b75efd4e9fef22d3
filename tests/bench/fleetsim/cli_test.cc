#include "bench/fleetsim/cli.h"

#include <gtest/gtest.h>

namespace vrouter::bench::fleetsim {
namespace {

std::variant<Options, UsageError> Parse(std::vector<std::string_view> args) {
  return ParseOptions(args);
}

std::string ErrorOf(std::vector<std::string_view> args) {
  auto r = Parse(std::move(args));
  auto* e = std::get_if<UsageError>(&r);
  return e == nullptr ? std::string() : e->message;
}

TEST(FleetsimCli, DefaultsToTheNewcomerPresetInEveryMode) {
  auto r = Parse({});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  const Options& o = std::get<Options>(r);
  ASSERT_EQ(o.scenarios.size(), 1u);
  EXPECT_EQ(o.scenarios[0].name, "newcomer");
  EXPECT_EQ(o.scenarios[0].replicas, 50u);
  EXPECT_EQ(o.scenarios[0].servers, 1000u);
  EXPECT_EQ(o.scenarios[0].admissions.size(), 4u);
  EXPECT_FALSE(o.check);
}

TEST(FleetsimCli, OverridesApplyToEveryScenario) {
  auto r = Parse(
      {"--scenario",        "ci",    "--scenario", "blackhole",       "--seed",           "7",
       "--replicas",        "3",     "--modes",    "shared,baseline", "--pubsub-ms",      "2,9",
       "--admit-rtt-ms",    "0.5,2", "--out",      "/tmp/x",          "--media-after-ms", "2500",
       "--load-refresh-ms", "250",   "--check"});
  ASSERT_TRUE(std::holds_alternative<Options>(r)) << std::get<UsageError>(r).message;
  const Options& o = std::get<Options>(r);
  ASSERT_EQ(o.scenarios.size(), 2u);
  for (const Scenario& s : o.scenarios) {
    EXPECT_EQ(s.seed, 7u);
    EXPECT_EQ(s.replicas, 3u);
    EXPECT_EQ(s.admissions, (std::vector{Admission::kShared, Admission::kBaseline}));
    EXPECT_EQ(s.pubsub_min_ms, 2);
    EXPECT_EQ(s.pubsub_max_ms, 9);
    EXPECT_EQ(s.admit_rtt_min_ms, 0.5);
    EXPECT_EQ(s.admit_rtt_max_ms, 2);
    EXPECT_EQ(s.media_after, Ms(2500));
    EXPECT_EQ(s.load_refresh, Ms(250));
  }
  EXPECT_EQ(o.out, "/tmp/x");
  EXPECT_TRUE(o.check);
}

TEST(FleetsimCli, BadInputIsOneLineNamingTheProblem) {
  EXPECT_EQ(ErrorOf({"--scenario", "nope"}), "unknown scenario: nope");
  EXPECT_EQ(ErrorOf({"--replicas", "x"}), "bad value for --replicas: x");
  EXPECT_EQ(ErrorOf({"--replicas", "-1"}), "bad value for --replicas: -1");
  EXPECT_EQ(ErrorOf({"--modes", "shared,magic"}), "bad value for --modes: shared,magic");
  EXPECT_EQ(ErrorOf({"--pubsub-ms", "3"}), "bad value for --pubsub-ms: 3");
  EXPECT_EQ(ErrorOf({"--seed"}), "--seed needs a value");
  EXPECT_EQ(ErrorOf({"--frobnicate", "1"}), "unknown flag: --frobnicate");
  EXPECT_EQ(ErrorOf({"--replicas", "101"}), "scenario newcomer: replicas must be 1..100");
  EXPECT_EQ(ErrorOf({"--scenario", "ci", "--pubsub-ms", "5,1"}),
            "scenario ci: pub/sub latency must be 0 <= min <= max <= 500 ms");
  for (const auto& args : std::vector<std::vector<std::string_view>>{
           {"--scenario", "nope"}, {"--seed"}, {"--replicas", "0"}}) {
    EXPECT_EQ(ErrorOf(args).find('\n'), std::string::npos);
  }
}

TEST(FleetsimCli, EveryPresetIsValid) {
  for (const auto& name : PresetNames()) {
    const auto s = Preset(name);
    ASSERT_TRUE(s.has_value()) << name;
    EXPECT_EQ(Validate(*s), "") << name;
    EXPECT_EQ(s->name, name);
  }
}

}  // namespace
}  // namespace vrouter::bench::fleetsim
