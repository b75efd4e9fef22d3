// RedisClusterClient against real Redis Clusters made by `redis-cli --cluster create` (ctest
// label redis-cluster): commands routed to the shard of their key, a live reshard followed (MOVED
// and ASK) with commands running, a primary killed and its replica promoted, and what a node may
// answer from the store side (a redirect loop, a primary nobody answers at, unassigned slots).
#include "router/store/redis_cluster_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "router/store/cluster_slots.h"
#include "tests/support/redis_server.h"

namespace vrouter::store {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using vrouter::testing::ClusterFleet;
using vrouter::testing::ClusterNodeId;
using vrouter::testing::InlineCommand;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 10s;

class ClusterClientTest : public ::testing::Test {
 protected:
  ClusterClientTest() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~ClusterClientTest() override {
    if (client_) Run([&] { client_.reset(); });
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  void Run(const std::function<void()>& f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  void StartClient(ClusterFleet& fleet, const RedisTlsOptions& tls = {}) {
    RedisClusterOptions o;
    o.seeds.emplace_back("127.0.0.1",
                         tls.enabled ? fleet.nodes().front()->tls_port() : fleet.ports().front());
    o.node.tls = tls;
    o.node.connect_timeout = 500ms;
    o.node.command_timeout = 1000ms;
    o.node.backoff_min = 20ms;
    o.node.backoff_max = 200ms;
    o.refresh_interval = 1000ms;
    RedisHooks hooks;
    hooks.on_up = [this] { ++ups_; };
    hooks.on_down = [this](const std::string& why) {
      std::lock_guard lock(mu_);
      downs_.push_back(why);
    };
    hooks.on_message = [this](std::string_view channel, std::string_view payload) {
      std::lock_guard lock(mu_);
      messages_.push_back(std::string(channel) + " " + std::string(payload));
    };
    hooks.on_shard_lost = [this](const std::string& channel, const std::string&) {
      std::lock_guard lock(mu_);
      lost_.push_back(channel);
    };
    hooks.on_partial = [this](std::size_t down, const std::string& why) {
      std::lock_guard lock(mu_);
      partials_.push_back(std::to_string(down) + " " + why);
    };
    client_ = std::make_unique<RedisClusterClient>(io_, std::move(o), std::move(hooks));
    client_->Start();
    ASSERT_TRUE(Eventually([&] { return client_->up(); })) << "never up";
  }

  RedisResult Call(std::vector<std::string> args) {
    auto p = std::make_shared<std::promise<RedisResult>>();
    auto fut = p->get_future();
    asio::post(io_, [&, args = std::move(args), p]() mutable {
      client_->Command(std::move(args), [p](RedisResult r) { p->set_value(std::move(r)); });
    });
    if (fut.wait_for(kWait) != std::future_status::ready) {
      return RedisFailure{RedisFailureKind::kTimeout, "no answer in the test's bound"};
    }
    return fut.get();
  }

  static std::string Text(const RedisResult& r) {
    if (const auto* f = std::get_if<RedisFailure>(&r)) return "failure: " + f->message;
    const auto& reply = std::get<RedisReply>(r);
    return reply.type == RedisReply::Type::kInteger ? std::to_string(reply.integer) : reply.str;
  }

  static bool Eventually(const std::function<bool()>& pred,
                         std::chrono::milliseconds bound = kWait) {
    const auto deadline = Clock::now() + bound;
    while (!pred()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  // A key whose slot is below `below` (the slots a reshard of the first node moves first).
  static std::string KeyInSlotsBelow(std::uint16_t below, int nth) {
    for (int i = 0, found = 0;; ++i) {
      std::string key = "k" + std::to_string(i);
      if (cluster::KeySlot(key) < below && found++ == nth) return key;
    }
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::unique_ptr<RedisClusterClient> client_;
  std::atomic<int> ups_{0};
  std::mutex mu_;
  std::vector<std::string> downs_, messages_, lost_, partials_;
};

TEST_F(ClusterClientTest, RoutesEveryKeyToItsShardAndPubSubSpansTheCluster) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  StartClient(fleet);
  std::vector<std::string> primaries;
  Run([&] { primaries = client_->Primaries(); });
  EXPECT_EQ(primaries.size(), 3u);
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(Text(Call({"SET", "key-" + std::to_string(i), std::to_string(i)})), "OK") << i;
  }
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(Text(Call({"GET", "key-" + std::to_string(i)})), std::to_string(i)) << i;
  }
  for (std::uint16_t port : fleet.ports()) {  // every shard holds some
    EXPECT_EQ(InlineCommand(port, "DBSIZE").find(":0\r\n"), std::string::npos) << port;
  }
  // A script's keys in one slot (a hash tag) run on that slot's shard.
  EXPECT_EQ(Text(Call({"EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", "1", "{t}a", "v"})),
            "OK");
  // Subscriptions live on one primary; a PUBLISH on any reaches them.
  std::promise<void> confirmed;
  asio::post(io_, [&] { client_->Subscribe("news", [&] { confirmed.set_value(); }); });
  ASSERT_EQ(confirmed.get_future().wait_for(kWait), std::future_status::ready);
  for (std::uint16_t port : fleet.ports()) {
    InlineCommand(port, "PUBLISH news from-" + std::to_string(port));
  }
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return messages_.size() == 3;
  }));
}

