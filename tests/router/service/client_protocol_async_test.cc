// ClientProtocol over a store that answers later (as the Redis store does): requests are
// answered in arrival order while one waits, a client that piles up requests is cut off, and a
// connection that goes mid-request leaves nothing owned by its dead session.
#include <gtest/gtest.h>

#include <deque>
#include <functional>

#include "proto/codec.h"
#include "router/edge/token.h"
#include "router/service/client_protocol.h"
#include "router/service/fleet_controller.h"
#include "router/store/memory_store.h"
#include "tests/support/fake_session.h"
#include "tests/support/service_harness.h"

namespace vrouter::service {
namespace {

constexpr std::int64_t kNow = vrouter::testing::ServiceParts::kUnixNow;

// A MemoryStore whose every operation, reads included, runs only when the test says so, in the
// order it was asked for (the Redis store's thread runs them in that order too).
class DeferredStore final : public store::AssignmentStore {
 public:
  explicit DeferredStore(store::MemoryStore& inner) : inner_(inner) {}

  // Runs queued operations (and those they queue) until none is left.
  void RunAll() {
    while (!queue_.empty()) {
      auto op = std::move(queue_.front());
      queue_.pop_front();
      op();
    }
  }
  std::size_t queued() const { return queue_.size(); }

  void SetChangeListener(store::ChangeListener l) override { inner_.SetChangeListener(l); }
  std::optional<assign::Assignment> GetLocal(std::string_view user) const override {
    return inner_.GetLocal(user);
  }
  void Lookup(std::vector<std::string> users, store::LookupDone done) const override {
    queue_.push_back([this, users, done] { inner_.Lookup(users, done); });
  }
  void Put(assign::Assignment desired, std::uint64_t expected, std::uint64_t min_epoch,
           store::PutDone done) override {
    queue_.push_back([=, this] { inner_.Put(desired, expected, min_epoch, done); });
  }
  void Attach(std::string_view user, std::string_view space, std::uint64_t session,
              store::AttachDone done) override {
    queue_.push_back([this, user = std::string(user), space = std::string(space), session, done] {
      inner_.Attach(user, space, session, done);
    });
  }
  void Detach(std::string_view user, std::uint64_t session, base::SteadyTime now) override {
    queue_.push_back(
        [this, user = std::string(user), session, now] { inner_.Detach(user, session, now); });
  }
  void Remove(std::string_view user, std::uint64_t session, store::RemoveDone done) override {
    queue_.push_back(
        [this, user = std::string(user), session, done] { inner_.Remove(user, session, done); });
  }
  std::size_t ExpireDetached(base::SteadyTime now) override { return inner_.ExpireDetached(now); }
  void EnterSpace(std::string_view) override {}
  void LeaveSpace(std::string_view) override {}
  void WatchUsers(std::span<const std::string>, store::ReadyDone ready) override {
    queue_.push_back(ready);
  }
  void UnwatchUsers(std::span<const std::string>) override {}
  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const override {
    return inner_.LoadByServer();
  }
  void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) override {
    inner_.TakeLoadChanges(out);
  }
  absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(std::string_view s) const override {
    return inner_.SpaceLoad(s);
  }
  std::vector<assign::Assignment> AssignedTo(std::string_view server,
                                             std::size_t limit) const override {
    return inner_.AssignedTo(server, limit);
  }
  std::size_t size() const override { return inner_.size(); }

 private:
  store::MemoryStore& inner_;
  mutable std::deque<std::function<void()>> queue_;
};

// The deferred store wraps a MemoryStore; both are built before the Service parts that use them.
struct DeferredStoreHolder {
  store::MemoryStore memory{std::chrono::seconds(30)};
  DeferredStore deferred{memory};
};

struct AsyncFixture : ::testing::Test, DeferredStoreHolder, vrouter::testing::ServiceParts {
  AsyncFixture() : ServiceParts(deferred) {
    fleet_control.Declare({{"a", "wss://a/", "eu", 10, false}});
  }

