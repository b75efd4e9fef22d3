// The AssignmentStore contract (router/store/store.h), one suite run against every
// implementation: MemoryStore (the embedded single replica) and RedisStore (two replicas sharing
// a real redis-server, started per test on 127.0.0.1 and a free port). The asynchronous API is
// wrapped in blocking helpers with bounded waits; whatever a shared store only does eventually
// (load refresh, expiry by housekeeping, local copies) is polled for, bounded too.
//
// "peer" is a second replica of the same shared state: for RedisStore another RedisStore with its
// own replica id on the same Redis; for MemoryStore (one replica by design) the same store.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "router/base/log.h"
#include "router/store/cluster_slots.h"
#include "router/store/fleet_gossip.h"
#include "router/store/gossip_auth.h"
#include "router/store/memory_store.h"
#include "router/store/redis_client.h"
#include "router/store/redis_schema.h"
#include "router/store/redis_store.h"
#include "router/store/store.h"
#include "router/telemetry/metrics.h"
#include "tests/support/redis_server.h"

namespace vrouter::store {
namespace {

using namespace std::chrono_literals;

// The app installs its logger before any thread starts (router/app/main.cc); so do these tests.
// spdlog makes its registry on first use, and two store threads logging first at once race on it
// (TSan saw it when a test's first log lines came from two stores together).
class LoggingEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(log::Init("info")); }
};
[[maybe_unused]] const ::testing::Environment* const kLogging =
    ::testing::AddGlobalTestEnvironment(new LoggingEnvironment);

using assign::Assignment;
using assign::AssignmentChange;
using assign::PutResult;
using Clock = std::chrono::steady_clock;
using Kind = AssignmentChange::Kind;
using vrouter::testing::InlineCommand;
using vrouter::testing::RedisServer;

constexpr auto kWait = 5s;  // the bound on every wait

// ------------------------------------------------------------------ waiting

// Polls `pred` every 10 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Starts an asynchronous call with a completion and waits (bounded) for that completion. The
// promise is shared, so a completion arriving after the wait gave up lands harmlessly; a second
// completion throws std::future_error on the store's thread (the contract says exactly once).
template <typename R>
std::optional<R> Await(const std::function<void(std::function<void(R)>)>& start) {
  auto promise = std::make_shared<std::promise<R>>();
  auto future = promise->get_future();
  start([promise](R r) { promise->set_value(std::move(r)); });
  if (future.wait_for(kWait) != std::future_status::ready) return std::nullopt;
  return future.get();
}

template <typename T>
StoreResult<T> Completed(std::optional<StoreResult<T>> r, const char* what) {
  if (r) return std::move(*r);
  ADD_FAILURE() << what << ": the completion never came";
  return StoreError::kTimeout;
}

StoreResult<PutResult> PutR(AssignmentStore& s, Assignment desired, std::uint64_t expected,
                            std::uint64_t min_epoch = 0) {
  return Completed(
      Await<StoreResult<PutResult>>([&](std::function<void(StoreResult<PutResult>)> done) {
        s.Put(std::move(desired), expected, min_epoch, std::move(done));
      }),
      "Put");
}

StoreResult<std::optional<Assignment>> AttachR(AssignmentStore& s, const std::string& user,
                                               const std::string& space, std::uint64_t session) {
  using R = StoreResult<std::optional<Assignment>>;
  return Completed(Await<R>([&](std::function<void(R)> done) {
                     s.Attach(user, space, session, std::move(done));
                   }),
                   "Attach");
}

StoreResult<bool> RemoveR(AssignmentStore& s, const std::string& user, std::uint64_t session) {
  return Completed(Await<StoreResult<bool>>([&](std::function<void(StoreResult<bool>)> done) {
                     s.Remove(user, session, std::move(done));
                   }),
                   "Remove");
}

StoreResult<Assignments> LookupR(const AssignmentStore& s, std::vector<std::string> users) {
  return Completed(
      Await<StoreResult<Assignments>>([&](std::function<void(StoreResult<Assignments>)> done) {
        s.Lookup(std::move(users), std::move(done));
      }),
      "Lookup");
}

StoreResult<Assignments> LookupInSpaceR(const AssignmentStore& s, std::vector<std::string> users,
                                        std::string space) {
  return Completed(
      Await<StoreResult<Assignments>>([&](std::function<void(StoreResult<Assignments>)> done) {
        s.LookupInSpace(std::move(users), std::move(space), std::move(done));
      }),
      "LookupInSpace");
}

// The value of a result that must have succeeded (a test failure and T{} otherwise).
template <typename T>
T Ok(StoreResult<T> r, const char* what = "store call") {
  if (const auto* e = std::get_if<StoreError>(&r)) {
    ADD_FAILURE() << what << " failed: " << StoreErrorMessage(*e);
    return T{};
  }
  return std::get<T>(std::move(r));
}

PutResult Put(AssignmentStore& s, Assignment desired, std::uint64_t expected,
              std::uint64_t min_epoch = 0) {
  return Ok(PutR(s, std::move(desired), expected, min_epoch), "Put");
}
std::optional<Assignment> Attach(AssignmentStore& s, const std::string& user,
                                 const std::string& space, std::uint64_t session) {
  return Ok(AttachR(s, user, space, session), "Attach");
}
bool Remove(AssignmentStore& s, const std::string& user, std::uint64_t session) {
  return Ok(RemoveR(s, user, session), "Remove");
}
Assignments Lookup(const AssignmentStore& s, std::vector<std::string> users) {
  return Ok(LookupR(s, std::move(users)), "Lookup");
}
std::optional<Assignment> LookupOne(const AssignmentStore& s, const std::string& user) {
  Assignments found = Lookup(s, {user});
  if (found.size() != 1) {
    ADD_FAILURE() << "Lookup of one user answered " << found.size();
    return std::nullopt;
  }
  return found[0];
}

// Whether `s` answers `user` with `epoch` in `space`, now or within the bound. For what another
// replica wrote: RedisStore completes a Put before it points the user at its space, so another
// replica's read can briefly miss it (RedisStoreTest.PutIsVisibleToOtherReplicasOnceDone).
bool SeenBy(const AssignmentStore& s, const std::string& user, std::uint64_t epoch,
            const std::string& space) {
  return WaitUntil([&] {
    const auto found = LookupOne(s, user);
    return found && found->epoch == epoch && found->space == space;
  });
}

// Watches `users` and waits until the store says their later changes reach the listener.
void Watch(AssignmentStore& s, const std::vector<std::string>& users) {
  auto ready = std::make_shared<std::promise<void>>();
  auto future = ready->get_future();
  s.WatchUsers(users, [ready] { ready->set_value(); });
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready) << "WatchUsers never got ready";
}

// What a change listener heard (it runs on the store's thread, or inline for MemoryStore).
class ChangeLog {
 public:
  ChangeListener Listener() {
    return [this](const AssignmentChange& c) {
      {
        std::lock_guard lock(mu_);
        changes_.push_back(c);
      }
      cv_.notify_all();
    };
  }

  // The first change heard (now or within `timeout`) that matches.
  std::optional<AssignmentChange> WaitFor(const std::function<bool(const AssignmentChange&)>& match,
                                          std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(mu_);
    while (true) {
      for (const auto& c : changes_) {
        if (match(c)) return c;
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        for (const auto& c : changes_) {
          if (match(c)) return c;
        }
        return std::nullopt;
      }
    }
  }