// Slots move from the first primary to the second while commands on keys in them run: MOVED and
// ASK are followed, no command fails, the values are all there after.
TEST_F(ClusterClientTest, FollowsALiveReshard) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  StartClient(fleet);
  constexpr int kKeys = 50;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_EQ(Text(Call({"SET", KeyInSlotsBelow(200, i), "v0"})), "OK");
  }
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::mutex failures_mu;
  std::vector<std::string> failures;
  std::thread traffic([&] {
    for (int round = 1; !stop; ++round) {
      for (int i = 0; i < kKeys && !stop; ++i) {
        const std::string key = KeyInSlotsBelow(200, i);
        const std::string got = Text(Call({"INCR", key + ":n"}));
        const std::string read = Text(Call({"GET", key}));
        if (got.starts_with("failure") || read != "v0") {
          std::lock_guard lock(failures_mu);
          failures.push_back(key + ": " + got + " / " + read);
        } else {
          ++ok;
        }
      }
    }
  });
  const auto ports = fleet.ports();
  const bool resharded = vrouter::testing::ReshardCluster(ports[0], ports[1], 200);
  std::this_thread::sleep_for(500ms);
  stop = true;
  traffic.join();
  ASSERT_TRUE(resharded);
  std::cout << "reshard of 200 slots under traffic: " << ok.load() << " commands answered, "
            << failures.size() << " failed\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, e.g. " << failures.front();
  EXPECT_GT(ok.load(), 0);
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(Text(Call({"GET", KeyInSlotsBelow(200, i)})), "v0");
  }
  // The moved keys now live on the second primary.
  EXPECT_EQ(InlineCommand(ports[0], "DBSIZE").find(":0\r\n") != std::string::npos ||
                InlineCommand(ports[1], "DBSIZE").find(":0\r\n") == std::string::npos,
            true);
}

