#include "router/base/options.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace vrouter::base::options {
namespace {

enum class Color { kRed, kBlue };

struct Opts {
  std::uint32_t count = 3;
  std::int64_t offset = 0;
  double share = 0.5;
  double positive = 1;
  std::chrono::milliseconds wait{100};
  std::string name;
  bool on = false;
  Color color = Color::kRed;
  std::vector<std::string> tags;
  std::vector<std::string> seen;  // repeatable, through Custom
};

Table<Opts> MakeTable(std::string prefix = "T_") {
  Table<Opts> t("usage: t [options]\n", std::move(prefix));
  t.Section("Test options");
  t.Integer("count", VROUTER_FIELD(count), Range::In(1, 5), "how many");
  t.Integer("offset", VROUTER_FIELD(offset), Range::Any(), "signed");
  t.Real("share", VROUTER_FIELD(share), Range::In(0, 1), "a share");
  t.Real("positive", VROUTER_FIELD(positive), Range::Above(0), "above zero");
  t.Millis("wait", VROUTER_FIELD(wait), Range::AtMost(1000), "a wait");
  t.Text("name", VROUTER_FIELD(name), "a name", [](std::string_view v) -> Status<> {
    if (v.find(' ') == std::string_view::npos) return {};
    return Fail("must not hold spaces");
  });
  t.Switch("on", VROUTER_FIELD(on), "a switch");
  t.Choice("color", VROUTER_FIELD(color),
           std::vector<std::pair<std::string, Color>>{{"red", Color::kRed}, {"blue", Color::kBlue}},
           "a color");
  t.List("tags", VROUTER_FIELD(tags), "some tags");
  t.Custom(
       "seen", VROUTER_FIELD(seen), "X", "each one is kept",
       [](std::string_view v, std::vector<std::string>& out) -> Status<> {
         out.emplace_back(v);
         return {};
       },
       [](const std::vector<std::string>& v) { return std::to_string(v.size()); })
      .Repeatable();
  t.Check([](const Opts& o) -> std::optional<Error> {
    if (o.count != 5 || !o.on) return std::nullopt;
    return Error{ErrorCode::kConflict, "count", "--count 5 and --on do not mix"};
  });
  return t;
}

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Parsed<Opts> Parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  static const Table<Opts> table = MakeTable();
  return table.Parse(args, Env(std::move(env)));
}

Error Fails(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  auto p = Parse(std::move(args), std::move(env));
  EXPECT_FALSE(p.value);
  return p.error.value_or(Error{ErrorCode::kInvalid, "?", "no error"});
}

TEST(OptionsTest, DefaultsComeFromTheStruct) {
  auto p = Parse({});
  ASSERT_TRUE(p.value) << p.error->message;
  EXPECT_EQ(p.value->count, 3u);
  EXPECT_EQ(p.value->wait, std::chrono::milliseconds(100));
}