  std::vector<AssignmentChange> Of(const std::string& user) const {
    std::lock_guard lock(mu_);
    std::vector<AssignmentChange> out;
    for (const auto& c : changes_) {
      if (c.assignment.user == user) out.push_back(c);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<AssignmentChange> changes_;
};

auto ChangeOf(const std::string& user, Kind kind) {
  return [user, kind](const AssignmentChange& c) {
    return c.kind == kind && c.assignment.user == user;
  };
}

// ------------------------------------------------------------------ harnesses

// One store implementation, set up for a test: `store()` is replica r1; `peer()` another replica
// of the same state (the same store where there is only one).
class Harness {
 public:
  virtual ~Harness() = default;
  virtual bool Start(std::string& error) = 0;
  virtual AssignmentStore& store() = 0;
  virtual AssignmentStore& peer() = 0;
  virtual std::string replica() const = 0;
  virtual std::string peer_replica() const = 0;
  // Several replicas share the state (eventual local copies, watch-only notification).
  virtual bool shared() const = 0;
  virtual std::chrono::milliseconds grace() const = 0;
  // Waits (bounded) until every store can write: Problem() empty.
  virtual bool WaitWritable() = 0;
  // Lets due expiries happen: MemoryStore is told the grace has passed; RedisStore expires on
  // its own (housekeeping), so nothing.
  virtual void ExpireDue() = 0;

  ChangeLog changes, peer_changes;
};

class MemoryHarness final : public Harness {
 public:
  bool Start(std::string&) override {
    store_.SetChangeListener(changes.Listener());
    return true;
  }
  AssignmentStore& store() override { return store_; }
  AssignmentStore& peer() override { return store_; }
  std::string replica() const override { return "r1"; }
  std::string peer_replica() const override { return "r1"; }
  bool shared() const override { return false; }
  std::chrono::milliseconds grace() const override { return kGrace; }
  bool WaitWritable() override { return store_.Problem().empty(); }
  void ExpireDue() override { store_.ExpireDetached(Clock::now() + kGrace + 1ms); }

 private:
  static constexpr std::chrono::milliseconds kGrace{300};
  MemoryStore store_{kGrace};
};

// Sessions of a replica that lost their user to another session (RedisStore's ReplacedHandler).
class Replaced {
 public:
  RedisStore::ReplacedHandler Handler() {
    return [this](const std::string& user, std::uint64_t session) {
      std::lock_guard lock(mu_);
      seen_.emplace_back(user, session);
    };
  }
  bool Has(const std::string& user, std::uint64_t session) const {
    std::lock_guard lock(mu_);
    for (const auto& s : seen_) {
      if (s.first == user && s.second == session) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::uint64_t>> seen_;
};

// The ACL user of README's "Redis" section: exactly the rules in deploy/redis/vrouter.acl-rules.
// The whole contract runs as that user (RedisAcl), so a command vrouter needs and the rules lack
// fails it with NOPERM.
inline constexpr std::string_view kAclUser = "vrouter";
inline constexpr std::string_view kAclPassword = "acl-test-password-0123";
std::string AclUserDirective() {
  std::ifstream in(std::string(VROUTER_SOURCE_DIR) + "/deploy/redis/vrouter.acl-rules");
  std::string rules;
  std::getline(in, rules);
  return std::string(kAclUser) + " on >" + std::string(kAclPassword) + " " + rules;
}

// How the stores reach Redis: as its default user, as the minimal ACL user, over TLS (with a
// client certificate, the server's own test certificate as the CA), or on a Redis Cluster node
// that serves every slot (issue 18: any command or script whose declared keys span two slots
// fails there with CROSSSLOT, so the whole contract proves each stays in one slot).
// kCluster: a real Redis Cluster of three primaries and three replicas (redis-cli --cluster
// create) through RedisClusterClient.
enum class RedisUser { kDefault, kAcl, kTls, kClusterNode, kCluster };

template <RedisUser kUser>
class RedisHarnessFor final : public Harness {
 public:
  static constexpr std::chrono::milliseconds kCommandTimeout{300};
  // Long enough that a loaded machine (CI runs two tests at once) still looks up a detached user
  // within it.
  static constexpr std::chrono::milliseconds kGrace{1000};

  bool Start(std::string& error) override {
    vrouter::testing::RedisServerOptions launch;
    if (kUser == RedisUser::kTls) launch.tls_dir = VROUTER_TEST_CERT_DIR;
    launch.cluster_node = kUser == RedisUser::kClusterNode;
    if (kUser == RedisUser::kAcl) {
      launch.acl_user = AclUserDirective();
      if (launch.acl_user.size() <= kAclUser.size() + kAclPassword.size() + 6) {
        error = "deploy/redis/vrouter.acl-rules is missing or empty";
        return false;
      }
    }
    if (kUser == RedisUser::kClusterNode) {
      // A cluster node takes 2 s to call itself ok after it starts (CLUSTER_WRITABLE_DELAY), so
      // one serves every test of the process, emptied for each.
      static RedisServer shared(launch);
      server_ = &shared;
      if (shared.ok() && InlineCommand(shared.port(), "FLUSHALL") != "+OK\r\n") {
        error = "FLUSHALL on the cluster node failed";
        return false;
      }
    } else if (kUser == RedisUser::kCluster) {
      // Likewise one cluster per process (three primaries with a replica each, as production
      // runs them), every primary emptied for each test.
      static vrouter::testing::ClusterFleet fleet;
      static std::string fleet_error;
      static const bool started = fleet.Start(3, 1, fleet_error);
      if (!started) {
        error = "cluster: " + fleet_error;
        return false;
      }
      const auto ports = fleet.ports();
      for (std::uint16_t port : std::span(ports).first(3)) {  // the primaries; replicas follow
        if (InlineCommand(port, "FLUSHALL") != "+OK\r\n") {
          error = "FLUSHALL on a cluster node failed";
          return false;
        }
      }
      fleet_ = &fleet;
      server_ = fleet.nodes().front().get();
    } else {
      owned_server_ = std::make_unique<RedisServer>(launch);
      server_ = owned_server_.get();
    }
    if (!server_->ok()) {
      error = "redis-server: " + server_->error();
      return false;
    }
    a_ = std::make_unique<RedisStore>(Options("r1"), metrics_, replaced.Handler());
    b_ = std::make_unique<RedisStore>(Options("r2"), metrics_, peer_replaced.Handler());
    a_->SetChangeListener(changes.Listener());
    b_->SetChangeListener(peer_changes.Listener());
    a_->Start();
    b_->Start();
    if (!WaitWritable()) {
      error = "the stores never came up: " + a_->Problem() + " / " + b_->Problem();
      return false;
    }
    return true;
  }
  AssignmentStore& store() override { return *a_; }
  AssignmentStore& peer() override { return *b_; }
  std::string replica() const override { return "r1"; }
  std::string peer_replica() const override { return "r2"; }
  bool shared() const override { return true; }
  std::chrono::milliseconds grace() const override { return kGrace; }
  bool WaitWritable() override {
    return WaitUntil([&] { return a_->Problem().empty() && b_->Problem().empty(); });
  }
  void ExpireDue() override {}

  RedisServer& server() { return *server_; }
  RedisStore& redis_store() { return *a_; }
  RedisStore& peer_redis_store() { return *b_; }
  telemetry::Metrics& metrics() { return metrics_; }
  static constexpr std::string_view kReplicaKey = "test-replica-key-0123456789";

  Replaced replaced, peer_replaced;

 private:
  RedisStoreOptions Options(const std::string& replica) const {
    RedisStoreOptions o;
    o.redis.host = "127.0.0.1";
    o.redis.port = server_->port();
    if (kUser == RedisUser::kTls) {
      const std::string dir = VROUTER_TEST_CERT_DIR;
      o.redis.port = server_->tls_port();
      o.redis.tls = {true, dir + "/cert.pem", dir + "/cert.pem", dir + "/key.pem", ""};
    }
    if (kUser == RedisUser::kCluster) {
      for (std::uint16_t port : fleet_->ports()) o.cluster_seeds.emplace_back("127.0.0.1", port);
    }
    o.redis.connect_timeout = kCommandTimeout;
    o.redis.command_timeout = kCommandTimeout;
    o.redis.backoff_min = 50ms;
    o.redis.backoff_max = 200ms;
    if (kUser == RedisUser::kAcl) {
      o.redis.username = kAclUser;
      o.redis.password = kAclPassword;
    }
    o.replica_id = replica;
    o.resume_grace = kGrace;
    o.lease_ttl = 1000ms;
    o.housekeeping_interval = 100ms;
    o.replica_key = kReplicaKey;
    return o;
  }

  // Declared first: destroyed last, after the stores have stopped.
  std::unique_ptr<RedisServer> owned_server_;
  RedisServer* server_ = nullptr;                    // owned_server_, or the shared cluster node
  vrouter::testing::ClusterFleet* fleet_ = nullptr;  // kCluster
  telemetry::Metrics metrics_{"test", "test"};
  std::unique_ptr<RedisStore> a_, b_;
};

using RedisHarness = RedisHarnessFor<RedisUser::kDefault>;
using RedisAclHarness = RedisHarnessFor<RedisUser::kAcl>;
using RedisTlsHarness = RedisHarnessFor<RedisUser::kTls>;
using RedisClusterNodeHarness = RedisHarnessFor<RedisUser::kClusterNode>;
using RedisClusterHarness = RedisHarnessFor<RedisUser::kCluster>;

// ------------------------------------------------------------------ the contract

template <typename H>
class StoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(h_.Start(error)) << error;
  }

  AssignmentStore& store() { return h_.store(); }
  AssignmentStore& peer() { return h_.peer(); }

  // An assignment written by a live session of this replica.
  Assignment Desired(const std::string& user, const std::string& space, const std::string& server,
                     std::uint64_t session) const {
    return Assignment{user, space, server, 0, h_.replica(), session, Clock::now()};
  }

  // A write from this replica that must succeed (Problem() empty first, for a shared store).
  PutResult Write(const std::string& user, const std::string& space, const std::string& server,
                  std::uint64_t session, std::uint64_t expected = 0, std::uint64_t min_epoch = 0) {
    EXPECT_TRUE(h_.WaitWritable());
    PutResult r = Put(store(), Desired(user, space, server, session), expected, min_epoch);
    EXPECT_TRUE(r.written) << "writing " << user;
    return r;
  }

  H h_;
};

using Implementations =
    ::testing::Types<MemoryHarness, RedisHarness, RedisAclHarness, RedisTlsHarness,
                     RedisClusterNodeHarness, RedisClusterHarness>;
class ImplementationNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    if (std::is_same_v<T, MemoryHarness>) return "Memory";
    if (std::is_same_v<T, RedisHarness>) return "Redis";
    if (std::is_same_v<T, RedisAclHarness>) return "RedisAcl";
    if (std::is_same_v<T, RedisTlsHarness>) return "RedisTls";
    return std::is_same_v<T, RedisClusterNodeHarness> ? "RedisClusterNode" : "RedisCluster";
  }
};
TYPED_TEST_SUITE(StoreContractTest, Implementations, ImplementationNames);

TYPED_TEST(StoreContractTest, PutWithExpectedZeroCreates) {
  ASSERT_TRUE(this->h_.WaitWritable());
  const PutResult r = Put(this->store(), this->Desired("alice", "room", "vs-1", 11), 0);
  ASSERT_TRUE(r.written);
  EXPECT_GT(r.current.epoch, 0u);
  EXPECT_EQ(r.current.user, "alice");
  EXPECT_EQ(r.current.space, "room");
  EXPECT_EQ(r.current.server, "vs-1");
  EXPECT_EQ(r.current.replica, this->h_.replica());
  EXPECT_EQ(r.current.session, 11u);
  ASSERT_TRUE(r.change.has_value());
  EXPECT_EQ(r.change->kind, Kind::kAssigned);
  EXPECT_EQ(r.change->assignment.epoch, r.current.epoch);
  EXPECT_EQ(r.change->assignment.server, "vs-1");
  EXPECT_EQ(r.change->from_server, std::nullopt);

  const auto found = LookupOne(this->store(), "alice");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->epoch, r.current.epoch);
  EXPECT_EQ(found->server, "vs-1");
  EXPECT_EQ(found->space, "room");
}

TYPED_TEST(StoreContractTest, StalePutIsRefusedAndReturnsTheCurrent) {
  const PutResult first = this->Write("alice", "room", "vs-1", 11);

  const PutResult again = Put(this->store(), this->Desired("alice", "room", "vs-2", 12), 0);
  EXPECT_FALSE(again.written);
  EXPECT_FALSE(again.change.has_value());
  EXPECT_EQ(again.current.epoch, first.current.epoch);
  EXPECT_EQ(again.current.server, "vs-1");
  EXPECT_EQ(again.current.user, "alice");

  const PutResult wrong =
      Put(this->store(), this->Desired("alice", "room", "vs-2", 12), first.current.epoch + 7);
  EXPECT_FALSE(wrong.written);
  EXPECT_EQ(wrong.current.epoch, first.current.epoch);
  EXPECT_EQ(wrong.current.server, "vs-1");

  const auto found = LookupOne(this->store(), "alice");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->epoch, first.current.epoch);
  EXPECT_EQ(found->server, "vs-1");
}

TYPED_TEST(StoreContractTest, PutWithTheCurrentEpochRewritesWithALargerEpoch) {
  const PutResult first = this->Write("alice", "room", "vs-1", 11);
  const PutResult second = this->Write("alice", "room", "vs-2", 11, first.current.epoch);
  EXPECT_GT(second.current.epoch, first.current.epoch);
  EXPECT_EQ(second.current.server, "vs-2");
  ASSERT_TRUE(second.change.has_value());
  EXPECT_EQ(second.change->kind, Kind::kAssigned);
  EXPECT_EQ(second.change->from_server, std::optional<std::string>("vs-1"));

  // The old epoch is stale now.
  const PutResult stale =
      Put(this->store(), this->Desired("alice", "room", "vs-3", 11), first.current.epoch);
  EXPECT_FALSE(stale.written);
  EXPECT_EQ(stale.current.epoch, second.current.epoch);

  const auto found = LookupOne(this->store(), "alice");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->epoch, second.current.epoch);
  EXPECT_EQ(found->server, "vs-2");
}

TYPED_TEST(StoreContractTest, MinEpochRaisesTheEpochAboveIt) {
  // Below 2^52 (what the router honours from a resuming client), above any clock-based epoch.
  constexpr std::uint64_t kMin = 4'000'000'000'000'000;
  const PutResult r = this->Write("alice", "room", "vs-1", 11, 0, kMin);
  EXPECT_GT(r.current.epoch, kMin);
  // And later writes stay above it.
  const PutResult next = this->Write("alice", "room", "vs-2", 11, r.current.epoch);
  EXPECT_GT(next.current.epoch, r.current.epoch);
  // A min_epoch below the current one changes nothing.
  const PutResult again = this->Write("alice", "room", "vs-1", 11, next.current.epoch, 5);
  EXPECT_GT(again.current.epoch, next.current.epoch);
}

TYPED_TEST(StoreContractTest, AttachReturnsTheRecordAndMakesTheSessionTheOwner) {
  const PutResult first = this->Write("alice", "room", "vs-1", 11);
  this->store().Detach("alice", 11, Clock::now());

  const auto attached = Attach(this->store(), "alice", "room", 12);
  ASSERT_TRUE(attached.has_value());
  EXPECT_EQ(attached->user, "alice");
  EXPECT_EQ(attached->space, "room");
  EXPECT_EQ(attached->server, "vs-1");
  EXPECT_EQ(attached->epoch, first.current.epoch);  // an owner change is not a new assignment
  EXPECT_EQ(attached->session, 12u);

  // Session 12 owns it now, session 11 no longer does.
  EXPECT_FALSE(Remove(this->store(), "alice", 11));
  EXPECT_TRUE(LookupOne(this->store(), "alice").has_value());
  EXPECT_TRUE(Remove(this->store(), "alice", 12));
  EXPECT_FALSE(LookupOne(this->store(), "alice").has_value());
}

TYPED_TEST(StoreContractTest, AttachTakesOverALiveSession) {
  const PutResult first = this->Write("alice", "room", "vs-1", 11);
  const auto attached = Attach(this->store(), "alice", "room", 12);
  ASSERT_TRUE(attached.has_value());
  EXPECT_EQ(attached->epoch, first.current.epoch);
  EXPECT_EQ(attached->session, 12u);
  EXPECT_FALSE(Remove(this->store(), "alice", 11));
  EXPECT_TRUE(Remove(this->store(), "alice", 12));
}

TYPED_TEST(StoreContractTest, AttachOfAnUnknownUserReturnsNullopt) {
  ASSERT_TRUE(this->h_.WaitWritable());
  const auto attached = Attach(this->store(), "nobody", "room", 12);
  EXPECT_FALSE(attached.has_value());
  // A user known elsewhere does not make another one known.
  this->Write("alice", "room", "vs-1", 11);
  EXPECT_FALSE(Attach(this->store(), "nobody", "room", 12).has_value());
}

TYPED_TEST(StoreContractTest, RemoveOnlyByTheOwningSession) {
  this->Write("alice", "room", "vs-1", 11);
  EXPECT_FALSE(Remove(this->store(), "alice", 99));
  EXPECT_TRUE(LookupOne(this->store(), "alice").has_value());

  EXPECT_TRUE(Remove(this->store(), "alice", 11));
  EXPECT_FALSE(LookupOne(this->store(), "alice").has_value());
  EXPECT_FALSE(Remove(this->store(), "alice", 11));  // nothing left to remove
  // The user can be assigned afresh (expected 0 again).
  this->Write("alice", "room", "vs-2", 13);
}

