#include "router/fleet/directory.h"

#include <gtest/gtest.h>

#include <thread>

namespace vrouter::fleet {
namespace {

std::string ParseError(std::string_view json) {
  auto r = ParseVideoServers(json);
  EXPECT_TRUE(!r.ok()) << json;
  return !r.ok() ? r.error().message : "";
}

TEST(FleetTest, ParsesServersFile) {
  auto r = ParseVideoServers(
      R"([{"id":"a","url":"wss://a/","region":"eu","capacity":10,"extra":1},
          {"id":"b","url":"wss://b/","region":"us","capacity":20}])");
  ASSERT_TRUE(std::holds_alternative<std::vector<VideoServer>>(r));
  const auto& servers = std::get<std::vector<VideoServer>>(r);
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[1].capacity, 20u);
  DirectorySnapshot snap(servers);
  EXPECT_EQ(snap.Find("b")->url, "wss://b/");
  EXPECT_EQ(snap.Find("zzz"), nullptr);
}

TEST(FleetTest, RejectsBadFilesNamingTheEntry) {
  EXPECT_NE(ParseError("{").find("JSON"), std::string::npos);
  EXPECT_NE(ParseError("{}").find("array"), std::string::npos);
  EXPECT_NE(ParseError(R"([1])").find("entry 0"), std::string::npos);
  EXPECT_NE(ParseError(R"([{"url":"u","region":"r","capacity":1}])").find("'id'"),
            std::string::npos);
  EXPECT_NE(ParseError(R"([{"id":"a","region":"r","capacity":1}])").find("'url'"),
            std::string::npos);
  EXPECT_NE(ParseError(R"([{"id":"a","url":"u","capacity":1}])").find("'region'"),
            std::string::npos);
  EXPECT_NE(ParseError(R"([{"id":"a","url":")" + std::string(1025, 'u') +
                       R"(","region":"r","capacity":1}])")
                .find("'url'"),
            std::string::npos);
  EXPECT_NE(ParseError(R"([{"id":"a","url":"u","region":"r","capacity":0}])").find("capacity"),
            std::string::npos);
  EXPECT_NE(ParseError(R"([{"id":"a","url":"u","region":"r","capacity":"5"}])").find("capacity"),
            std::string::npos);
  EXPECT_NE(ParseError(R"([{"id":"a","url":"u","region":"r","capacity":1},
                           {"id":"a","url":"u","region":"r","capacity":1}])")
                .find("duplicate"),
            std::string::npos);
}

TEST(FleetTest, SnapshotsSwapAtomically) {
  Directory fleet;
  EXPECT_TRUE(fleet.Snapshot()->empty());
  auto before = fleet.Snapshot();
  fleet.Replace({VideoServer{"a", "u", "r", 1}});
  EXPECT_TRUE(before->empty());  // readers keep the snapshot they hold
  EXPECT_EQ(fleet.Snapshot()->servers().size(), 1u);
}

TEST(FleetTest, ThisThreadsViewFollowsEveryReplaceAndNeverMixesDirectories) {
  Directory a;
  EXPECT_TRUE(a.Current().empty());
  a.Replace({VideoServer{"a1", "u", "r", 1}});
  ASSERT_NE(a.Current().Find("a1"), nullptr);
  // Another directory (even one made where a destroyed one was) is never answered from a's view.
  {
    Directory b;
    b.Replace({VideoServer{"b1", "u", "r", 1}});
    EXPECT_NE(b.Current().Find("b1"), nullptr);
    EXPECT_EQ(b.Current().Find("a1"), nullptr);
  }
  Directory c;
  EXPECT_TRUE(c.Current().empty());
  EXPECT_NE(a.Current().Find("a1"), nullptr);
  a.Replace({VideoServer{"a2", "u", "r", 1}});
  EXPECT_EQ(a.Current().Find("a1"), nullptr);
  EXPECT_NE(a.Current().Find("a2"), nullptr);
  // Other threads take their own view.
  std::thread other([&] { EXPECT_NE(a.Current().Find("a2"), nullptr); });
  other.join();
}

}  // namespace
}  // namespace vrouter::fleet