// rediss-cluster://: every node over TLS (client certificate included), the slot map naming the
// TLS ports, commands on every shard and a shard channel.
TEST_F(ClusterClientTest, WorksOverTls) {
  ClusterFleet fleet;
  std::string error;
  const std::string dir = VROUTER_TEST_CERT_DIR;
  ASSERT_TRUE(fleet.Start(3, 0, error, dir)) << error;
  StartClient(fleet,
              RedisTlsOptions{true, dir + "/cert.pem", dir + "/cert.pem", dir + "/key.pem", ""});
  std::vector<std::string> primaries;
  Run([&] { primaries = client_->Primaries(); });
  ASSERT_EQ(primaries.size(), 3u);
  for (const auto& node : fleet.nodes()) {  // the TLS ports, not the plain ones
    EXPECT_NE(std::find(primaries.begin(), primaries.end(),
                        "127.0.0.1:" + std::to_string(node->tls_port())),
              primaries.end());
  }
  for (int i = 0; i < 60; ++i) {
    ASSERT_EQ(Text(Call({"SET", "tls-" + std::to_string(i), std::to_string(i)})), "OK") << i;
  }
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(Text(Call({"GET", "tls-" + std::to_string(i)})), std::to_string(i));
  }
  auto confirmed = std::make_shared<std::promise<void>>();
  asio::post(io_, [&, confirmed] {
    client_->SubscribeShard("ch:{tls}", [confirmed] { confirmed->set_value(); });
  });
  ASSERT_EQ(confirmed->get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(Text(Call({"SPUBLISH", "ch:{tls}", "over tls"})), "1");
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return std::find(messages_.begin(), messages_.end(), "ch:{tls} over tls") != messages_.end();
  }));
}

// Sharded pub/sub: a shard channel is held by the primary that serves its slot, and nobody else;
// SPUBLISH reaches it there. When its slot moves (a live reshard), Redis drops the subscription,
// the client says so (on_shard_lost) once its map knows the new owner, and subscribing again
// lands on the new owner. A plain RedisClient pointed at the wrong node hears the redirection as
// a lost channel, not as an outage.
TEST_F(ClusterClientTest, ShardChannelsLiveOnTheirSlotsPrimaryAndFollowTheSlot) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  StartClient(fleet);
  const auto ports = fleet.ports();
  const std::string channel = "ch:{" + KeyInSlotsBelow(200, 0) + "}";  // the first primary's
  // As the store does: subscribe, and again each time the channel is lost (a SSUBSCRIBE that
  // reached the old owner before the map changed is answered MOVED, then lost).
  auto subscribe = [&] {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto confirmed = std::make_shared<std::promise<void>>();
      asio::post(io_, [&, confirmed] {
        client_->SubscribeShard(channel, [confirmed] { confirmed->set_value(); });
      });
      if (confirmed->get_future().wait_for(2s) == std::future_status::ready) return true;
    }
    return false;
  };
  auto heard = [&](const std::string& payload) {
    return Eventually([&] {
      std::lock_guard lock(mu_);
      return std::find(messages_.begin(), messages_.end(), channel + " " + payload) !=
             messages_.end();
    });
  };
  auto holders = [&] {
    std::vector<std::uint16_t> out;
    for (std::uint16_t port : ports) {
      if (InlineCommand(port, "PUBSUB SHARDCHANNELS").find(channel) != std::string::npos) {
        out.push_back(port);
      }
    }
    return out;
  };
  ASSERT_TRUE(subscribe()) << "SSUBSCRIBE never confirmed";
  EXPECT_EQ(holders(), std::vector<std::uint16_t>{ports[0]});
  // Classic channels stay empty: nothing of it travels to the other shards.
  for (std::uint16_t port : ports) {
    EXPECT_EQ(InlineCommand(port, "PUBSUB CHANNELS").find(channel), std::string::npos) << port;
  }
  EXPECT_EQ(Text(Call({"SPUBLISH", channel, "one"})), "1");
  EXPECT_TRUE(heard("one"));

  ASSERT_TRUE(vrouter::testing::ReshardCluster(ports[0], ports[1], 200));
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return std::find(lost_.begin(), lost_.end(), channel) != lost_.end();
  })) << "the slot moved and the client never said the channel was lost";
  ASSERT_TRUE(subscribe()) << "SSUBSCRIBE after the move never confirmed";
  EXPECT_EQ(holders(), std::vector<std::uint16_t>{ports[1]});
  EXPECT_EQ(Text(Call({"SPUBLISH", channel, "two"})), "1");
  EXPECT_TRUE(heard("two"));
  EXPECT_EQ(ups_.load(), 1) << "a moved channel is not an outage";

  // A single-node client at the node that no longer serves the slot.
  std::atomic<bool> up{false};
  std::promise<std::string> redirected;
  RedisOptions o;
  o.port = ports[0];
  RedisHooks h;
  h.on_up = [&] { up = true; };
  h.on_shard_lost = [&](const std::string& ch, const std::string& redirect) {
    redirected.set_value(ch + " " + redirect);
  };
  std::unique_ptr<RedisClient> single;
  Run([&] {
    single = std::make_unique<RedisClient>(io_, o, std::move(h));
    single->Start();
    single->SubscribeShard(channel, [] { ADD_FAILURE() << "confirmed on the wrong node"; });
  });
  auto got = redirected.get_future();
  ASSERT_EQ(got.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(got.get(), channel + " MOVED " + std::to_string(cluster::KeySlot(channel)) +
                           " 127.0.0.1:" + std::to_string(ports[1]));
  EXPECT_TRUE(up.load());
  Run([&] {
    EXPECT_TRUE(single->up()) << "a redirected SSUBSCRIBE ended the session";
    single.reset();
  });
}