TYPED_TEST(StoreContractTest, LookupAnswersInOrder) {
  this->store().EnterSpace("here");
  const PutResult a = this->Write("alice", "here", "vs-1", 11);
  const PutResult c = this->Write("carol", "elsewhere", "vs-2", 12);  // a space not entered

  EXPECT_TRUE(Lookup(this->store(), {}).empty());
  const Assignments found = Lookup(this->store(), {"alice", "nobody", "carol", "alice"});
  ASSERT_EQ(found.size(), 4u);
  ASSERT_TRUE(found[0].has_value());
  EXPECT_EQ(found[0]->user, "alice");
  EXPECT_EQ(found[0]->epoch, a.current.epoch);
  EXPECT_EQ(found[0]->server, "vs-1");
  EXPECT_FALSE(found[1].has_value());
  ASSERT_TRUE(found[2].has_value());
  EXPECT_EQ(found[2]->user, "carol");
  EXPECT_EQ(found[2]->space, "elsewhere");
  EXPECT_EQ(found[2]->epoch, c.current.epoch);
  EXPECT_EQ(found[2]->server, "vs-2");
  ASSERT_TRUE(found[3].has_value());
  EXPECT_EQ(found[3]->epoch, a.current.epoch);

  if (this->h_.shared()) {
    // carol is not held here: that answer came from Redis. The peer holds nothing at all.
    EXPECT_FALSE(this->store().GetLocal("carol").has_value());
    ASSERT_TRUE(SeenBy(this->peer(), "carol", c.current.epoch, "elsewhere"));
    ASSERT_TRUE(SeenBy(this->peer(), "alice", a.current.epoch, "here"));
    const Assignments remote = Lookup(this->peer(), {"carol", "nobody", "alice"});
    ASSERT_EQ(remote.size(), 3u);
    ASSERT_TRUE(remote[0].has_value());
    EXPECT_EQ(remote[0]->epoch, c.current.epoch);
    EXPECT_FALSE(remote[1].has_value());
    ASSERT_TRUE(remote[2].has_value());
    EXPECT_EQ(remote[2]->epoch, a.current.epoch);
    EXPECT_EQ(remote[2]->space, "here");
  }
}

TYPED_TEST(StoreContractTest, ListenerHearsAWatchedUsersAssignmentsAndRemoval) {
  Watch(this->store(), {"wendy"});
  const PutResult first = this->Write("wendy", "room", "vs-1", 11);
  auto heard = this->h_.changes.WaitFor([&](const AssignmentChange& c) {
    return c.kind == Kind::kAssigned && c.assignment.user == "wendy" &&
           c.assignment.epoch == first.current.epoch;
  });
  ASSERT_TRUE(heard.has_value()) << "the first assignment was not heard";
  EXPECT_EQ(heard->assignment.server, "vs-1");
  EXPECT_EQ(heard->assignment.space, "room");
  EXPECT_EQ(heard->from_server, std::nullopt);

  const PutResult second = this->Write("wendy", "room", "vs-2", 11, first.current.epoch);
  heard = this->h_.changes.WaitFor([&](const AssignmentChange& c) {
    return c.kind == Kind::kAssigned && c.assignment.user == "wendy" &&
           c.assignment.epoch == second.current.epoch;
  });
  ASSERT_TRUE(heard.has_value()) << "the reassignment was not heard";
  EXPECT_EQ(heard->assignment.server, "vs-2");
  EXPECT_EQ(heard->from_server, std::optional<std::string>("vs-1"));

  this->Write("ursula", "room", "vs-1", 21);  // not watched
  ASSERT_TRUE(Remove(this->store(), "wendy", 11));
  heard = this->h_.changes.WaitFor(ChangeOf("wendy", Kind::kRemoved));
  ASSERT_TRUE(heard.has_value()) << "the removal was not heard";
  EXPECT_EQ(heard->assignment.epoch, second.current.epoch);  // the assignment that ended
  EXPECT_EQ(heard->assignment.server, "vs-2");
  EXPECT_EQ(this->h_.changes.Of("wendy").size(), 3u);

  if (this->h_.shared()) {
    // Only watched users reach the listener (ursula's change was published before wendy's
    // removal, on the same connection, so it would have arrived by now).
    EXPECT_TRUE(this->h_.changes.Of("ursula").empty());
  }
}

// Lookups seen from a space (issue 16): a user elsewhere is answered like nobody, and the peer
// (which holds neither space) reads only the asked space's records.
TYPED_TEST(StoreContractTest, LookupInSpaceSeesOnlyThatSpace) {
  this->Write("alice", "room-a", "vs-1", 11);
  for (AssignmentStore* s : {&this->store(), &this->peer()}) {
    const auto other = Ok(LookupInSpaceR(*s, {"alice", "nobody"}, "room-b"), "LookupInSpace");
    ASSERT_EQ(other.size(), 2u);
    EXPECT_FALSE(other[0].has_value()) << "a user of another space was found";
    EXPECT_FALSE(other[1].has_value());
    const auto own = Ok(LookupInSpaceR(*s, {"alice"}, "room-a"), "LookupInSpace");
    ASSERT_EQ(own.size(), 1u);
    ASSERT_TRUE(own[0].has_value()) << "a user of the space was not found";
    EXPECT_EQ(own[0]->server, "vs-1");
  }
}

// Watchers see their own space (issue 16): a move to another space must say where from, or the
// old space's watchers would never hear the user leave.
TYPED_TEST(StoreContractTest, ListenerHearsWhichSpaceAWatchedUserLeft) {
  Watch(this->store(), {"vera"});
  this->store().EnterSpace("old");
  this->store().EnterSpace("new");
  const PutResult first = this->Write("vera", "old", "vs-1", 11);
  ASSERT_TRUE(this->h_.changes.WaitFor([&](const AssignmentChange& c) {
    return c.assignment.user == "vera" && c.assignment.epoch == first.current.epoch;
  }));
  const PutResult moved = this->Write("vera", "new", "vs-1", 11, first.current.epoch);
  const auto heard = this->h_.changes.WaitFor([&](const AssignmentChange& c) {
    return c.kind == Kind::kAssigned && c.assignment.user == "vera" &&
           c.assignment.epoch == moved.current.epoch;
  });
  ASSERT_TRUE(heard.has_value()) << "the move was not heard";
  EXPECT_EQ(heard->assignment.space, "new");
  EXPECT_EQ(heard->from_space, std::optional<std::string>("old"));
  EXPECT_EQ(heard->from_server, std::optional<std::string>("vs-1"));
}

TYPED_TEST(StoreContractTest, PeerWatcherHearsAnotherReplicasWrites) {
  Watch(this->peer(), {"wendy"});
  const PutResult first = this->Write("wendy", "room", "vs-1", 11);
  ChangeLog& log = this->h_.shared() ? this->h_.peer_changes : this->h_.changes;
  auto heard = log.WaitFor(ChangeOf("wendy", Kind::kAssigned));
  ASSERT_TRUE(heard.has_value());
  EXPECT_EQ(heard->assignment.epoch, first.current.epoch);
  ASSERT_TRUE(Remove(this->store(), "wendy", 11));
  heard = log.WaitFor(ChangeOf("wendy", Kind::kRemoved));
  ASSERT_TRUE(heard.has_value());
  EXPECT_EQ(heard->assignment.epoch, first.current.epoch);
}

TYPED_TEST(StoreContractTest, DetachedAssignmentExpiresAfterTheGrace) {
  this->store().EnterSpace("room");  // the session is in the space, as in the router
  Watch(this->store(), {"dora"});
  const PutResult r = this->Write("dora", "room", "vs-1", 11);
  const auto detached_at = Clock::now();
  this->store().Detach("dora", 11, detached_at);

  // Within the grace it is still there, waiting for a resume.
  EXPECT_EQ(this->store().ExpireDetached(detached_at), 0u);
  const auto waiting = LookupOne(this->store(), "dora");
  ASSERT_TRUE(waiting.has_value());
  EXPECT_EQ(waiting->epoch, r.current.epoch);

  std::optional<AssignmentChange> removed;
  ASSERT_TRUE(WaitUntil([&] {
    this->h_.ExpireDue();
    removed = this->h_.changes.WaitFor(ChangeOf("dora", Kind::kRemoved), 0ms);
    return removed.has_value();
  })) << "the detached assignment never expired";
  EXPECT_EQ(removed->assignment.epoch, r.current.epoch);
  EXPECT_EQ(removed->assignment.server, "vs-1");
  if (this->h_.shared()) {
    EXPECT_GE(Clock::now() - detached_at, this->h_.grace() - 50ms) << "expired before the grace";
  }
  EXPECT_FALSE(LookupOne(this->store(), "dora").has_value());
  EXPECT_TRUE(WaitUntil([&] { return !LookupOne(this->peer(), "dora").has_value(); }));
  // A new session can be placed from scratch.
  this->Write("dora", "room", "vs-2", 12);
}

TYPED_TEST(StoreContractTest, AttachedAssignmentDoesNotExpire) {
  this->store().EnterSpace("room");
  const PutResult r = this->Write("alice", "room", "vs-1", 11);
  std::this_thread::sleep_for(this->h_.grace() + 200ms);
  this->store().ExpireDetached(Clock::now() + this->h_.grace() * 2);
  const auto found = LookupOne(this->store(), "alice");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->epoch, r.current.epoch);
}

TYPED_TEST(StoreContractTest, ConcurrentCreatesFromTwoReplicasWriteExactlyOne) {
  ASSERT_TRUE(this->h_.WaitWritable());
  for (int round = 0; round < 10; ++round) {
    const std::string user = "racer-" + std::to_string(round);
    SCOPED_TRACE(user);
    std::optional<StoreResult<PutResult>> mine, theirs;
    std::latch go(2);
    std::thread a([&] {
      go.arrive_and_wait();
      mine = PutR(this->store(), this->Desired(user, "room", "vs-a", 1), 0);
    });
    std::thread b([&] {
      go.arrive_and_wait();
      theirs =
          PutR(this->peer(),
               Assignment{user, "room", "vs-b", 0, this->h_.peer_replica(), 2, Clock::now()}, 0);
    });
    a.join();
    b.join();
    const PutResult r1 = Ok(std::move(*mine), "Put from r1");
    const PutResult r2 = Ok(std::move(*theirs), "Put from r2");
    ASSERT_EQ(int(r1.written) + int(r2.written), 1) << "exactly one create must win";
    const PutResult& winner = r1.written ? r1 : r2;
    const PutResult& loser = r1.written ? r2 : r1;
    EXPECT_FALSE(loser.change.has_value());
    EXPECT_EQ(loser.current.epoch, winner.current.epoch);
    EXPECT_EQ(loser.current.server, winner.current.server);
    for (AssignmentStore* s : {&this->store(), &this->peer()}) {
      EXPECT_TRUE(SeenBy(*s, user, winner.current.epoch, "room"));
      const auto found = LookupOne(*s, user);
      ASSERT_TRUE(found.has_value());
      EXPECT_EQ(found->server, winner.current.server);
    }
  }
}

TYPED_TEST(StoreContractTest, UserMovingToAnotherSpaceEndsUpOnlyThere) {
  this->store().EnterSpace("old");
  this->store().EnterSpace("new");
  const PutResult first = this->Write("mover", "old", "vs-1", 11);
  // Both spaces loaded before the move (a move racing the new space's first load is
  // RedisStoreTest.MoveWhileTheNewSpaceLoads). "new" has another user, of the peer.
  ASSERT_TRUE(Put(this->peer(),
                  Assignment{"other", "new", "vs-9", 0, this->h_.peer_replica(), 99, Clock::now()},
                  0)
                  .written);
  ASSERT_TRUE(WaitUntil([&] {
    return this->store().SpaceLoad("old").contains("vs-1") &&
           this->store().SpaceLoad("new").contains("vs-9");
  }));

  const PutResult moved = this->Write("mover", "new", "vs-1", 11, first.current.epoch);
  EXPECT_EQ(moved.current.space, "new");
  EXPECT_GT(moved.current.epoch, first.current.epoch);

  const auto found = LookupOne(this->store(), "mover");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->space, "new");
  EXPECT_EQ(found->epoch, moved.current.epoch);
  // RedisStore: the peer holds neither space, so it reads from Redis.
  EXPECT_TRUE(SeenBy(this->peer(), "mover", moved.current.epoch, "new"));

  EXPECT_TRUE(WaitUntil([&] {
    const auto in_old = this->store().SpaceLoad("old");
    const auto in_new = this->store().SpaceLoad("new");
    return in_old.empty() && in_new.size() == 2 && in_new.contains("vs-1") &&
           in_new.at("vs-1") == 1;
  })) << "the user is not (only) in the new space";

  // The old epoch no longer writes anywhere.
  const PutResult stale =
      Put(this->store(), this->Desired("mover", "old", "vs-2", 11), first.current.epoch);
  EXPECT_FALSE(stale.written);
  // The owning session still owns it in the new space.
  EXPECT_TRUE(Remove(this->store(), "mover", 11));
  EXPECT_FALSE(LookupOne(this->peer(), "mover").has_value());
}