TEST(OptionsTest, BothSpellingsAndEveryKind) {
  auto p = Parse({"--count", "4", "--offset=-7", "--share", "0.25", "--wait", "900", "--name=x",
                  "--on", "--color", "blue", "--tags", " a, b,,", "--seen", "1", "--seen=2"});
  ASSERT_TRUE(p.value) << p.error->message;
  const Opts& o = *p.value;
  EXPECT_EQ(o.count, 4u);
  EXPECT_EQ(o.offset, -7);
  EXPECT_DOUBLE_EQ(o.share, 0.25);
  EXPECT_EQ(o.wait, std::chrono::milliseconds(900));
  EXPECT_EQ(o.name, "x");
  EXPECT_TRUE(o.on);
  EXPECT_EQ(o.color, Color::kBlue);
  EXPECT_EQ(o.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(o.seen, (std::vector<std::string>{"1", "2"}));
}

TEST(OptionsTest, TheEnvironmentFillsInAndAFlagWins) {
  auto p = Parse({"--count", "2"}, {{"T_COUNT", "5"}, {"T_NAME", "env"}, {"T_ON", "off"}});
  ASSERT_TRUE(p.value) << p.error->message;
  EXPECT_EQ(p.value->count, 2u);
  EXPECT_EQ(p.value->name, "env");
  EXPECT_FALSE(p.value->on);
  // Without a prefix a tool reads no environment.
  const Table<Opts> quiet = MakeTable("");
  EXPECT_EQ(quiet.Find("count")->env, "");
  auto q = quiet.Parse({}, Env({{"COUNT", "5"}, {"T_COUNT", "5"}}));
  ASSERT_TRUE(q.value);
  EXPECT_EQ(q.value->count, 3u);
}

TEST(OptionsTest, SwitchesTakeAValueOnlyAfterEquals) {
  auto p = Parse({"--on", "--count", "2"});
  ASSERT_TRUE(p.value) << p.error->message;
  EXPECT_TRUE(p.value->on);
  EXPECT_EQ(p.value->count, 2u);
  p = Parse({"--on=false"});
  ASSERT_TRUE(p.value);
  EXPECT_FALSE(p.value->on);
  EXPECT_EQ(Fails({"--on=maybe"}).code, ErrorCode::kBadSyntax);
  EXPECT_EQ(Fails({"--on", "yes"}).code, ErrorCode::kUnexpectedArgument);
}

TEST(OptionsTest, CommandLineMistakes) {
  Error e = Fails({"--bogus", "1"});
  EXPECT_EQ(e.code, ErrorCode::kUnknownOption);
  EXPECT_EQ(e.message, "--bogus: unknown option");
  EXPECT_EQ(Fails({"-x"}).code, ErrorCode::kUnknownOption);
  EXPECT_EQ(Fails({"stray"}).code, ErrorCode::kUnexpectedArgument);
  e = Fails({"--count", "2", "--count=3"});
  EXPECT_EQ(e.code, ErrorCode::kGivenTwice);
  EXPECT_EQ(e.setting, "count");
  e = Fails({"--count", "--on"});
  EXPECT_EQ(e.code, ErrorCode::kMissingValue);
  EXPECT_EQ(e.message, "--count (T_COUNT): needs a value");
  EXPECT_EQ(Fails({"--name"}).code, ErrorCode::kMissingValue);
}

TEST(OptionsTest, RangeMessagesComeFromTheRange) {
  Error e = Fails({"--count", "9"});
  EXPECT_EQ(e.code, ErrorCode::kOutOfRange);
  EXPECT_EQ(e.setting, "count");
  EXPECT_EQ(e.message, "--count (T_COUNT): must be in [1, 5], not '9'");
  EXPECT_EQ(Fails({}, {{"T_COUNT", "0"}}).message, "--count (T_COUNT): must be in [1, 5], not '0'");
  EXPECT_EQ(Fails({"--count=-1"}).code, ErrorCode::kOutOfRange);  // unsigned: no wrap-around
  EXPECT_EQ(Fails({"--count=99999999999999999999"}).code, ErrorCode::kOutOfRange);
  EXPECT_EQ(Fails({"--count=2x"}).code, ErrorCode::kBadSyntax);
  EXPECT_EQ(Fails({"--count="}).code, ErrorCode::kBadSyntax);
  EXPECT_EQ(Fails({"--positive", "0"}).message, "--positive (T_POSITIVE): must be > 0, not '0'");
  // Whole numbers always have two ends: the range's, or else their type's.
  EXPECT_EQ(Fails({"--wait", "1001"}).message, "--wait (T_WAIT): must be in [0, 1000], not '1001'");
  EXPECT_EQ(Fails({"--share", "1.5"}).message, "--share (T_SHARE): must be in [0, 1], not '1.5'");
  for (const char* bad : {"nan", "inf", "-inf", "0.5x", ""}) {
    EXPECT_EQ(Fails({std::string("--share=") + bad}).code, ErrorCode::kBadSyntax) << bad;
  }
  const Table<Opts> table = MakeTable();
  const Setting& offset = *table.Find("offset");
  EXPECT_EQ(offset.min, "-9223372036854775808");
  EXPECT_FALSE(offset.ranged);
}

TEST(OptionsTest, OwnChecksAndRulesOverSeveralSettings) {
  Error e = Fails({"--name", "a b"});
  EXPECT_EQ(e.code, ErrorCode::kInvalid);
  EXPECT_EQ(e.message, "--name (T_NAME): must not hold spaces");
  e = Fails({"--color", "green"});
  EXPECT_EQ(e.message, "--color (T_COLOR): 'green' is not one of red, blue");
  e = Fails({"--count", "5", "--on"});
  EXPECT_EQ(e.code, ErrorCode::kConflict);
  EXPECT_EQ(e.setting, "count");
}

TEST(OptionsTest, RequiredSettings) {
  Table<Opts> t = MakeTable();
  t.Text("must", VROUTER_FIELD(name), "given or else").Required();
  auto p = t.Parse({}, {});
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->code, ErrorCode::kRequired);
  EXPECT_EQ(p.error->message, "--must (T_MUST): required");
  EXPECT_TRUE(t.Parse({}, Env({{"T_MUST", "x"}})).value);
  EXPECT_FALSE(t.Parse({"--help"}, {}).help.empty());  // help needs no required setting
}