// kill -9 of a primary: only its shard stops (its keys fail typed, at once; the other shards'
// work on and the client stays up), the cluster promotes its replica, and writes to that shard
// resume by themselves.
TEST_F(ClusterClientTest, FollowsAFailover) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 1, error)) << error;
  StartClient(fleet);
  const std::string key = KeyInSlotsBelow(5000, 0);  // the first primary's slots
  std::string elsewhere;                             // another shard's
  for (int i = 0; elsewhere.empty(); ++i) {
    if (cluster::KeySlot("e" + std::to_string(i)) > 6000) elsewhere = "e" + std::to_string(i);
  }
  ASSERT_EQ(Text(Call({"SET", key, "before"})), "OK");
  std::this_thread::sleep_for(300ms);  // replicated (loopback): WAIT names no key to route by
  const auto killed = Clock::now();
  fleet.nodes().front()->Kill();
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return !partials_.empty();
  })) << "the dead primary was never reported";
  int other_shard_ok = 0, other_shard_calls = 0, refused = 0;
  std::optional<Clock::duration> resumed;
  while (!resumed && Clock::now() - killed < 30s) {
    ++other_shard_calls;
    if (Text(Call({"SET", elsewhere, "on"})) == "OK") ++other_shard_ok;
    const RedisResult r = Call({"SET", key, "after"});
    if (std::holds_alternative<RedisReply>(r)) {
      resumed = Clock::now() - killed;
    } else {
      EXPECT_EQ(std::get<RedisFailure>(r).kind, RedisFailureKind::kDisconnected);
      ++refused;
      std::this_thread::sleep_for(20ms);
    }
  }
  ASSERT_TRUE(resumed.has_value()) << "writes to the killed primary's shard never resumed";
  std::cout << "writes to the shard resumed "
            << std::chrono::duration_cast<std::chrono::milliseconds>(*resumed).count()
            << " ms after kill -9 of its primary (node timeout 1 s); meanwhile " << refused
            << " refused there (typed), " << other_shard_ok << " of " << other_shard_calls
            << " answered on another shard\n";
  EXPECT_EQ(other_shard_ok, other_shard_calls);
  EXPECT_EQ(Text(Call({"GET", key})), "after");
  EXPECT_TRUE(client_->up());
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return partials_.back() == "0 ";
  })) << "never whole again after the promotion";
  std::lock_guard lock(mu_);
  EXPECT_TRUE(downs_.empty()) << "one primary down took the whole client down: " << downs_[0];
  EXPECT_NE(partials_.front().find("127.0.0.1:" + std::to_string(fleet.ports().front())),
            std::string::npos)
      << partials_.front();
}