TYPED_TEST(StoreContractTest, UserMovingToAnotherSpaceThroughAnotherReplica) {
  const PutResult first = this->Write("mover", "old", "vs-1", 11);
  // The user's new session is on the peer, in another space: it attaches, then moves the record.
  const auto attached = Attach(this->peer(), "mover", "new", 12);
  ASSERT_TRUE(attached.has_value());
  EXPECT_EQ(attached->space, "old");
  EXPECT_EQ(attached->epoch, first.current.epoch);

  Assignment desired = *attached;
  desired.space = "new";
  desired.replica = this->h_.peer_replica();
  desired.session = 12;
  const PutResult moved = Ok(PutR(this->peer(), desired, attached->epoch), "move");
  ASSERT_TRUE(moved.written);
  EXPECT_EQ(moved.current.space, "new");
  EXPECT_GT(moved.current.epoch, first.current.epoch);

  EXPECT_TRUE(SeenBy(this->peer(), "mover", moved.current.epoch, "new"));
  EXPECT_TRUE(SeenBy(this->store(), "mover", moved.current.epoch, "new"));
  EXPECT_TRUE(Remove(this->peer(), "mover", 12));
}

// Another replica's session took the user over and rewrote it; this replica, still holding the
// old epoch, tries to move the user to another space: refused, and told the winner.
void StaleMoveIsRefused(Harness& h, bool old_space_held) {
  if (old_space_held) h.store().EnterSpace("old");  // this replica's session is there
  ASSERT_TRUE(h.WaitWritable());
  const PutResult first =
      Put(h.store(), Assignment{"mover", "old", "vs-1", 0, h.replica(), 11, Clock::now()}, 0);
  ASSERT_TRUE(first.written);
  ASSERT_TRUE(Attach(h.peer(), "mover", "old", 21).has_value());
  const PutResult rewritten =
      Put(h.peer(), Assignment{"mover", "old", "vs-2", 0, h.peer_replica(), 21, Clock::now()},
          first.current.epoch);
  ASSERT_TRUE(rewritten.written);
  if (old_space_held) {
    ASSERT_TRUE(WaitUntil([&] {
      const auto local = h.store().GetLocal("mover");
      return local && local->epoch == rewritten.current.epoch;
    }));
  }

  const PutResult stale =
      Put(h.store(), Assignment{"mover", "new", "vs-1", 0, h.replica(), 11, Clock::now()},
          first.current.epoch);
  EXPECT_FALSE(stale.written);
  EXPECT_FALSE(stale.change.has_value());
  EXPECT_EQ(stale.current.epoch, rewritten.current.epoch) << "a refused Put returns the winner";
  EXPECT_EQ(stale.current.user, "mover");
  EXPECT_EQ(stale.current.space, "old");
  EXPECT_EQ(stale.current.server, "vs-2");
  EXPECT_TRUE(SeenBy(h.store(), "mover", rewritten.current.epoch, "old"));
  EXPECT_TRUE(SeenBy(h.peer(), "mover", rewritten.current.epoch, "old"));
}

TYPED_TEST(StoreContractTest, StaleMoveToAnotherSpaceIsRefusedAndReturnsTheCurrent) {
  StaleMoveIsRefused(this->h_, /*old_space_held=*/false);
}

TYPED_TEST(StoreContractTest, StaleMoveOutOfAHeldSpaceIsRefusedAndReturnsTheCurrent) {
  StaleMoveIsRefused(this->h_, /*old_space_held=*/true);
}

// After a refused move, nothing this replica does later writes the refused assignment: here it
// enters the space the user was to move to.
TYPED_TEST(StoreContractTest, RefusedMoveIsNotWrittenLater) {
  Harness& h = this->h_;
  ASSERT_TRUE(h.WaitWritable());
  const PutResult first =
      Put(h.store(), Assignment{"mover", "old", "vs-1", 0, h.replica(), 11, Clock::now()}, 0);
  ASSERT_TRUE(first.written);
  ASSERT_TRUE(Attach(h.peer(), "mover", "old", 21).has_value());
  const PutResult rewritten =
      Put(h.peer(), Assignment{"mover", "old", "vs-2", 0, h.peer_replica(), 21, Clock::now()},
          first.current.epoch);
  ASSERT_TRUE(rewritten.written);
  EXPECT_FALSE(Put(h.store(), Assignment{"mover", "new", "vs-1", 0, h.replica(), 11, Clock::now()},
                   first.current.epoch)
                   .written);

  // This replica's next session is in "new" (a marker user there shows the space loaded).
  ASSERT_TRUE(
      Put(h.peer(), Assignment{"marker", "new", "vs-9", 0, h.peer_replica(), 98, Clock::now()}, 0)
          .written);
  h.store().EnterSpace("new");
  ASSERT_TRUE(WaitUntil([&] { return h.store().GetLocal("marker").has_value(); }));
  std::this_thread::sleep_for(200ms);  // whatever the load set off has landed

  for (AssignmentStore* s : {&h.store(), &h.peer()}) {
    const auto found = LookupOne(*s, "mover");
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->space, "old") << "the refused move was written after all";
    EXPECT_EQ(found->epoch, rewritten.current.epoch);
    EXPECT_EQ(found->server, "vs-2");
    EXPECT_EQ(found->session, 21u);
  }
  EXPECT_FALSE(h.store().SpaceLoad("new").contains("vs-1"));
}

TYPED_TEST(StoreContractTest, LoadByServerCountsUsersOfLiveSessions) {
  this->Write("u1", "room", "vs-a", 1);
  this->Write("u2", "other", "vs-a", 2);
  this->Write("u3", "room", "vs-b", 3);
  auto expect = [](const absl::flat_hash_map<std::string, std::int64_t>& load, std::int64_t a,
                   std::int64_t b) {
    auto at = [&](const std::string& s) -> std::int64_t {
      auto it = load.find(s);
      return it == load.end() ? 0 : it->second;
    };
    return at("vs-a") == a && at("vs-b") == b;
  };
  EXPECT_TRUE(WaitUntil([&] { return expect(this->store().LoadByServer(), 2, 1); }))
      << "this replica never counted its users";
  EXPECT_TRUE(WaitUntil([&] { return expect(this->peer().LoadByServer(), 2, 1); }))
      << "the fleet-wide load never reached the other replica";

  ASSERT_TRUE(Remove(this->store(), "u3", 3));
  EXPECT_TRUE(WaitUntil([&] {
    const auto load = this->store().LoadByServer();
    return expect(load, 2, 0) && !load.contains("vs-b");
  })) << "a removed user is still counted";
}

// The fleet controller keeps its model's counts with TakeLoadChanges alone: applying every change
// it hands out must give the same counts as LoadByServer, removals (count 0) included.
// Every shared store's admission budget, on every kind of Redis (its script takes two keys, which
// must share a slot: RedisClusterNode fails it with CROSSSLOT otherwise); the memory store has
// none and admits.
TYPED_TEST(StoreContractTest, AdmissionBudgetAnswers) {
  ASSERT_TRUE(this->h_.WaitWritable());
  auto admit = [&](std::uint32_t cap, std::uint32_t room) {
    return Await<StoreResult<Admission>>([&](std::function<void(StoreResult<Admission>)> done) {
      this->store().Admit("vs-9", cap, room, 1000ms, std::move(done));
    });
  };
  const auto first = admit(1, 10);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(std::holds_alternative<Admission>(*first))
      << StoreErrorMessage(std::get<StoreError>(*first));
  EXPECT_TRUE(std::get<Admission>(*first).admitted);
  const auto second = admit(1, 10);
  ASSERT_TRUE(second.has_value() && std::holds_alternative<Admission>(*second));
  EXPECT_EQ(std::get<Admission>(*second).admitted, !this->h_.shared());  // the cap, if shared
}

TYPED_TEST(StoreContractTest, TakenLoadChangesAddUpToTheLoad) {
  absl::flat_hash_map<std::string, std::int64_t> mirror, taken;
  auto mirrored = [&](std::int64_t a, std::int64_t b) {
    this->store().TakeLoadChanges(taken);
    for (const auto& [server, users] : taken) {
      if (users == 0) {
        mirror.erase(server);
      } else {
        mirror[server] = users;
      }
    }
    const absl::flat_hash_map<std::string, std::int64_t> want =
        b == 0 ? absl::flat_hash_map<std::string, std::int64_t>{{"vs-a", a}}
               : absl::flat_hash_map<std::string, std::int64_t>{{"vs-a", a}, {"vs-b", b}};
    return mirror == want;
  };
  this->Write("u1", "room", "vs-a", 1);
  this->Write("u2", "other", "vs-a", 2);
  this->Write("u3", "room", "vs-b", 3);
  EXPECT_TRUE(WaitUntil([&] { return mirrored(2, 1); })) << "the changes never added up";
  ASSERT_TRUE(Remove(this->store(), "u3", 3));
  EXPECT_TRUE(WaitUntil([&] { return mirrored(2, 0); })) << "a server left empty was not reported";
  this->store().TakeLoadChanges(taken);
  EXPECT_TRUE(taken.empty()) << "changes reported twice";
}

// ------------------------------------------------------------------ RedisStore only

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(h_.Start(error)) << error;
  }

  RedisStore& store() { return h_.redis_store(); }

  RedisHarness h_;
};

TEST_F(RedisStoreTest, StalledRedisFailsWritesKeepsLocalReadsAndRecovers) {
  store().EnterSpace("room");
  const PutResult held =
      Put(store(), Assignment{"alice", "room", "vs-1", 0, "r1", 11, Clock::now()}, 0);
  ASSERT_TRUE(held.written);
  ASSERT_TRUE(WaitUntil([&] { return store().GetLocal("alice").has_value(); }))
      << "the entered space never loaded";

  ASSERT_TRUE(h_.server().Pause());
  const auto t0 = Clock::now();
  const auto failed =
      PutR(store(), Assignment{"bob", "room", "vs-1", 0, "r1", 12, Clock::now()}, 0);
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(std::holds_alternative<StoreError>(failed)) << "a write to a stalled Redis landed";
  EXPECT_LE(took, 2 * RedisHarness::kCommandTimeout + 100ms)
      << "took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_TRUE(WaitUntil([&] { return !store().Problem().empty(); }, 2s))
      << "Problem() stayed empty with Redis stalled";

  // While down: writes fail at once, lookups of held spaces answer from memory.
  const auto t1 = Clock::now();
  const auto refused =
      PutR(store(), Assignment{"carol", "room", "vs-1", 0, "r1", 13, Clock::now()}, 0);
  EXPECT_TRUE(std::holds_alternative<StoreError>(refused));
  EXPECT_LT(Clock::now() - t1, RedisHarness::kCommandTimeout);
  const auto local = LookupR(store(), {"alice"});
  ASSERT_TRUE(std::holds_alternative<Assignments>(local)) << "a held space's lookup failed";
  const auto& found = std::get<Assignments>(local);
  ASSERT_EQ(found.size(), 1u);
  ASSERT_TRUE(found[0].has_value());
  EXPECT_EQ(found[0]->epoch, held.current.epoch);
  EXPECT_TRUE(store().GetLocal("alice").has_value());

  ASSERT_TRUE(h_.server().Resume());
  EXPECT_TRUE(WaitUntil([&] { return store().Problem().empty(); }))
      << "still: " << store().Problem();
  const PutResult after =
      Put(store(), Assignment{"dave", "room", "vs-1", 0, "r1", 14, Clock::now()}, 0);
  EXPECT_TRUE(after.written);
  const auto alice = LookupOne(store(), "alice");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->epoch, held.current.epoch);
}

TEST_F(RedisStoreTest, AttachOnAnotherReplicaClosesTheSessionHere) {
  store().EnterSpace("room");
  const PutResult r =
      Put(store(), Assignment{"alice", "room", "vs-1", 0, "r1", 11, Clock::now()}, 0);
  ASSERT_TRUE(r.written);
  ASSERT_TRUE(WaitUntil([&] { return store().GetLocal("alice").has_value(); }));

  const auto attached = Attach(h_.peer(), "alice", "room", 21);
  ASSERT_TRUE(attached.has_value());
  EXPECT_EQ(attached->replica, "r2");
  EXPECT_EQ(attached->session, 21u);
  EXPECT_TRUE(WaitUntil([&] { return h_.replaced.Has("alice", 11); }))
      << "r1's session was not told it lost its user";
  EXPECT_FALSE(Remove(store(), "alice", 11));
  EXPECT_TRUE(Remove(h_.peer(), "alice", 21));
}

