#include "router/assign/assignment_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace vrouter::assign {
namespace {

using namespace std::chrono_literals;
const base::SteadyTime kT0 = base::SteadyTime{} + 1000s;

Assignment A(const std::string& user, const std::string& server, std::uint64_t session = 1) {
  return Assignment{user, "space", server, 0, "r1", session, kT0};
}

TEST(AssignmentTableTest, PutCreatesWithIncreasingEpochs) {
  AssignmentTable t(4);
  auto a = t.Put(A("alice", "s1"), 0);
  auto b = t.Put(A("bob", "s1"), 0);
  ASSERT_TRUE(a.written && b.written);
  EXPECT_GT(a.current.epoch, 0u);
  EXPECT_GT(b.current.epoch, a.current.epoch);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.Get("alice")->server, "s1");
  EXPECT_EQ(t.LoadByServer().at("s1"), 2);
  ASSERT_TRUE(a.change.has_value());
  EXPECT_FALSE(a.change->from_server.has_value());
}

TEST(AssignmentTableTest, LookupIntoFillsAndReusesTheSlots) {
  AssignmentTable t(4);
  const std::string long_server(40, 's');  // beyond the small-string buffer: a heap string
  t.Put(A("alice", long_server), 0);
  std::vector<std::optional<Assignment>> out;
  const std::string_view users[] = {"alice", "nobody", "alice"};
  t.LookupInto(users, out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]->server, long_server);
  EXPECT_FALSE(out[1].has_value());
  EXPECT_EQ(out[2]->user, "alice");
  // Again into the same slots: the found ones are copied over in place (the buffers stay).
  const char* buffer = out[0]->server.data();
  t.LookupInto(std::span<const std::string_view>(users, 2), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]->server.data(), buffer);
  EXPECT_EQ(out[0]->server, long_server);
  EXPECT_FALSE(out[1].has_value());
}

TEST(AssignmentTableTest, PutIsCompareAndSetOnEpoch) {
  AssignmentTable t(4);
  const auto first = t.Put(A("alice", "s1"), 0).current;
  // A second creator loses and learns the winner.
  auto lost = t.Put(A("alice", "s2"), 0);
  EXPECT_FALSE(lost.written);
  EXPECT_EQ(lost.current.server, "s1");
  // A stale epoch loses too.
  EXPECT_FALSE(t.Put(A("alice", "s2"), first.epoch + 5).written);
  // The right epoch wins, bumps the epoch, and moves the load.
  auto moved = t.Put(A("alice", "s2"), first.epoch);
  ASSERT_TRUE(moved.written);
  EXPECT_GT(moved.current.epoch, first.epoch);
  EXPECT_EQ(moved.change->from_server, "s1");
  EXPECT_FALSE(t.LoadByServer().contains("s1"));
  EXPECT_EQ(t.LoadByServer().at("s2"), 1);
}

TEST(AssignmentTableTest, MinEpochKeepsEpochsMonotonicForResumingClients) {
  AssignmentTable t(4);
  auto r = t.Put(A("alice", "s1"), 0, /*min_epoch=*/500);
  EXPECT_EQ(r.current.epoch, 501u);
  EXPECT_EQ(t.Put(A("bob", "s1"), 0).current.epoch, 502u);
}

TEST(AssignmentTableTest, OnlyTheOwningSessionDetachesOrRemoves) {
  AssignmentTable t(4);
  t.Put(A("alice", "s1", /*session=*/7), 0);
  EXPECT_FALSE(t.Detach("alice", 8, kT0));
  EXPECT_FALSE(t.Remove("alice", 8).has_value());
  // A newer session attaches; the old one can no longer detach it.
  EXPECT_EQ(t.Attach("alice", 8)->session, 8u);
  EXPECT_FALSE(t.Detach("alice", 7, kT0));
  EXPECT_TRUE(t.Detach("alice", 8, kT0));
  EXPECT_EQ(t.Get("alice")->session, 0u);
  EXPECT_FALSE(t.Attach("nobody", 1).has_value());
}

TEST(AssignmentTableTest, DetachedAssignmentsExpireAfterGrace) {
  AssignmentTable t(4);
  t.Put(A("alice", "s1", 1), 0);
  t.Put(A("bob", "s1", 2), 0);
  t.Detach("alice", 1, kT0);
  EXPECT_TRUE(t.ExpireDetached(kT0 + 29s, 30s).empty());
  auto removed = t.ExpireDetached(kT0 + 30s, 30s);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].kind, AssignmentChange::Kind::kRemoved);
  EXPECT_EQ(removed[0].assignment.user, "alice");
  EXPECT_EQ(t.size(), 1u);  // bob is attached: never expires
  EXPECT_EQ(t.LoadByServer().at("s1"), 1);
}

TEST(AssignmentTableTest, LookupFillsInOrder) {
  AssignmentTable t(4);
  t.Put(A("bob", "s2"), 0);
  std::vector<std::string> users = {"alice", "bob"};
  std::vector<std::optional<Assignment>> out;
  t.Lookup(users, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[0].has_value());
  EXPECT_EQ(out[1]->server, "s2");
}

// Many threads race to create and move the same users: every user ends with exactly one
// assignment, epochs are unique, and the per-server load matches the table.
TEST(AssignmentTableTest, ConcurrentWritersNeverCorruptState) {
  AssignmentTable t(8);
  constexpr int kThreads = 4, kUsers = 200, kRounds = 50;
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      for (int round = 0; round < kRounds; ++round) {
        for (int u = 0; u < kUsers; ++u) {
          const std::string user = "u" + std::to_string(u);
          auto cur = t.Get(user);
          auto r = t.Put(A(user, "s" + std::to_string((th + round) % 3)), cur ? cur->epoch : 0);
          if (r.written) wins.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(t.size(), static_cast<std::size_t>(kUsers));
  std::int64_t total = 0;
  for (const auto& [server, n] : t.LoadByServer()) total += n;
  EXPECT_EQ(total, kUsers);
  EXPECT_GE(wins.load(), kUsers);
}

}  // namespace
}  // namespace vrouter::assign