TEST(OptionsTest, HelpListsEveryRowWithItsDefaultAndRange) {
  auto p = Parse({"--count", "2", "-h"});
  EXPECT_FALSE(p.value);
  EXPECT_FALSE(p.error);
  EXPECT_NE(p.help.find("usage: t [options]"), std::string::npos);
  EXPECT_NE(p.help.find("Test options:"), std::string::npos);
  EXPECT_NE(p.help.find("--count N"), std::string::npos);
  EXPECT_NE(p.help.find("how many (default 3; in [1, 5])"), std::string::npos) << p.help;
  EXPECT_NE(p.help.find("a color (default red; one of red, blue)"), std::string::npos) << p.help;
  EXPECT_NE(p.help.find("--on "), std::string::npos);
  EXPECT_NE(p.help.find("each one is kept (default 0; repeatable)"), std::string::npos);
}

TEST(OptionsTest, TheJsonDumpHoldsEveryRow) {
  const Table<Opts> t = MakeTable();
  const auto dump = boost::json::parse(t.Json(Opts{})).as_object();
  EXPECT_EQ(dump.at("env_prefix").as_string(), "T_");
  const auto& rows = dump.at("settings").as_array();
  ASSERT_EQ(rows.size(), t.settings().size());
  const auto& count = rows[0].as_object();
  EXPECT_EQ(count.at("flag").as_string(), "--count");
  EXPECT_EQ(count.at("env").as_string(), "T_COUNT");
  EXPECT_EQ(count.at("default").as_string(), "3");
  EXPECT_EQ(count.at("min").to_number<double>(), 1);
  EXPECT_EQ(count.at("max").to_number<double>(), 5);
  EXPECT_EQ(rows[3].as_object().at("min_exclusive").as_bool(), true);
}

TEST(OptionsTest, Helpers) {
  EXPECT_EQ(SplitList(" a , ,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(FormatNumber(1e9), "1000000000");
  EXPECT_EQ(FormatNumber(0.1), "0.1");
  EXPECT_EQ(FormatNumber(-2), "-2");
  EXPECT_EQ(ParseBool("ON"), true);
  EXPECT_EQ(ParseBool("0"), false);
  EXPECT_EQ(ParseBool("2"), std::nullopt);
  Setting s;
  s.max = "9";
  EXPECT_EQ(s.RangeText(), "must be at most 9");
  s.min = "1";
  s.min_exclusive = true;
  EXPECT_EQ(s.RangeText(), "must be in (1, 9]");
  const WholeBounds b = ClipRange(Range::Above(0.5), 0, 10);
  EXPECT_EQ(b.min, 1);
  EXPECT_EQ(b.max, 10u);
}

}  // namespace
}  // namespace vrouter::base::options