// Hellos are counted across replicas (issue 16: a reconnect storm spread over replicas meets
// one budget), in windows that start with their first hello.
TEST_F(RedisStoreTest, HelloCountsAreSharedByReplicasAndStartOverAfterTheirWindow) {
  auto count = [](AssignmentStore& s, const std::string& user, const std::string& address) {
    std::promise<StoreResult<HelloCounts>> done;
    s.CountHello(user, address, 300ms,
                 [&done](StoreResult<HelloCounts> r) { done.set_value(std::move(r)); });
    auto r = done.get_future().get();
    EXPECT_TRUE(std::holds_alternative<HelloCounts>(r));
    return std::holds_alternative<HelloCounts>(r) ? std::get<HelloCounts>(r) : HelloCounts{};
  };
  EXPECT_EQ(count(store(), "alice", "10.0.0.1").user, 1);
  const HelloCounts second = count(h_.peer(), "alice", "10.0.0.1");  // another replica
  EXPECT_EQ(second.user, 2);
  EXPECT_EQ(second.address, 2);
  const HelloCounts bob = count(h_.peer(), "bob", "10.0.0.1");
  EXPECT_EQ(bob.user, 1);
  EXPECT_EQ(bob.address, 3);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(count(store(), "alice", "10.0.0.1").user, 1);
  // Redis down: an error, so the caller falls back on its own budgets.
  ASSERT_TRUE(h_.server().Pause());
  std::promise<StoreResult<HelloCounts>> down;
  store().CountHello("alice", "10.0.0.1", 300ms,
                     [&down](StoreResult<HelloCounts> r) { down.set_value(std::move(r)); });
  EXPECT_TRUE(std::holds_alternative<StoreError>(down.get_future().get()));
  ASSERT_TRUE(h_.server().Resume());
}

// Two sessions of this replica watch one user at once. The second watch's `ready` must not run
// before the user's subscription is confirmed: a change made right after it must be heard.
TEST_F(RedisStoreTest, SecondWatchOfAUserIsReadyOnlyOnceTheFirstOneIs) {
  struct State {
    std::promise<void> busy, release, first, second;
    std::optional<PutResult> written;
  };
  auto state = std::make_shared<State>();
  auto busy = state->busy.get_future();
  auto first = state->first.get_future();
  auto second = state->second.get_future();
  // Both watches reach the store's thread while it is busy (here: in another watch's ready), so
  // they run back to back, as when two sessions' watch requests arrive together.
  const std::vector<std::string> other{"someone-else"};
  store().WatchUsers(other, [state, release = state->release.get_future().share()] {
    state->busy.set_value();
    release.wait_for(kWait);
  });
  ASSERT_EQ(busy.wait_for(kWait), std::future_status::ready);
  const std::vector<std::string> users{"wendy"};
  store().WatchUsers(users, [state] { state->first.set_value(); });
  AssignmentStore& peer = h_.peer();
  store().WatchUsers(users, [state, &peer] {
    // Ready: every later change of wendy reaches the listener. Change her now, before this
    // store's thread goes on.
    state->written = Put(peer, Assignment{"wendy", "room", "vs-1", 0, "r2", 21, Clock::now()}, 0);
    state->second.set_value();
  });
  state->release.set_value();
  ASSERT_EQ(first.wait_for(kWait), std::future_status::ready);
  ASSERT_EQ(second.wait_for(kWait), std::future_status::ready);
  ASSERT_TRUE(state->written.has_value() && state->written->written);
  EXPECT_TRUE(h_.changes.WaitFor(ChangeOf("wendy", Kind::kAssigned), 2s).has_value())
      << "a change made after the second watch was ready never reached the listener";
}

// Once a Put has completed, the write is durable: every replica's Lookup finds it. Here this
// store's thread stays busy for a moment after the completion (it reads from the peer before
// returning), as it may be under load with other work.
TEST_F(RedisStoreTest, PutIsVisibleToOtherReplicasOnceDone) {
  EXPECT_TRUE(h_.WaitWritable());
  const PutResult created =
      Put(store(), Assignment{"mover", "old", "vs-1", 0, "r1", 11, Clock::now()}, 0);
  ASSERT_TRUE(created.written);
  ASSERT_TRUE(SeenBy(h_.peer(), "mover", created.current.epoch, "old"));

  struct Seen {
    std::uint64_t written_epoch = 0;
    std::optional<Assignment> by_peer;
  };
  auto put_and_read = [&](Assignment desired, std::uint64_t expected) {
    auto seen = std::make_shared<Seen>();
    AssignmentStore& peer = h_.peer();
    auto done = Await<StoreResult<PutResult>>([&](std::function<void(StoreResult<PutResult>)> cb) {
      store().Put(std::move(desired), expected, 0,
                  [seen, &peer, cb = std::move(cb)](StoreResult<PutResult> r) {
                    if (const auto* put = std::get_if<PutResult>(&r); put && put->written) {
                      seen->written_epoch = put->current.epoch;
                      seen->by_peer = LookupOne(peer, put->current.user);
                    }
                    cb(std::move(r));
                  });
    });
    EXPECT_TRUE(done.has_value());
    return seen;
  };

  // A new user.
  auto fresh = put_and_read(Assignment{"newcomer", "old", "vs-1", 0, "r1", 12, Clock::now()}, 0);
  ASSERT_NE(fresh->written_epoch, 0u);
  EXPECT_TRUE(fresh->by_peer.has_value())
      << "another replica found no assignment for a user whose Put had completed";

  // A user moving to another space.
  auto moved = put_and_read(Assignment{"mover", "new", "vs-1", 0, "r1", 11, Clock::now()},
                            created.current.epoch);
  ASSERT_NE(moved->written_epoch, 0u);
  ASSERT_TRUE(moved->by_peer.has_value())
      << "another replica found no assignment for a user whose move had completed";
  EXPECT_EQ(moved->by_peer->space, "new");
  EXPECT_EQ(moved->by_peer->epoch, moved->written_epoch);
}

// Plain commands to the test's redis-server, beside the stores (to set up state).
class RawRedis {
 public:
  explicit RawRedis(std::uint16_t port) : guard_(boost::asio::make_work_guard(io_)) {
    RedisOptions o;
    o.port = port;
    RedisHooks hooks;
    hooks.on_up = [this] { up_.set_value(); };
    client_ = std::make_unique<RedisClient>(io_, o, std::move(hooks));
    thread_ = std::thread([this] { io_.run(); });
    client_->Start();
    ok_ = up_.get_future().wait_for(kWait) == std::future_status::ready;
  }
  ~RawRedis() {
    boost::asio::post(io_, [this] { client_.reset(); });  // on the io thread, as required
    guard_.reset();
    thread_.join();
  }
  bool ok() const { return ok_; }
  std::optional<RedisResult> Call(std::vector<std::string> args) {
    return Await<RedisResult>([&](std::function<void(RedisResult)> done) {
      client_->Command(std::move(args), std::move(done));
    });
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::promise<void> up_;
  bool ok_ = false;
  std::unique_ptr<RedisClient> client_;
  std::thread thread_;
};

// A session moves its user to another space right after entering it (as the router does: hello
// enters the space, join attaches, then moves the record), so the new space's first load races
// the move. The new space is large (its snapshot takes a while to arrive), and the move starts
// while it is on its way. The move must be written, once, by the move itself.
#if defined(__SANITIZE_THREAD__)
#define VROUTER_TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VROUTER_TEST_UNDER_TSAN 1
#endif
#endif
// Large enough that its snapshot is still on the way 2 ms after it is asked for. ThreadSanitizer
// makes loading it ~50x slower (30,000 records took 4.8 s of the 5 s bound), so a tenth there.
#ifdef VROUTER_TEST_UNDER_TSAN
constexpr int kCrowd = 3000;
#else
constexpr int kCrowd = 30000;
#endif

TEST_F(RedisStoreTest, MoveWhileTheNewSpaceLoads) {
  {
    RawRedis raw(h_.server().port());
    ASSERT_TRUE(raw.ok());
    std::vector<std::string> hset{"HSET", redis::SpaceKey("big")};
    for (int i = 0; i < kCrowd; ++i) {
      hset.push_back("crowd-" + std::to_string(i));
      hset.push_back(redis::EncodeRecord(redis::Record{1000u + i, "vs-9", "r9", 7, 0}));
    }
    const auto r = raw.Call(std::move(hset));
    ASSERT_TRUE(r.has_value() && std::holds_alternative<RedisReply>(*r));
  }
  ASSERT_TRUE(h_.WaitWritable());
  store().EnterSpace("small");
  const PutResult first =
      Put(store(), Assignment{"mover", "small", "vs-1", 0, "r1", 11, Clock::now()}, 0);
  ASSERT_TRUE(first.written);
  ASSERT_TRUE(WaitUntil([&] { return store().GetLocal("mover").has_value(); }));

  store().EnterSpace("big");
  std::this_thread::sleep_for(2ms);  // its snapshot is asked for, not yet here
  const PutResult moved = Put(
      store(), Assignment{"mover", "big", "vs-1", 0, "r1", 11, Clock::now()}, first.current.epoch);
  EXPECT_TRUE(moved.written) << "the move was refused; the record in 'big' has epoch "
                             << moved.current.epoch << " (the move expected " << first.current.epoch
                             << " in 'small'), replica " << moved.current.replica << ", session "
                             << moved.current.session;
  ASSERT_TRUE(WaitUntil([&] { return store().SpaceLoad("big").contains("vs-9"); }));
}

// ------------------------------------------------------------------ what is read back
// Issue 16 item 7: values written into Redis by something other than vrouter (here a raw client),
// and messages published by anyone who can publish. Each must be refused or repaired, counted,
// and must neither take other users or spaces down nor be reported as Redis being unreachable.

constexpr std::uint64_t k2Pow60 = std::uint64_t{1} << 60;

class RedisStoreTrustTest : public RedisStoreTest {
 protected:
  void SetUp() override {
    RedisStoreTest::SetUp();
    raw_ = std::make_unique<RawRedis>(h_.server().port());
    ASSERT_TRUE(raw_->ok());
  }
  void TearDown() override { raw_.reset(); }

  // A command that Redis must answer (with anything but an error).
  RedisReply Raw(std::vector<std::string> args) {
    const std::string what = args.front();
    const auto r = raw_->Call(std::move(args));
    if (!r || !std::holds_alternative<RedisReply>(*r)) {
      ADD_FAILURE() << what << " got no answer";
      return {};
    }
    const auto& reply = std::get<RedisReply>(*r);
    EXPECT_NE(reply.type, RedisReply::Type::kError) << what << ": " << reply.str;
    return reply;
  }

  double Counted(prometheus::Family<prometheus::Counter>* family, const std::string& label,
                 const std::string& value) {
    return family->Add({{label, value}}).Value();
  }
  double Corrupt(const std::string& kind) {
    return Counted(h_.metrics().store_corrupt, "kind", kind);
  }

  Assignment Desired(const std::string& user, const std::string& space, std::uint64_t session,
                     const std::string& server = "vs-1") {
    return Assignment{user, space, server, 0, "r1", session, Clock::now()};
  }

  std::unique_ptr<RawRedis> raw_;
};

TEST_F(RedisStoreTrustTest, InvalidRecordsAreAbsentAndTheNextJoinReplacesThem) {
  ASSERT_TRUE(h_.WaitWritable());
  // The reviewer's case first (epoch 2^64-1), then one bad field of each kind: the scripts and
  // the decoder must agree that each is no record.
  const std::vector<std::string> bad = {
      "18446744073709551615\tvs-9\tr9\t7\t0",        // epoch above 2^53-1
      "1152921504606846976\tvs-9\tr9\t7\t0",         // 2^60
      "12abc\tvs-9\tr9\t7\t0",                       // not a number
      "5\t" + std::string(200, 's') + "\tr9\t7\t0",  // an id too long
      "5\tvs-9\tr\x01"
      "9\t7\t0",              // a control character
      "5\tvs-9\tr9\t-7\t0",   // a negative session
      "5\tvs-9\tr9\t7\t1e3",  // a detach time that is no integer
      "5\tvs-9\tr9\t7",       // a field missing
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const std::string user = "u" + std::to_string(i);
    Raw({"HSET", redis::SpaceKey("room"), user, bad[i]});
    Raw({"SET", redis::UserKey(user), "room"});
  }
  const double before = Corrupt("record");
  for (std::size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(bad[i]);
    const std::string user = "u" + std::to_string(i);
    // Read from Redis (the peer holds no copy of the space): not a user anyone may be sent to.
    EXPECT_EQ(LookupOne(h_.peer(), user), std::nullopt);
    // A join: nothing to attach, then a write that must replace the bad record.
    EXPECT_EQ(Attach(store(), user, "room", 11 + i), std::nullopt);
    const PutResult joined = Put(store(), Desired(user, "room", 11 + i), 0);
    EXPECT_TRUE(joined.written) << "the user could not join again";
    EXPECT_LE(joined.current.epoch, proto::kMaxSafeInteger);
    const auto found = LookupOne(h_.peer(), user);
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->epoch, joined.current.epoch);
    EXPECT_EQ(found->server, "vs-1");
  }
  EXPECT_GE(Corrupt("record") - before, static_cast<double>(bad.size()));
}