  struct Client {
    std::shared_ptr<vrouter::testing::FakeSession> session =
        std::make_shared<vrouter::testing::FakeSession>();
    std::unique_ptr<ClientProtocol> protocol;
    void Say(const proto::ClientMessage& m) { protocol->OnText(proto::Encode(m)); }
    std::vector<proto::ServerMessage> Sent() const {
      std::vector<proto::ServerMessage> out;
      for (const auto& s : session->sent) {
        out.push_back(std::get<proto::ServerMessage>(proto::DecodeServerMessage(s)));
      }
      return out;
    }
  };
  std::uint64_t next_id = 1;
  Client Connect(const std::string& user) {
    Client c;
    const auto id = next_id++;
    c.protocol = std::make_unique<ClientProtocol>(service, *c.session, c.session, id);
    sessions.Add(id, c.session);
    c.Say(proto::Hello{1, edge::MintToken(user, "s1", "k", kNow, kNow + 60)});
    return c;
  }
};

TEST_F(AsyncFixture, RequestsAreAnsweredInArrivalOrderWhileOneWaits) {
  auto alice = Connect("alice");
  alice.Say(proto::Join{2});
  alice.Say(proto::Lookup{3, {"alice"}});  // must see the join's result
  alice.Say(proto::Lookup{4, {"nobody"}});
  EXPECT_EQ(alice.Sent().size(), 1u) << "only welcome before the store answers";
  deferred.RunAll();
  const auto sent = alice.Sent();
  ASSERT_EQ(sent.size(), 4u);
  ASSERT_TRUE(std::holds_alternative<proto::Assigned>(sent[1]));
  ASSERT_TRUE(std::holds_alternative<proto::LookupResult>(sent[2]));
  ASSERT_TRUE(std::holds_alternative<proto::LookupResult>(sent[3]));
  const auto& assigned = std::get<proto::Assigned>(sent[1]);
  const auto& self = std::get<proto::LookupResult>(sent[2]);
  EXPECT_EQ(assigned.id, 2u);
  EXPECT_EQ(self.id, 3u);
  ASSERT_TRUE(self.results[0].server.has_value());
  EXPECT_EQ(self.results[0].epoch, assigned.epoch);
  EXPECT_EQ(std::get<proto::LookupResult>(sent[3]).id, 4u);
}

TEST_F(AsyncFixture, TooManyWaitingRequestsCloseWithPolicyViolation) {
  auto alice = Connect("alice");
  alice.Say(proto::Join{2});
  for (int i = 0; i < 64; ++i) alice.Say(proto::Lookup{static_cast<std::uint64_t>(10 + i), {"x"}});
  EXPECT_FALSE(alice.session->closed);
  alice.Say(proto::Lookup{99, {"x"}});  // the 65th waiting request
  EXPECT_EQ(alice.session->closed, proto::close_code::kPolicyViolation);
  EXPECT_EQ(alice.Sent().size(), 1u) << "no answer out of order";
}

TEST_F(AsyncFixture, ConnectionGoneMidJoinLeavesTheAssignmentDetached) {
  auto first = Connect("alice");
  first.Say(proto::Join{2});
  deferred.RunAll();
  ASSERT_EQ(memory.Get("alice")->session, 1u);

  auto second = Connect("alice");  // a new device: its join attaches, then the socket drops
  second.Say(proto::Join{2});
  second.protocol->OnClosed();
  deferred.RunAll();
  const auto a = memory.Get("alice");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->session, 0u) << "owned by a session that is gone";
}

TEST_F(AsyncFixture, FailedJoinAfterAttachStillDetachesOnClose) {
  auto first = Connect("alice");
  first.Say(proto::Join{2});
  deferred.RunAll();
  fleet_control.Drain("a");  // the only server: the next join attaches, then finds no server

  auto second = Connect("alice");
  second.Say(proto::Join{2});
  deferred.RunAll();
  ASSERT_TRUE(std::holds_alternative<proto::Error>(second.Sent().back()));
  EXPECT_EQ(memory.Get("alice")->session, 2u);  // attached by the failed join
  second.protocol->OnClosed();
  deferred.RunAll();
  EXPECT_EQ(memory.Get("alice")->session, 0u);
}

}  // namespace
}  // namespace vrouter::service
