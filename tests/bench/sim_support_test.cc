// Helpers and command line of the simulated video-server fleet (bench/sim/sim_support.h,
// bench/sim/sim_options.h).
#include "bench/sim/sim_support.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <limits>

#include "bench/sim/sim_options.h"
#include "proto/video_server_codec.h"

namespace vrouter::bench::sim {
namespace {

using std::chrono::milliseconds;

// ---- --behavior ----

TEST(ParseBehaviorFlagTest, IdModeAndOptionalSwitchTime) {
  auto r = ParseBehaviorFlag("sim-3=blackhole@20");
  ASSERT_TRUE(std::holds_alternative<BehaviorFlag>(r)) << r.error().message;
  EXPECT_EQ(std::get<BehaviorFlag>(r).id, "sim-3");
  EXPECT_EQ(std::get<BehaviorFlag>(r).spec.behavior, Behavior::kBlackhole);
  EXPECT_DOUBLE_EQ(std::get<BehaviorFlag>(r).spec.at, 20);

  r = ParseBehaviorFlag("a=dead");
  ASSERT_TRUE(std::holds_alternative<BehaviorFlag>(r));
  EXPECT_EQ(std::get<BehaviorFlag>(r).spec.behavior, Behavior::kDead);
  EXPECT_DOUBLE_EQ(std::get<BehaviorFlag>(r).spec.at, 0);

  r = ParseBehaviorFlag("x=flapping@1.5");
  ASSERT_TRUE(std::holds_alternative<BehaviorFlag>(r));
  EXPECT_DOUBLE_EQ(std::get<BehaviorFlag>(r).spec.at, 1.5);
}

TEST(ParseBehaviorFlagTest, RefusesMalformedFlagsWithAMessage) {
  for (const char* bad :
       {"", "nope", "=dead", "sim-1=", "sim-1=zombie", "sim-1=dead@", "sim-1=dead@-1",
        "sim-1=dead@x", "sim-1=dead@5s", "sim-1=dead@nan", "sim-1=dead@inf"}) {
    const auto r = ParseBehaviorFlag(bad);
    ASSERT_TRUE(!r.ok()) << bad;
    EXPECT_NE(r.error().message.find("--behavior"), std::string::npos) << bad;
  }
}

// ---- URLs ----

TEST(ParseUrlTest, SchemeHostPortTarget) {
  auto r = ParseUrl("ws://127.0.0.1:8080", {"ws", "wss"});
  ASSERT_TRUE(std::holds_alternative<Url>(r)) << r.error().message;
  auto u = std::get<Url>(r);
  EXPECT_EQ(u.scheme, "ws");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/");

  u = std::get<Url>(ParseUrl("wss://localhost", {"ws", "wss"}));
  EXPECT_EQ(u.port, 443);
  u = std::get<Url>(ParseUrl("ws://127.0.0.1", {"ws"}));
  EXPECT_EQ(u.port, 80);
  u = std::get<Url>(ParseUrl("ws://[::1]:9/v1/video-server", {"ws"}));
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 9);
  EXPECT_EQ(u.target, "/v1/video-server");
  u = std::get<Url>(ParseUrl("http://127.0.0.1:9090/admin/", {"http"}));
  EXPECT_EQ(u.target, "/admin/");
}

TEST(ParseUrlTest, RefusesWhatItCannotConnectTo) {
  for (const char* bad :
       {"127.0.0.1:80", "ftp://127.0.0.1", "ws://", "ws://:80", "ws://h:0", "ws://h:70000",
        "ws://h:", "ws://h:8a", "ws://[::1", "ws://[::1]x", "http://127.0.0.1:1"}) {
    EXPECT_FALSE(ParseUrl(bad, {"ws", "wss"}).ok()) << bad;
  }
}

TEST(SimSupportTest, ExpandTemplateReplacesEveryId) {
  EXPECT_EQ(ExpandTemplate("wss://{id}.media.test/rtc", "sim-0"), "wss://sim-0.media.test/rtc");
  EXPECT_EQ(ExpandTemplate("{id}/{id}", "a"), "a/a");
  EXPECT_EQ(ExpandTemplate("wss://fixed/", "a"), "wss://fixed/");
  EXPECT_EQ(ExpandTemplate("{i}{id", "a"), "{i}{id");
}

TEST(SimSupportTest, SplitListTrimsAndDropsEmptyItems) {
  EXPECT_EQ(SplitList("eu-west,us-east"), (std::vector<std::string>{"eu-west", "us-east"}));
  EXPECT_EQ(SplitList(" a , ,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(SplitList("").empty());
  EXPECT_TRUE(SplitList(",,").empty());
}

TEST(SimSupportTest, PercentEncodeKeepsUnreservedOnly) {
  EXPECT_EQ(PercentEncode("sim-0_a.b~"), "sim-0_a.b~");
  EXPECT_EQ(PercentEncode("a b/c"), "a%20b%2Fc");
  EXPECT_EQ(PercentEncode("\xC3\xA9"), "%C3%A9");
}

TEST(SimSupportTest, TrimSecretDropsSurroundingWhitespace) {
  EXPECT_EQ(TrimSecret("  abc123\n"), "abc123");
  EXPECT_EQ(TrimSecret("a b\r\n"), "a b");
  EXPECT_EQ(TrimSecret("\n\n"), "");
}

// ---- admin API ----

TEST(ParseAssignedTest, ReadsTheIntegerField) {
  EXPECT_EQ(ParseAssigned(R"({"id":"sim-0","assigned":12,"state":"active"})"), 12u);
  EXPECT_EQ(ParseAssigned(R"({"assigned":0})"), 0u);
  EXPECT_EQ(ParseAssigned(R"({"assigned":-3})"), 0u);
  EXPECT_EQ(ParseAssigned(R"({"assigned":99999999999})"),
            std::numeric_limits<std::uint32_t>::max());
}

TEST(ParseAssignedTest, AnythingElseIsUnknown) {
  for (const char* bad : {"", "not json", "[]", "3", R"({"assigned":"3"})", R"({"assigned":3.5})",
                          R"({"assigned":null})", R"({"other":1})", R"({"assigned":1)"}) {
    EXPECT_FALSE(ParseAssigned(bad).has_value()) << bad;
  }
}

// ---- backoff ----

TEST(BackoffTest, DoublesWithJitterUpToTheCap) {
  EXPECT_EQ(Backoff(0, 0.0), milliseconds(125));
  EXPECT_EQ(Backoff(0, 1.0), milliseconds(250));
  EXPECT_EQ(Backoff(1, 0.0), milliseconds(250));
  EXPECT_EQ(Backoff(3, 1.0), milliseconds(2000));
  EXPECT_EQ(Backoff(6, 1.0), milliseconds(10000));  // 16 s capped at 10 s
  EXPECT_EQ(Backoff(1000, 0.0), milliseconds(5000));
  EXPECT_EQ(Backoff(-4, 0.0), milliseconds(125));
  for (int attempt = 0; attempt < 40; ++attempt) {
    for (double u : {0.0, 0.3, 0.999}) {
      const auto d = Backoff(attempt, u);
      EXPECT_GE(d, milliseconds(125));
      EXPECT_LE(d, milliseconds(10000));
    }
  }
}

// ---- garbage ----

TEST(GarbageFramesTest, EveryFrameIsRefusedByTheRealDecoder) {
  const auto frames = GarbageFrames(42);
  ASSERT_GE(frames.size(), 3u);
  bool saw_cpu = false;
  for (const auto& f : frames) {
    const auto r = proto::DecodeVideoServerMessage(f);
    ASSERT_TRUE(std::holds_alternative<proto::DecodeError>(r)) << f;
    if (f.find("\"cpu\":7") != std::string::npos) {
      saw_cpu = true;
      // A refused stats whose seq could be read names it, so the router's error can too.
      EXPECT_EQ(std::get<proto::DecodeError>(r).id, 42u) << f;
    }
  }
  EXPECT_TRUE(saw_cpu) << "no stats with cpu 7 among the frames";
  // Invalid JSON comes first.
  EXPECT_EQ(std::get<proto::DecodeError>(proto::DecodeVideoServerMessage(frames[0])).code,
            proto::ErrorCode::kInvalidJson);
}

// ---- summary ----

TEST(SummaryJsonTest, IsAnObjectKeyedByServerId) {
  RunSummary sum;
  sum.router = "ws://127.0.0.1:1";
  sum.admin = "";
  sum.elapsed_s = 3.5;
  sum.stopped_by = "duration";
  ServerRecord a;
  a.id = "sim-0";
  a.region = "eu-west";
  a.url = "wss://sim-0.media.test/rtc";
  a.behavior = "blackhole";
  a.switch_at = 20;
  a.registrations = 1;
  a.last_state = "ejected";
  a.state_pushes = {{"active", "", 1.0}, {"ejected", "not_forwarding", 25.5}};
  a.stats_sent = 30;
  a.errors_received = 1;
  a.errors = {{"invalid_message", "cpu out of range", 5.0}};
  a.last_assigned = 17;
  a.last_close_code = 1006;
  a.connected_at_exit = true;
  ServerRecord b;
  b.id = "sim-1";
  b.behavior = "healthy";
  sum.servers = {a, b};

  const auto v = boost::json::parse(SummaryJson(sum));
  const auto& top = v.as_object();
  EXPECT_EQ(top.at("router").as_string(), "ws://127.0.0.1:1");
  EXPECT_EQ(top.at("stopped_by").as_string(), "duration");
  EXPECT_DOUBLE_EQ(top.at("elapsed_s").as_double(), 3.5);
  const auto& servers = top.at("servers").as_object();
  ASSERT_EQ(servers.size(), 2u);
  const auto& s0 = servers.at("sim-0").as_object();
  EXPECT_EQ(s0.at("behavior").as_string(), "blackhole");
  EXPECT_EQ(s0.at("last_state").as_string(), "ejected");
  EXPECT_EQ(s0.at("stats_sent").to_number<int>(), 30);
  EXPECT_EQ(s0.at("errors_received").to_number<int>(), 1);
  EXPECT_EQ(s0.at("last_assigned").to_number<int>(), 17);
  EXPECT_EQ(s0.at("last_close_code").to_number<int>(), 1006);
  EXPECT_TRUE(s0.at("connected_at_exit").as_bool());
  const auto& pushes = s0.at("state_pushes").as_array();
  ASSERT_EQ(pushes.size(), 2u);
  EXPECT_EQ(pushes[1].at("state").as_string(), "ejected");
  EXPECT_EQ(pushes[1].at("reason").as_string(), "not_forwarding");
  EXPECT_DOUBLE_EQ(pushes[1].at("t").as_double(), 25.5);
  EXPECT_EQ(s0.at("errors").as_array()[0].at("code").as_string(), "invalid_message");
  const auto& s1 = servers.at("sim-1").as_object();
  EXPECT_TRUE(s1.at("last_state").is_null());
  EXPECT_TRUE(s1.at("last_assigned").is_null());
  EXPECT_TRUE(s1.at("last_close_code").is_null());
  EXPECT_TRUE(s1.at("state_pushes").as_array().empty());
}

// ---- command line ----

ParseOutcome Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "sim_video_server");
  return ParseSimOptions(static_cast<int>(args.size()), args.data());
}

TEST(SimOptionsTest, DefaultsAndPlan) {
  const auto r = Parse({"--router", "ws://127.0.0.1:8080", "--secret-file", "/dev/null",
                        "--servers", "3", "--regions", "eu-west,us-east", "--behavior",
                        "sim-1=blackhole@20", "--behavior", "sim-2=garbage"});
  ASSERT_TRUE(r.options.has_value()) << r.message;
  const SimOptions& o = *r.options;
  EXPECT_EQ(o.router.port, 8080);
  EXPECT_EQ(o.RouterTarget(), "/v1/video-server");
  EXPECT_FALSE(o.admin.has_value());
  EXPECT_EQ(o.capacity, 500u);
  EXPECT_DOUBLE_EQ(o.pps, 100);
  EXPECT_DOUBLE_EQ(o.flap_period, 5);
  EXPECT_DOUBLE_EQ(o.duration, 0);
  EXPECT_FALSE(o.restart_in_place);
  const auto plan = PlanServers(o);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].id, "sim-0");
  EXPECT_EQ(plan[0].region, "eu-west");
  EXPECT_EQ(plan[1].region, "us-east");
  EXPECT_EQ(plan[2].region, "eu-west");
  EXPECT_EQ(plan[2].url, "wss://sim-2.media.test/rtc");
  EXPECT_EQ(plan[0].spec.behavior, Behavior::kHealthy);
  EXPECT_EQ(plan[1].spec.behavior, Behavior::kBlackhole);
  EXPECT_DOUBLE_EQ(plan[1].spec.at, 20);
  EXPECT_EQ(plan[2].spec.behavior, Behavior::kGarbage);
}