TEST_F(RedisStoreTrustTest, SpaceLoadSkipsInvalidRecordsAndKeepsTheOthers) {
  ASSERT_TRUE(h_.WaitWritable());
  const PutResult good = Put(store(), Desired("good", "room", 11), 0);
  ASSERT_TRUE(good.written);
  Raw({"HSET", redis::SpaceKey("room"), "bad", "18446744073709551615\tvs-9\tr9\t7\t0"});
  h_.peer().EnterSpace("room");
  ASSERT_TRUE(WaitUntil([&] { return h_.peer().GetLocal("good").has_value(); }));
  EXPECT_EQ(h_.peer().GetLocal("bad"), std::nullopt);
  EXPECT_GE(Corrupt("record"), 1.0);
}

TEST_F(RedisStoreTrustTest, NonIntegerSequenceIsResetAndEveryLocalCopyCatchesUp) {
  ASSERT_TRUE(h_.WaitWritable());
  h_.peer().EnterSpace("room");
  ASSERT_TRUE(Put(store(), Desired("u1", "room", 11), 0).written);
  ASSERT_TRUE(WaitUntil([&] { return h_.peer().GetLocal("u1").has_value(); }));

  Raw({"HSET", redis::SpaceKey("room"), "", "not-a-number"});
  const auto written = PutR(store(), Desired("u2", "room", 12), 0);
  ASSERT_TRUE(std::holds_alternative<PutResult>(written))
      << "the space became unwritable: " << StoreErrorMessage(std::get<StoreError>(written));
  EXPECT_TRUE(std::get<PutResult>(written).written);
  EXPECT_TRUE(store().Problem().empty()) << store().Problem();
  // Reset from Redis's clock (µs): far above what the local copies had, so they see a gap.
  const auto seq = redis::DecodeNumber(Raw({"HGET", redis::SpaceKey("room"), ""}).str);
  ASSERT_TRUE(seq.has_value());
  EXPECT_GT(*seq, 1'000'000'000'000'000u);
  EXPECT_TRUE(WaitUntil([&] { return h_.peer().GetLocal("u2").has_value(); }))
      << "a local copy missed the change that reset the sequence";
  ASSERT_TRUE(Put(store(), Desired("u3", "room", 13), 0).written);
  EXPECT_TRUE(WaitUntil([&] { return h_.peer().GetLocal("u3").has_value(); }))
      << "a local copy missed a change after the reset";
  EXPECT_GE(Corrupt("sequence"), 1.0);
}

TEST_F(RedisStoreTrustTest, SpaceKeyOfTheWrongTypeIsIsolatedWithATypedError) {
  ASSERT_TRUE(h_.WaitWritable());
  Raw({"SET", redis::SpaceKey("bad"), "a string where a hash belongs"});
  const auto refused = PutR(store(), Desired("alice", "bad", 11), 0);
  ASSERT_TRUE(std::holds_alternative<StoreError>(refused)) << "written into a corrupt space";
  EXPECT_EQ(std::get<StoreError>(refused), StoreError::kCorrupt);
  EXPECT_EQ(std::string(StoreErrorMessage(StoreError::kCorrupt)).find("unreachable"),
            std::string::npos);
  const auto attach = AttachR(store(), "alice", "bad", 11);
  ASSERT_TRUE(std::holds_alternative<StoreError>(attach));
  EXPECT_EQ(std::get<StoreError>(attach), StoreError::kCorrupt);
  EXPECT_GE(Corrupt("wrong_type"), 2.0);

  // Nothing else is affected: the replica is healthy and other spaces are writable.
  EXPECT_TRUE(store().Problem().empty()) << store().Problem();
  EXPECT_TRUE(Put(store(), Desired("bob", "good", 12), 0).written);
  // Holding the space does not loop on it either; once an operator deletes the key, it works.
  store().EnterSpace("bad");
  Raw({"DEL", redis::SpaceKey("bad")});
  const PutResult repaired = Put(store(), Desired("alice", "bad", 11), 0);
  EXPECT_TRUE(repaired.written);
  EXPECT_TRUE(WaitUntil([&] { return store().GetLocal("alice").has_value(); }));
}

// A `left` with a huge epoch published on a watched user's channel used to be delivered and then
// silence every later change of the user for its watchers.
TEST_F(RedisStoreTrustTest, ForgedLeftWithAHugeEpochDoesNotSilenceLaterChanges) {
  Watch(store(), {"bob"});
  const PutResult first =
      Put(h_.peer(), Assignment{"bob", "room", "vs-1", 0, "r2", 21, Clock::now()}, 0);
  ASSERT_TRUE(first.written);
  ASSERT_TRUE(h_.changes.WaitFor(ChangeOf("bob", Kind::kAssigned)).has_value());

  for (const std::uint64_t epoch : {k2Pow60, proto::kMaxSafeInteger - 1}) {
    redis::ChangeMessage forged;
    forged.seq = 999;
    forged.kind = redis::ChangeMessage::Kind::kRemoved;
    forged.space = "room";
    forged.user = "bob";
    forged.record = redis::Record{epoch, "vs-1", "r2", 21, 0};
    Raw({"PUBLISH", redis::UserChannel("bob", redis::PubSub::kClassic),
         redis::EncodeChange(forged)});
  }
  EXPECT_FALSE(h_.changes.WaitFor(ChangeOf("bob", Kind::kRemoved), 500ms).has_value())
      << "a forged left reached the watchers";

  const PutResult second = Put(
      h_.peer(), Assignment{"bob", "room", "vs-2", 0, "r2", 21, Clock::now()}, first.current.epoch);
  ASSERT_TRUE(second.written);
  const auto heard = h_.changes.WaitFor([&](const AssignmentChange& c) {
    return c.assignment.user == "bob" && c.assignment.epoch == second.current.epoch;
  });
  EXPECT_TRUE(heard.has_value()) << "the real change after the forged left was silenced";
  for (const auto& c : h_.changes.Of("bob")) EXPECT_LE(c.assignment.epoch, second.current.epoch);
  EXPECT_GE(Counted(h_.metrics().store_changes_rejected, "reason", "malformed"), 1.0);
  EXPECT_GE(Counted(h_.metrics().store_changes_rejected, "reason", "epoch_ahead"), 1.0);
}

// The same on a held space's channel: a change with an epoch far ahead, and the next sequence
// number, used to replace the user's record in the local copy and shut out the real next change.
TEST_F(RedisStoreTrustTest, ForgedChangeWithAnEpochAheadDoesNotPoisonTheLocalCopy) {
  ASSERT_TRUE(h_.WaitWritable());
  store().EnterSpace("room");
  const PutResult first =
      Put(h_.peer(), Assignment{"bob", "room", "vs-1", 0, "r2", 21, Clock::now()}, 0);
  ASSERT_TRUE(first.written);
  ASSERT_TRUE(WaitUntil([&] {
    const auto a = store().GetLocal("bob");
    return a && a->epoch == first.current.epoch;
  }));
  const auto seq = redis::DecodeNumber(Raw({"HGET", redis::SpaceKey("room"), ""}).str);
  ASSERT_TRUE(seq.has_value());
  redis::ChangeMessage forged;
  forged.seq = *seq + 1;
  forged.kind = redis::ChangeMessage::Kind::kAssigned;
  forged.space = "room";
  forged.user = "bob";
  forged.record = redis::Record{proto::kMaxSafeInteger - 1, "evil", "r2", 21, 0};
  forged.from_server = "vs-1";
  Raw({"PUBLISH", redis::SpaceChannel("room", redis::PubSub::kClassic),
       redis::EncodeChange(forged)});
  // A change naming another space than its channel's is dropped too.
  forged.space = "elsewhere";
  forged.record.epoch = first.current.epoch + 1;
  Raw({"PUBLISH", redis::SpaceChannel("room", redis::PubSub::kClassic),
       redis::EncodeChange(forged)});
  std::this_thread::sleep_for(300ms);
  auto local = store().GetLocal("bob");
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->server, "vs-1");
  EXPECT_EQ(local->epoch, first.current.epoch);

  const PutResult second = Put(
      h_.peer(), Assignment{"bob", "room", "vs-2", 0, "r2", 21, Clock::now()}, first.current.epoch);
  ASSERT_TRUE(second.written);
  EXPECT_TRUE(WaitUntil([&] {
    const auto a = store().GetLocal("bob");
    return a && a->server == "vs-2" && a->epoch == second.current.epoch;
  })) << "the local copy missed the real change after the forged one";
  EXPECT_GE(Counted(h_.metrics().store_changes_rejected, "reason", "wrong_channel"), 1.0);
}

// A hello counter someone wrote (a hash, a negative count) is no count: the replica's own budgets
// hold (the caller fails open on an error), and it is counted as a defect.
TEST_F(RedisStoreTrustTest, HelloCountersOutOfRangeAreDefects) {
  ASSERT_TRUE(h_.WaitWritable());
  auto count = [&](const std::string& user) {
    return Completed(
        Await<StoreResult<HelloCounts>>([&](std::function<void(StoreResult<HelloCounts>)> done) {
          store().CountHello(user, "10.0.0.9", 10s, std::move(done));
        }),
        "CountHello");
  };
  Raw({"HSET", redis::HelloUserKey("mallory"), "f", "v"});
  Raw({"SET", redis::HelloUserKey("trudy"), "-100"});
  const double wrong_type = Corrupt("wrong_type"), other = Corrupt("other");
  for (const std::string user : {"mallory", "trudy"}) {
    const auto r = count(user);
    ASSERT_TRUE(std::holds_alternative<StoreError>(r)) << user;
    EXPECT_EQ(std::get<StoreError>(r), StoreError::kCorrupt) << user;
  }
  EXPECT_GE(Corrupt("wrong_type") - wrong_type, 1.0);
  EXPECT_GE(Corrupt("other") - other, 1.0);
  const auto fine = count("walter");
  ASSERT_TRUE(std::holds_alternative<HelloCounts>(fine));
  EXPECT_EQ(std::get<HelloCounts>(fine).user, 1);
}

// Issue 20: a video server's admission budget per interval is shared by every replica, in
// windows that start with their first placement; a refusal says how long the window still runs.
TEST_F(RedisStoreTrustTest, AdmissionBudgetsAreSharedByReplicasPerWindow) {
  ASSERT_TRUE(h_.WaitWritable());
  auto admit = [&](AssignmentStore& s, const std::string& server, std::uint32_t cap,
                   std::uint32_t room = 1000) {
    return Completed(
        Await<StoreResult<Admission>>([&](std::function<void(StoreResult<Admission>)> done) {
          s.Admit(server, cap, room, 400ms, std::move(done));
        }),
        "Admit");
  };
  auto admitted = [&](AssignmentStore& s, const std::string& server, std::uint32_t cap,
                      std::uint32_t room = 1000) {
    const auto r = admit(s, server, cap, room);
    EXPECT_TRUE(std::holds_alternative<Admission>(r));
    return std::holds_alternative<Admission>(r) ? std::get<Admission>(r) : Admission{};
  };
  EXPECT_TRUE(store().SharesAdmission());
  EXPECT_EQ(admitted(store(), "vs-1", 3).fleet_count, 1u);
  EXPECT_EQ(admitted(h_.peer(), "vs-1", 3).fleet_count, 2u);  // another replica, same budget
  EXPECT_EQ(admitted(store(), "vs-1", 3).fleet_count, 3u);
  const Admission refused = admitted(h_.peer(), "vs-1", 3);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.fleet_count, 3u);  // a refusal does not count
  EXPECT_GT(refused.window_left, 0ms);
  EXPECT_LE(refused.window_left, 400ms);
  EXPECT_TRUE(admitted(store(), "vs-2", 3).admitted);  // each server has its own
  std::this_thread::sleep_for(refused.window_left + 50ms);
  EXPECT_EQ(admitted(h_.peer(), "vs-1", 3).fleet_count, 1u);  // a new window

  // The room: a replica's view of a server's load lags the others' placements by up to two
  // housekeeping intervals (100 ms here, so 450 ms with the margin), in any window. Placements
  // that recent count against the room the caller sees, whichever replica made them.
  EXPECT_TRUE(admitted(store(), "vs-5", 100, /*room=*/2).admitted);
  EXPECT_TRUE(admitted(h_.peer(), "vs-5", 100, 2).admitted);
  const Admission no_room = admitted(store(), "vs-5", 100, 2);
  EXPECT_FALSE(no_room.admitted);
  EXPECT_EQ(no_room.fleet_count, 2u);
  EXPECT_GT(no_room.window_left, 0ms);
  EXPECT_LE(no_room.window_left, 450ms);
  EXPECT_TRUE(admitted(store(), "vs-5", 100, 3).admitted);  // a view with more room
  std::this_thread::sleep_for(500ms);  // past the window and the horizon: forgotten
  EXPECT_TRUE(admitted(h_.peer(), "vs-5", 100, 1).admitted);

  // Bad store contents: a count that is not a number starts over; a key of the wrong type is a
  // typed error (the replica then admits its own share), never a crash.
  Raw({"SET", redis::AdmissionKey("vs-3"), "lots", "PX", "10000"});
  EXPECT_EQ(admitted(store(), "vs-3", 3).fleet_count, 1u);
  Raw({"HSET", redis::AdmissionKey("vs-4"), "f", "v"});
  const auto wrong = admit(store(), "vs-4", 3);
  ASSERT_TRUE(std::holds_alternative<StoreError>(wrong));
  EXPECT_EQ(std::get<StoreError>(wrong), StoreError::kCorrupt);
  Raw({"SET", redis::AdmissionRecentKey("vs-6"), "x"});
  const auto wrong_recent = admit(store(), "vs-6", 3);
  ASSERT_TRUE(std::holds_alternative<StoreError>(wrong_recent));
  EXPECT_EQ(std::get<StoreError>(wrong_recent), StoreError::kCorrupt);
  EXPECT_GE(store().LiveReplicas(), 1u);
}