// What a cluster node may answer that must not hang or spin the client: a redirect loop (a slot
// MOVED back and forth) fails the command after kMaxRedirects, a MOVED to a node nobody listens
// on fails it too.
TEST_F(ClusterClientTest, RedirectLoopsAndUnreachableTargetsFailTyped) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  StartClient(fleet);
  const auto ports = fleet.ports();
  const std::string key = KeyInSlotsBelow(100, 0);
  const std::uint16_t slot = cluster::KeySlot(key);
  // Each of the first two nodes believes the other serves the slot: a loop.
  InlineCommand(ports[0],
                "CLUSTER SETSLOT " + std::to_string(slot) + " NODE " + ClusterNodeId(ports[1]));
  InlineCommand(ports[1],
                "CLUSTER SETSLOT " + std::to_string(slot) + " NODE " + ClusterNodeId(ports[0]));
  const auto started = Clock::now();
  const RedisResult r = Call({"GET", key});
  ASSERT_TRUE(std::holds_alternative<RedisFailure>(r)) << Text(r);
  EXPECT_EQ(std::get<RedisFailure>(r).kind, RedisFailureKind::kDisconnected);
  EXPECT_LT(Clock::now() - started, 5s);
}

// A primary gone with nobody to take its slots over (no replica): the map names a node nobody
// answers at. Commands for its slots fail typed and fast, and the client reports itself down,
// naming the node (the store then refuses writes with the retryable `unavailable`).
TEST_F(ClusterClientTest, ADeadPrimaryWithoutReplicaFailsItsSlotsTyped) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  StartClient(fleet);
  const std::string key = KeyInSlotsBelow(100, 0);  // the first primary's
  fleet.nodes().front()->Kill();
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return !partials_.empty();
  })) << "never noticed";
  const auto started = Clock::now();
  const RedisResult r = Call({"GET", key});
  ASSERT_TRUE(std::holds_alternative<RedisFailure>(r)) << Text(r);
  EXPECT_EQ(std::get<RedisFailure>(r).kind, RedisFailureKind::kDisconnected);
  EXPECT_NE(std::get<RedisFailure>(r).message.find(std::to_string(fleet.ports().front())),
            std::string::npos)
      << std::get<RedisFailure>(r).message;
  EXPECT_LT(Clock::now() - started, 5s);
  // The other shards answer; the client is up all along.
  for (int i = 0; i < 20; ++i) {
    const std::string other = "o" + std::to_string(i);
    if (cluster::KeySlot(other) < 5500) continue;
    EXPECT_EQ(Text(Call({"SET", other, "v"})), "OK") << other;
  }
  EXPECT_TRUE(client_->up());
  std::lock_guard lock(mu_);
  EXPECT_TRUE(downs_.empty());
  EXPECT_EQ(partials_.front(),
            "1 primaries down: 127.0.0.1:" + std::to_string(fleet.ports().front()));
}

// Slots nobody serves (an operator's DELSLOTS): the client says so and is down; commands for
// those slots fail typed, never hang.
TEST_F(ClusterClientTest, UnassignedSlotsAreReportedAndFailTyped) {
  ClusterFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(3, 0, error)) << error;
  StartClient(fleet);
  for (std::uint16_t port : fleet.ports()) InlineCommand(port, "CLUSTER DELSLOTSRANGE 0 99");
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return std::any_of(partials_.begin(), partials_.end(), [](const std::string& why) {
      return why.find("100 slots have no primary") != std::string::npos;
    });
  })) << "never reported the unassigned slots";
  const RedisResult r = Call({"GET", KeyInSlotsBelow(100, 0)});
  ASSERT_TRUE(std::holds_alternative<RedisFailure>(r)) << Text(r);
  EXPECT_EQ(std::get<RedisFailure>(r).kind, RedisFailureKind::kDisconnected);
  // The slots that have a primary work on.
  std::string served;
  for (int i = 0; served.empty(); ++i) {
    if (cluster::KeySlot("s" + std::to_string(i)) >= 100) served = "s" + std::to_string(i);
  }
  EXPECT_EQ(Text(Call({"SET", served, "v"})), "OK");
  EXPECT_TRUE(client_->up());
}

}  // namespace
}  // namespace vrouter::store