TEST(SimOptionsTest, EveryFlag) {
  const auto r = Parse({"--router",
                        "wss://127.0.0.1:8443/custom",
                        "--admin",
                        "http://127.0.0.1:9090",
                        "--secret-file",
                        "s",
                        "--ca",
                        "ca.pem",
                        "--servers",
                        "2",
                        "--id-prefix",
                        "x",
                        "--capacity",
                        "50",
                        "--url-template",
                        "wss://m/{id}",
                        "--flap-period",
                        "2.5",
                        "--duration",
                        "3",
                        "--pps",
                        "10",
                        "--token-ttl",
                        "60",
                        "--restart-in-place",
                        "--summary",
                        "out.json"});
  ASSERT_TRUE(r.options.has_value()) << r.message;
  const SimOptions& o = *r.options;
  EXPECT_EQ(o.RouterTarget(), "/custom");
  ASSERT_TRUE(o.admin.has_value());
  EXPECT_EQ(o.admin->port, 9090);
  EXPECT_EQ(o.ca_file, "ca.pem");
  EXPECT_EQ(o.capacity, 50u);
  EXPECT_DOUBLE_EQ(o.flap_period, 2.5);
  EXPECT_DOUBLE_EQ(o.duration, 3);
  EXPECT_DOUBLE_EQ(o.pps, 10);
  EXPECT_EQ(o.token_ttl_s, 60);
  EXPECT_TRUE(o.restart_in_place);
  EXPECT_EQ(o.summary_file, "out.json");
  EXPECT_EQ(PlanServers(o)[1].id, "x1");
  EXPECT_EQ(PlanServers(o)[1].url, "wss://m/x1");
}