// Write access to pub/sub alone used to be enough to add a video server on every replica.
TEST_F(RedisStoreTrustTest, FleetMessagesNeedTheReplicaKey) {
  ASSERT_TRUE(h_.WaitWritable());
  std::mutex mu;
  std::vector<std::string> heard;
  store().SetFleetListener([&](std::string_view m) {
    std::lock_guard lock(mu);
    heard.emplace_back(m);
  });
  auto heard_now = [&] {
    std::lock_guard lock(mu);
    return heard;
  };
  const fleet::VideoServer fake{"fake-sfu", "wss://attacker.example/", "eu", 1000, true};
  const std::string registration = EncodeGossip({"intruder", GossipRegistered{fake}});
  Raw({"PUBLISH", std::string(redis::kFleetChannel), registration});
  GossipSealer wrong_key("not-the-replica-key-0123", "intruder");
  Raw({"PUBLISH", std::string(redis::kFleetChannel),
       wrong_key.Seal(registration, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count())});

  // A real replica's message arrives as it was published.
  const std::string real =
      EncodeGossip({"r2", GossipRegistered{{"sfu-1", "wss://sfu-1.example/", "eu", 100, true}}});
  h_.peer_redis_store().PublishFleet(real);
  ASSERT_TRUE(WaitUntil([&] {
    for (const auto& m : heard_now()) {
      if (m == real) return true;
    }
    return false;
  })) << "a replica's own fleet message never arrived";
  std::this_thread::sleep_for(100ms);
  for (const auto& m : heard_now()) {
    EXPECT_EQ(m.find("fake-sfu"), std::string::npos) << "accepted: " << m;
  }
  EXPECT_GE(Counted(h_.metrics().fleet_gossip_rejected, "reason", "unsigned"), 1.0);
  EXPECT_GE(Counted(h_.metrics().fleet_gossip_rejected, "reason", "bad_mac"), 1.0);
}

// Issue 18: kill -9 of a primary while two replicas write, behind Sentinel or in a Cluster. The
// stores follow the failover by themselves, writes resume within the failover time plus 2 s, and
// no live user is lost: what the failover lost (a replica that was behind) is written back from
// the replicas' live sessions when they reload their spaces.
struct FailoverCase {
  std::string name;
  std::function<void(RedisStoreOptions&)> topology;  // how the stores reach Redis
  std::function<void()> lose_writes;  // before the kill: make the promoted replica fall behind
  std::function<void()> kill;         // kill -9 of the primary (and anything after it)
  // A Cluster: the spaces of the other shards take writes all through the failover.
  bool other_shards_work = false;
};

void FailoverUnderLoad(const FailoverCase& run) {
  telemetry::Metrics metrics{"test", "test"};
  Replaced replaced, peer_replaced, third_replaced;
  auto options = [&](const std::string& replica) {
    RedisStoreOptions o;
    run.topology(o);
    o.redis.connect_timeout = 300ms;
    o.redis.command_timeout = 300ms;
    o.redis.backoff_min = 50ms;
    o.redis.backoff_max = 200ms;
    o.replica_id = replica;
    o.resume_grace = 60s;  // nobody expires while the test runs
    o.lease_ttl = 10s;     // nor does a replica, through the outage
    o.housekeeping_interval = 100ms;
    o.replica_key = "test-replica-key-0123456789";
    return o;
  };
  RedisStore a(options("r1"), metrics, replaced.Handler());
  RedisStore b(options("r2"), metrics, peer_replaced.Handler());
  a.Start();
  b.Start();
  ASSERT_TRUE(WaitUntil([&] { return a.Problem().empty() && b.Problem().empty(); }))
      << a.Problem() << " / " << b.Problem();
  constexpr int kSpaces = 8;  // over the shards of a cluster
  auto space_of = [](int i) { return "room-" + std::to_string(i % kSpaces); };
  for (int i = 0; i < kSpaces; ++i) {
    a.EnterSpace(space_of(i));
    b.EnterSpace(space_of(i));
  }

  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> live;  // (user, space) written
  std::optional<Clock::time_point> killed_at, resumed_at;
  std::set<std::string> refused_in;  // spaces where a write was refused after the kill
  int written_elsewhere = 0;         // meanwhile, in spaces that were never refused
  std::atomic<int> refused{0};
  std::atomic<bool> stop{false};
  auto writer = [&](AssignmentStore& s, const std::string& replica) {
    for (int i = 0; !stop; ++i) {
      const std::string user = replica + "-u" + std::to_string(i);
      bool after_kill = false;  // a write begun before the kill may still be answered after it
      {
        std::lock_guard lock(mu);
        after_kill = killed_at.has_value();
      }
      const auto r = PutR(s,
                          Assignment{user, space_of(i), "vs-1", 0, replica,
                                     static_cast<std::uint64_t>(i + 1), Clock::now()},
                          0);
      const auto* put = std::get_if<PutResult>(&r);
      if (put != nullptr && put->written) {
        std::lock_guard lock(mu);
        live.emplace_back(user, space_of(i));
        // Resumed: a write succeeds in a space that had refused one since the kill (on a
        // Cluster, the other shards' spaces never stop).
        if (after_kill && !resumed_at && refused_in.contains(space_of(i))) {
          resumed_at = Clock::now();
        } else if (after_kill && !resumed_at) {
          ++written_elsewhere;
        }
      } else {
        ++refused;  // unavailable through the failover: a client would retry
        std::lock_guard lock(mu);
        if (after_kill) refused_in.insert(space_of(i));
      }
      std::this_thread::sleep_for(2ms);
    }
  };
  std::thread wa(writer, std::ref(a), "r1"), wb(writer, std::ref(b), "r2");
  std::this_thread::sleep_for(1s);
  if (run.lose_writes) run.lose_writes();
  {
    std::lock_guard lock(mu);
    killed_at = Clock::now();
  }
  run.kill();
  const bool resumed = WaitUntil(
      [&] {
        std::lock_guard lock(mu);
        return resumed_at.has_value();
      },
      30s);
  std::this_thread::sleep_for(1s);  // writes go on after the failover
  stop = true;
  wa.join();
  wb.join();
  ASSERT_TRUE(resumed) << "writes never resumed after the primary was killed";
  const auto failover = *resumed_at - *killed_at;
  // The failover itself (down after 1 s, the election, the promotion), then the client's
  // reconnection (its backoff) to the new primary.
  EXPECT_LT(failover, 10s);

  // Every live user is in Redis, as a third replica reads it there, within the bound.
  RedisStore reader(options("r3"), metrics, third_replaced.Handler());
  reader.Start();
  ASSERT_TRUE(WaitUntil([&] { return reader.Problem().empty(); })) << reader.Problem();
  std::vector<std::string> missing;
  const bool all_there = WaitUntil(
      [&] {
        missing.clear();
        std::lock_guard lock(mu);
        for (const auto& entry : live) {  // (a lambda may not capture a structured binding)
          const std::string& user = entry.first;
          const std::string& space = entry.second;
          const auto found =
              Await<StoreResult<Assignments>>([&](std::function<void(StoreResult<Assignments>)> d) {
                reader.LookupInSpace({user}, space, std::move(d));
              });
          const auto* got = found ? std::get_if<Assignments>(&*found) : nullptr;
          if (got == nullptr || got->size() != 1 || !(*got)[0]) missing.push_back(user);
        }
        return missing.empty();
      },
      15s);
  std::cout << run.name << " failover under load: writes resumed "
            << std::chrono::duration_cast<std::chrono::milliseconds>(failover).count()
            << " ms after kill -9 of a primary; " << live.size() << " users written, "
            << refused.load() << " writes refused meanwhile (retryable), " << written_elsewhere
            << " written meanwhile in spaces that never stopped, "
            << metrics.store_reasserted->Value() << " written back, " << missing.size()
            << " missing\n";
  if (run.other_shards_work) {
    EXPECT_GT(written_elsewhere, 0) << "one dead primary stopped the other shards too";
  }
  EXPECT_TRUE(all_there) << missing.size() << " live users lost, e.g. "
                         << (missing.empty() ? "" : missing[0]);
  if (run.lose_writes) {
    EXPECT_GT(metrics.store_reasserted->Value(), 0) << "the failover lost nothing: not tested";
  }
  reader.Stop();
  a.Stop();
  b.Stop();
}

TEST(RedisSentinelTest, APrimaryKilledUnderLoadLosesNoLiveUser) {
  vrouter::testing::SentinelFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(error)) << error;
  FailoverUnderLoad(
      {"sentinel",
       [&](RedisStoreOptions& o) {
         o.redis.sentinel.master_name = vrouter::testing::SentinelFleet::kMasterName;
         for (std::uint16_t port : fleet.sentinel_ports()) {
           o.redis.sentinel.sentinels.emplace_back("127.0.0.1", port);
         }
       },
       // The replica falls behind: stopped, and cut off from the primary, while writes go on for
       // 300 ms; the failover then loses them, as an asynchronous replica can.
       [&] {
         ASSERT_TRUE(fleet.replica().Pause());
         RawRedis primary(fleet.primary().port());
         ASSERT_TRUE(primary.ok());
         ASSERT_TRUE(primary.Call({"CLIENT", "KILL", "TYPE", "replica"}).has_value());
         std::this_thread::sleep_for(300ms);
       },
       [&] {
         fleet.primary().Kill();
         ASSERT_TRUE(fleet.replica().Resume());
       }});
}

// The same in a Redis Cluster of three primaries with a replica each: one primary is killed;
// the other shards keep their data, its replica takes its slots over.
// The node of `fleet` that replicates the primary at `port` (INFO replication: slave0:...).
RedisServer* ReplicaOf(vrouter::testing::ClusterFleet& fleet, std::uint16_t port) {
  const std::string info = InlineCommand(port, "INFO replication");
  constexpr std::string_view kReplicaLine = "slave0:ip=127.0.0.1,port=";
  const auto at = info.find(kReplicaLine);
  if (at == std::string::npos) return nullptr;
  const int replica_port = std::stoi(info.substr(at + kReplicaLine.size()));
  for (auto& node : fleet.nodes()) {
    if (node->port() == replica_port) return node.get();
  }
  return nullptr;
}

TEST(RedisClusterTest, APrimaryKilledUnderLoadLosesNoLiveUser) {
  vrouter::testing::ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 1, error)) << error;
  RedisServer* replica = nullptr;
  FailoverUnderLoad({"cluster",
                     [&](RedisStoreOptions& o) {
                       for (std::uint16_t port : fleet.ports()) {
                         o.cluster_seeds.emplace_back("127.0.0.1", port);
                       }
                     },
                     // The killed primary's replica falls behind, as in the Sentinel case.
                     [&] {
                       replica = ReplicaOf(fleet, fleet.ports().front());
                       ASSERT_NE(replica, nullptr) << "the first primary has no replica";
                       ASSERT_TRUE(replica->Pause());
                       RawRedis primary(fleet.ports().front());
                       ASSERT_TRUE(primary.ok());
                       ASSERT_TRUE(primary.Call({"CLIENT", "KILL", "TYPE", "replica"}).has_value());
                       std::this_thread::sleep_for(300ms);
                     },
                     [&] {
                       fleet.nodes().front()->Kill();
                       ASSERT_TRUE(replica->Resume());
                     },
                     /*other_shards_work=*/true});
}

// Issue 18: a live reshard of the slots that hold busy spaces and watched users, while one
// replica writes, another looks up and a third watches. Writes may be refused only with the
// retryable `unavailable`; every lookup of a user already written finds it; and each watcher
// ends up told every user's last assignment (what was published while a shard channel moved is
// read again, not lost), as does the other replica's local copy.
TEST(RedisClusterTest, ALiveReshardUnderWritesLookupsAndWatchesLosesNothing) {
  vrouter::testing::ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  const auto ports = fleet.ports();
  telemetry::Metrics metrics{"test", "test"};
  Replaced replaced_a, replaced_b, replaced_w;
  auto options = [&](const std::string& replica) {
    RedisStoreOptions o;
    for (std::uint16_t port : ports) o.cluster_seeds.emplace_back("127.0.0.1", port);
    o.redis.connect_timeout = 300ms;
    o.redis.command_timeout = 300ms;
    o.redis.backoff_min = 50ms;
    o.redis.backoff_max = 200ms;
    o.replica_id = replica;
    o.resume_grace = 60s;
    o.lease_ttl = 10s;
    o.housekeeping_interval = 100ms;
    o.replica_key = "test-replica-key-0123456789";
    return o;
  };
  RedisStore a(options("r1"), metrics, replaced_a.Handler());
  RedisStore b(options("r2"), metrics, replaced_b.Handler());
  RedisStore w(options("r3"), metrics, replaced_w.Handler());
  ChangeLog heard;
  w.SetChangeListener(heard.Listener());
  for (RedisStore* s : {&a, &b, &w}) s->Start();
  ASSERT_TRUE(WaitUntil([&] { return a.Problem().empty() && b.Problem().empty(); }));
  ASSERT_TRUE(WaitUntil([&] { return w.Problem().empty(); }));

  // Most spaces and users in the slots the reshard moves (the first primary's lowest 1,000),
  // the rest elsewhere.
  constexpr std::uint16_t kMoved = 1000;
  auto pick = [](const std::string& prefix, auto key_of, int in_moved, int elsewhere) {
    std::vector<std::string> out;
    for (int i = 0; in_moved > 0 || elsewhere > 0; ++i) {
      std::string name = prefix + std::to_string(i);
      const bool moves = cluster::KeySlot(key_of(name)) < kMoved;
      int& left = moves ? in_moved : elsewhere;
      if (left > 0) {
        --left;
        out.push_back(std::move(name));
      }
    }
    return out;
  };
  const auto spaces = pick("room-", redis::SpaceKey, 4, 2);
  const auto users = pick("u-", redis::UserKey, 16, 8);
  auto space_of = [&](std::size_t i) { return spaces[i % spaces.size()]; };
  for (const auto& space : spaces) {
    a.EnterSpace(space);
    b.EnterSpace(space);
  }
  Watch(w, users);

  std::mutex mu;
  std::vector<std::uint64_t> last(users.size(), 0);  // the epoch a last wrote, per user
  std::atomic<int> written{0}, unavailable{0}, other_errors{0};
  std::atomic<int> lookups{0}, lookup_errors{0}, lookups_missing{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int round = 1; !stop; ++round) {
      for (std::size_t i = 0; i < users.size() && !stop; ++i) {
        std::uint64_t expected = 0;
        {
          std::lock_guard lock(mu);
          expected = last[i];
        }
        const auto r = PutR(a,
                            Assignment{users[i], space_of(i), "vs-" + std::to_string(round), 0,
                                       "r1", i + 1, Clock::now()},
                            expected);
        if (const auto* put = std::get_if<PutResult>(&r)) {
          // Not written: an earlier write timed out here but was applied; `current` says so.
          std::lock_guard lock(mu);
          last[i] = put->current.epoch;
          if (put->written) ++written;
        } else if (const StoreError e = std::get<StoreError>(r);
                   e == StoreError::kUnavailable || e == StoreError::kTimeout) {
          ++unavailable;  // retryable: the client is told `unavailable` and tries again
        } else {
          ++other_errors;
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  std::thread reader([&] {
    while (!stop) {
      for (std::size_t i = 0; i < users.size() && !stop; ++i) {
        bool written_before = false;
        {
          std::lock_guard lock(mu);
          written_before = last[i] != 0;
        }
        const auto found =
            Await<StoreResult<Assignments>>([&](std::function<void(StoreResult<Assignments>)> d) {
              b.LookupInSpace({users[i]}, space_of(i), std::move(d));
            });
        ++lookups;
        const auto* got = found ? std::get_if<Assignments>(&*found) : nullptr;
        if (got == nullptr) {
          ++lookup_errors;
        } else if (written_before && (got->size() != 1 || !(*got)[0])) {
          ++lookups_missing;
        }
      }
    }
  });
  std::this_thread::sleep_for(500ms);
  const auto began = Clock::now();
  const bool resharded = vrouter::testing::ReshardCluster(ports[0], ports[1], kMoved);
  const auto took = Clock::now() - began;
  std::this_thread::sleep_for(1s);
  stop = true;
  writer.join();
  reader.join();
  ASSERT_TRUE(resharded);

  std::vector<std::string> behind;
  const bool converged = WaitUntil([&] {
    behind.clear();
    for (std::size_t i = 0; i < users.size(); ++i) {
      const auto told = heard.Of(users[i]);
      const auto local = b.GetLocal(users[i]);
      if (told.empty() || told.back().assignment.epoch != last[i] || !local ||
          local->epoch != last[i]) {
        behind.push_back(users[i]);
      }
    }
    return behind.empty();
  });
  std::cout << "reshard of " << kMoved << " slots in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms under "
            << written.load() << " writes (" << unavailable.load() << " unavailable, "
            << other_errors.load() << " other errors) and " << lookups.load() << " lookups ("
            << lookup_errors.load() << " errors, " << lookups_missing.load()
            << " missing); shard channels moved: " << metrics.store_channels_moved->Value() << "\n";
  EXPECT_TRUE(converged) << behind.size() << " users' last change not heard, e.g. "
                         << (behind.empty() ? "" : behind[0]);
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_EQ(lookups_missing.load(), 0);
  EXPECT_GT(written.load(), 0);
  EXPECT_GT(metrics.store_channels_moved->Value(), 0) << "no shard channel moved: not tested";
  for (const auto& c : heard.Of(users[0])) EXPECT_LE(c.assignment.epoch, last[0]);
  for (RedisStore* s : {&w, &b, &a}) s->Stop();
}

// Issue 18: the ACL user of deploy/redis/vrouter.acl-rules runs what the contract suite does not
// (fleet gossip, hello counters, admission budgets, a dead replica's leases) without a single
// denial in Redis's ACL LOG.
TEST(RedisAclTest, TheMinimalRulesAllowEverythingTheStoreSends) {
  RedisAclHarness h;
  std::string error;
  ASSERT_TRUE(h.Start(error)) << error;
  std::atomic<bool> heard{false};
  h.redis_store().SetFleetListener([&](std::string_view) { heard = true; });
  h.peer_redis_store().PublishFleet(
      EncodeGossip({"r2", GossipRegistered{{"sfu-1", "wss://sfu-1.example/", "eu", 100, true}}}));
  EXPECT_TRUE(WaitUntil([&] { return heard.load(); })) << "fleet gossip never arrived";
  const auto admitted =
      Await<StoreResult<Admission>>([&](std::function<void(StoreResult<Admission>)> done) {
        h.store().Admit("sfu-1", 10, 100, 1000ms, std::move(done));
      });
  EXPECT_TRUE(admitted && std::holds_alternative<Admission>(*admitted));
  const auto counted =
      Await<StoreResult<HelloCounts>>([&](std::function<void(StoreResult<HelloCounts>)> done) {
        h.store().CountHello("alice", "10.0.0.1", 1000ms, std::move(done));
      });
  EXPECT_TRUE(counted && std::holds_alternative<HelloCounts>(*counted));
  // A replica dies holding a space: the survivor's lease sweep and reaper take it in hand.
  h.peer().EnterSpace("room");
  ASSERT_TRUE(
      Put(h.peer(), Assignment{"bob", "room", "vs-1", 0, "r2", 7, Clock::now()}, 0).written);
  h.peer_redis_store().Stop();
  std::this_thread::sleep_for(1500ms);  // past the 1 s lease: r2 is dead, r1 reaps it

  RawRedis raw(h.server().port());
  ASSERT_TRUE(raw.ok());
  const auto log = raw.Call({"ACL", "LOG"});
  ASSERT_TRUE(log && std::holds_alternative<RedisReply>(*log));
  const RedisReply& entries = std::get<RedisReply>(*log);
  std::string denied;
  for (const auto& entry : entries.elements) {
    for (std::size_t i = 0; i + 1 < entry.elements.size(); i += 2) {
      if (entry.elements[i].str == "object") denied += entry.elements[i + 1].str + " ";
    }
  }
  EXPECT_EQ(entries.elements.size(), 0u) << "denied: " << denied;
}

// The same rules on a Redis Cluster, where the store also asks for the slot map, follows
// redirections (ASKING) and uses sharded pub/sub (SSUBSCRIBE, SPUBLISH): joins, watches, a
// held space, fleet gossip, hello and admission counters, every node's ACL LOG empty after.
TEST(RedisAclTest, TheMinimalRulesSufficeOnACluster) {
  vrouter::testing::ClusterFleet fleet;
  fleet.acl_user = AclUserDirective();
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  telemetry::Metrics metrics{"test", "test"};
  Replaced replaced_a, replaced_b;
  auto options = [&](const std::string& replica) {
    RedisStoreOptions o;
    for (std::uint16_t port : fleet.ports()) o.cluster_seeds.emplace_back("127.0.0.1", port);
    o.redis.username = kAclUser;
    o.redis.password = kAclPassword;
    o.replica_id = replica;
    o.housekeeping_interval = 100ms;
    o.replica_key = "test-replica-key-0123456789";
    return o;
  };
  RedisStore a(options("r1"), metrics, replaced_a.Handler());
  RedisStore b(options("r2"), metrics, replaced_b.Handler());
  ChangeLog heard;
  b.SetChangeListener(heard.Listener());
  std::atomic<bool> gossip{false};
  b.SetFleetListener([&](std::string_view) { gossip = true; });
  a.Start();
  b.Start();
  ASSERT_TRUE(WaitUntil([&] { return a.Problem().empty() && b.Problem().empty(); }))
      << a.Problem() << " / " << b.Problem();
  std::vector<std::string> users;
  for (int i = 0; i < 12; ++i) users.push_back("acl-u" + std::to_string(i));
  Watch(b, users);
  b.EnterSpace("acl-room-0");
  for (std::size_t i = 0; i < users.size(); ++i) {
    const std::string space = "acl-room-" + std::to_string(i % 4);
    ASSERT_TRUE(
        Put(a, Assignment{users[i], space, "vs-1", 0, "r1", i + 1, Clock::now()}, 0).written)
        << users[i];
  }
  for (const auto& u : users) {
    EXPECT_TRUE(heard.WaitFor(ChangeOf(u, Kind::kAssigned)).has_value()) << u;
  }
  a.PublishFleet(
      EncodeGossip({"r1", GossipRegistered{{"sfu-1", "wss://sfu-1.example/", "eu", 100, true}}}));
  EXPECT_TRUE(WaitUntil([&] { return gossip.load(); })) << "fleet gossip never arrived";
  const auto admitted =
      Await<StoreResult<Admission>>([&](std::function<void(StoreResult<Admission>)> done) {
        a.Admit("sfu-1", 10, 100, 1000ms, std::move(done));
      });
  EXPECT_TRUE(admitted && std::holds_alternative<Admission>(*admitted));
  const auto counted =
      Await<StoreResult<HelloCounts>>([&](std::function<void(StoreResult<HelloCounts>)> done) {
        a.CountHello("acl-u0", "10.0.0.1", 1000ms, std::move(done));
      });
  EXPECT_TRUE(counted && std::holds_alternative<HelloCounts>(*counted));
  a.Stop();
  b.Stop();
  for (std::uint16_t port : fleet.ports()) {
    RawRedis raw(port);
    ASSERT_TRUE(raw.ok());
    const auto log = raw.Call({"ACL", "LOG"});
    ASSERT_TRUE(log && std::holds_alternative<RedisReply>(*log));
    std::string denied;
    for (const auto& entry : std::get<RedisReply>(*log).elements) {
      for (std::size_t i = 0; i + 1 < entry.elements.size(); i += 2) {
        if (entry.elements[i].str == "object") denied += entry.elements[i + 1].str + " ";
      }
    }
    EXPECT_TRUE(denied.empty()) << "denied on node " << port << ": " << denied;
  }
}

}  // namespace
}  // namespace vrouter::store