TEST(SimOptionsTest, HelpExitsZero) {
  const auto r = Parse({"--help"});
  EXPECT_FALSE(r.options.has_value());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.message.find("--behavior"), std::string::npos);
}

TEST(SimOptionsTest, UsageErrorsExitTwoWithAMessage) {
  const std::vector<std::vector<const char*>> bad = {
      {},                                // --router and --secret-file missing
      {"--router", "ws://127.0.0.1:1"},  // no --secret-file
      {"--router", "http://127.0.0.1:1", "--secret-file", "s"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--admin", "ws://127.0.0.1:2"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--ca", "ca.pem"},  // ws + --ca
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--servers", "0"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--servers", "-1"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--capacity", "0"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--capacity", "2000000"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--regions", ","},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--flap-period", "0"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--duration", "-1"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--pps", "-1"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--token-ttl", "0"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--behavior", "sim-5=dead"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--behavior", "sim-0=zombie"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--behavior", "sim-0=dead",
       "--behavior", "sim-0=frozen"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--url-template", ""},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--id-prefix", "\x01"},
      {"--router", "ws://127.0.0.1:1", "--secret-file", "s", "--no-such-flag"},
  };
  for (const auto& args : bad) {
    const auto r = Parse(args);
    std::string joined;
    for (const char* a : args) joined += std::string(a) + " ";
    EXPECT_FALSE(r.options.has_value()) << joined;
    EXPECT_EQ(r.exit_code, 2) << joined;
    EXPECT_FALSE(r.message.empty()) << joined;
  }
}

}  // namespace
}  // namespace vrouter::bench::sim
