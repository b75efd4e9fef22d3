// RedisClient against a real redis-server (one per test, 127.0.0.1, a free port): commands,
// pipelining, scripts, pub/sub, and the failure paths (stalled, restarted, killed Redis, full
// queue, wrong password). The client runs on an io_context thread; the test thread waits on
// futures and condition variables with bounded waits.
#include "router/store/redis_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/redis_server.h"

namespace vrouter::store {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using vrouter::testing::RedisServer;
using vrouter::testing::RedisServerOptions;
using Type = RedisReply::Type;

constexpr auto kWait = 10s;  // the bound on every wait

// An io_context on its own thread.
class IoThread {
 public:
  IoThread() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~IoThread() { Stop(); }

  asio::io_context& io() { return io_; }

  // Runs `f` on the io thread and waits for it.
  void Run(const std::function<void()>& f) {
    std::promise<void> done;
    auto fut = done.get_future();
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    ASSERT_EQ(fut.wait_for(kWait), std::future_status::ready);
  }

  void Stop() {
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// What the hooks saw (they run on the io thread; the test thread waits here).
class Recorder {
 public:
  RedisHooks Hooks() {
    RedisHooks h;
    h.on_up = [this] { Update([&] { ++ups; }); };
    h.on_down = [this](const std::string& why) { Update([&] { downs.push_back(why); }); };
    h.on_message = [this](std::string_view channel, std::string_view payload) {
      Update(
          [&] { log.push_back("message " + std::string(channel) + " " + std::string(payload)); });
    };
    h.on_command = [this](double, bool ok) {
      Update([&] { ++(ok ? commands_ok : commands_failed); });
    };
    h.on_reconnect_attempt = [this] { Update([&] { ++reconnects; }); };
    return h;
  }

  void Note(const std::string& entry) {
    Update([&] { log.push_back(entry); });
  }

  // Waits (bounded) until `pred`, evaluated under the lock, holds. Woken by every hook, and
  // re-checked every 10 ms for state the hooks do not report (pending()).
  bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mu);
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      cv.wait_for(lock, 10ms);
    }
    return true;
  }

  std::mutex mu;
  int ups = 0;
  int reconnects = 0;
  int commands_ok = 0, commands_failed = 0;
  std::vector<std::string> downs;
  std::vector<std::string> log;  // messages and confirmations, in order

 private:
  void Update(const std::function<void()>& f) {
    {
      std::lock_guard lock(mu);
      f();
    }
    cv.notify_all();
  }

  std::condition_variable cv;
};

std::string Describe(const RedisResult& r) {
  if (const auto* f = std::get_if<RedisFailure>(&r)) {
    return "failure " + std::to_string(static_cast<int>(f->kind)) + ": " + f->message;
  }
  const auto& reply = std::get<RedisReply>(r);
  return "reply type " + std::to_string(static_cast<int>(reply.type)) + " str '" + reply.str +
         "' integer " + std::to_string(reply.integer);
}

// The reply, or a nil reply and a test failure.
RedisReply ReplyOf(const RedisResult& r) {
  if (const auto* reply = std::get_if<RedisReply>(&r)) return *reply;
  ADD_FAILURE() << "expected a reply, got " << Describe(r);
  return {};
}

std::optional<RedisFailureKind> FailureOf(const RedisResult& r) {
  if (const auto* f = std::get_if<RedisFailure>(&r)) return f->kind;
  return std::nullopt;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Destroyed on the io thread, as the client requires.
    if (client_) io_.Run([&] { client_.reset(); });
    io_.Stop();
  }

  void StartServer(RedisServerOptions options = {}) {
    server_ = std::make_unique<RedisServer>(std::move(options));
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  RedisOptions Options() {
    RedisOptions o;
    o.port = server_->port();
    o.backoff_min = 20ms;
    o.backoff_max = 200ms;
    return o;
  }

  void StartClient(RedisOptions options, bool wait_up = true) {
    client_ = std::make_unique<RedisClient>(io_.io(), std::move(options), rec_.Hooks());
    client_->Start();
    if (wait_up) {
      ASSERT_TRUE(rec_.WaitFor([&] { return rec_.ups >= 1; })) << "never up";
      ASSERT_TRUE(client_->up());
    }
  }

  // A future for one command's result.
  std::future<RedisResult> Send(std::vector<std::string> args) {
    auto p = std::make_shared<std::promise<RedisResult>>();
    auto fut = p->get_future();
    client_->Command(std::move(args), [p](RedisResult r) { p->set_value(std::move(r)); });
    return fut;
  }

  static RedisResult Await(std::future<RedisResult>& fut) {
    if (fut.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "no result within 10 s";
      return RedisFailure{RedisFailureKind::kStopped, "test wait timed out"};
    }
    return fut.get();
  }

  RedisResult Call(std::vector<std::string> args) {
    auto fut = Send(std::move(args));
    return Await(fut);
  }

  RedisResult CallEval(const RedisScript& script, std::vector<std::string> keys,
                       std::vector<std::string> args) {
    auto p = std::make_shared<std::promise<RedisResult>>();
    auto fut = p->get_future();
    client_->Eval(script, std::move(keys), std::move(args),
                  [p](RedisResult r) { p->set_value(std::move(r)); });
    return Await(fut);
  }

  // Polls a command until its integer reply is `want` (state that changes on the server side
  // without a notification to the test, e.g. a re-subscription).
  bool PollInteger(const std::vector<std::string>& args, std::size_t element, std::int64_t want) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      RedisReply r = ReplyOf(Call(args));
      const RedisReply& v =
          r.type == Type::kArray && r.elements.size() > element ? r.elements[element] : r;
      if (v.type == Type::kInteger && v.integer == want) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  IoThread io_;
  Recorder rec_;
  Recorder other_rec_;  // for a second client
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisClient> client_;
};

TEST_F(RedisClientTest, CommandRoundtrip) {
  StartServer();
  RedisOptions o = Options();
  o.db = 2;
  StartClient(o);

  RedisReply r = ReplyOf(Call({"SET", "k", "v"}));
  EXPECT_EQ(r.type, Type::kStatus);
  EXPECT_EQ(r.str, "OK");
  r = ReplyOf(Call({"GET", "k"}));
  EXPECT_EQ(r.type, Type::kString);
  EXPECT_EQ(r.str, "v");
  r = ReplyOf(Call({"INCR", "n"}));
  EXPECT_EQ(r.type, Type::kInteger);
  EXPECT_EQ(r.integer, 1);
  EXPECT_EQ(ReplyOf(Call({"GET", "missing"})).type, Type::kNil);
  // Binary-safe arguments and values.
  const std::string binary("a\0b\r\n", 5);
  EXPECT_EQ(ReplyOf(Call({"SET", "bin", binary})).type, Type::kStatus);
  EXPECT_EQ(ReplyOf(Call({"GET", "bin"})).str, binary);
  EXPECT_EQ(ReplyOf(Call({"RPUSH", "l", "a", "b"})).integer, 2);
  r = ReplyOf(Call({"LRANGE", "l", "0", "-1"}));
  ASSERT_EQ(r.type, Type::kArray);
  ASSERT_EQ(r.elements.size(), 2u);
  EXPECT_EQ(r.elements[0].str, "a");
  EXPECT_EQ(r.elements[1].str, "b");
  r = ReplyOf(Call({"NOSUCHCOMMAND", "x"}));
  EXPECT_EQ(r.type, Type::kError);
  EXPECT_NE(r.str.find("unknown command"), std::string::npos) << r.str;
  r = ReplyOf(Call({"INCR", "l"}));
  EXPECT_EQ(r.type, Type::kError);
  EXPECT_EQ(r.str.rfind("WRONGTYPE", 0), 0u) << r.str;
  // The SELECT of the handshake.
  r = ReplyOf(Call({"CLIENT", "INFO"}));
  EXPECT_NE(r.str.find(" db=2 "), std::string::npos) << r.str;
  // Refused client-side: it would turn the commands connection into a subscriber.
  EXPECT_EQ(ReplyOf(Call({"SUBSCRIBE", "x"})).type, Type::kError);

  // The callback runs later, even when Command is called on the io thread.
  bool called = false, inline_call = true;
  std::promise<void> done;
  io_.Run([&] {
    client_->Command({"PING"}, [&](RedisResult) {
      called = true;
      done.set_value();
    });
    inline_call = called;
  });
  ASSERT_EQ(done.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_FALSE(inline_call);
  EXPECT_TRUE(rec_.WaitFor([&] { return rec_.commands_ok >= 10; }));
  EXPECT_EQ(client_->pending(), 0u);
}

TEST_F(RedisClientTest, PipelinedIncrsAnsweredInOrder) {
  StartServer();
  RedisOptions o = Options();
  o.max_pending = 20000;
  StartClient(o);

  constexpr int kCount = 10000;
  std::vector<std::int64_t> seen;  // io thread only until `all` is ready
  seen.reserve(kCount);
  int failures = 0;
  std::promise<void> all;
  for (int i = 0; i < kCount; ++i) {
    client_->Command({"INCR", "counter"}, [&](RedisResult r) {
      if (const auto* reply = std::get_if<RedisReply>(&r)) {
        seen.push_back(reply->integer);
      } else {
        ++failures;
      }
      if (static_cast<int>(seen.size()) + failures == kCount) all.set_value();
    });
  }
  ASSERT_EQ(all.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(seen[i], i + 1) << "out of order at " << i;
  }
  EXPECT_EQ(ReplyOf(Call({"GET", "counter"})).str, std::to_string(kCount));
  EXPECT_EQ(client_->pending(), 0u);
}

TEST_F(RedisClientTest, EvalFallsBackToEvalOnNoscriptThenUsesEvalsha) {
  StartServer();
  StartClient(Options());
  ASSERT_EQ(ReplyOf(Call({"SCRIPT", "FLUSH"})).type, Type::kStatus);
  ASSERT_EQ(ReplyOf(Call({"CONFIG", "RESETSTAT"})).type, Type::kStatus);

  const RedisScript incr("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  RedisReply r = ReplyOf(CallEval(incr, {"e"}, {"5"}));  // NOSCRIPT -> EVAL
  EXPECT_EQ(r.type, Type::kInteger);
  EXPECT_EQ(r.integer, 5);
  r = ReplyOf(CallEval(incr, {"e"}, {"2"}));  // cached now: EVALSHA
  EXPECT_EQ(r.integer, 7);

  const std::string stats = ReplyOf(Call({"INFO", "commandstats"})).str;
  EXPECT_NE(stats.find("cmdstat_eval:calls=1,"), std::string::npos) << stats;
  EXPECT_NE(stats.find("cmdstat_evalsha:calls=2,"), std::string::npos) << stats;
  // Our SHA1 is Redis's.
  EXPECT_EQ(ReplyOf(Call({"SCRIPT", "LOAD", incr.source()})).str, incr.sha1());

  // A script's error is a reply, not a failure.
  const RedisScript boom("return redis.error_reply('boom')");
  r = ReplyOf(CallEval(boom, {}, {}));
  EXPECT_EQ(r.type, Type::kError);
  EXPECT_NE(r.str.find("boom"), std::string::npos) << r.str;
  const RedisScript broken("return redis.call('INCR')");  // wrong arity: a runtime error
  EXPECT_EQ(ReplyOf(CallEval(broken, {}, {})).type, Type::kError);
}

TEST_F(RedisClientTest, SubscribeConfirmsThenDeliversMessages) {
  StartServer();
  StartClient(Options());

  std::promise<void> confirmed;
  client_->Subscribe("news", [&] {
    rec_.Note("confirmed");
    confirmed.set_value();
  });
  ASSERT_EQ(confirmed.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(ReplyOf(Call({"PUBLISH", "news", "hello"})).integer, 1);
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.log.size() >= 2; }));
  {
    std::lock_guard lock(rec_.mu);
    EXPECT_EQ(rec_.log, (std::vector<std::string>{"confirmed", "message news hello"}));
  }

  client_->Unsubscribe("news");
  EXPECT_TRUE(PollInteger({"PUBSUB", "NUMSUB", "news"}, 1, 0));
  EXPECT_EQ(ReplyOf(Call({"PUBLISH", "news", "ignored"})).integer, 0);
  EXPECT_EQ(client_->pending(), 0u);
}

TEST_F(RedisClientTest, StalledRedisTimesOutThenRecovers) {
  StartServer();
  RedisOptions o = Options();
  o.command_timeout = 300ms;
  o.connect_timeout = 300ms;
  StartClient(o);

  ASSERT_TRUE(server_->Pause());
  const auto t0 = std::chrono::steady_clock::now();
  RedisResult r = Call({"GET", "k"});
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(FailureOf(r), RedisFailureKind::kTimeout) << Describe(r);
  EXPECT_NE(std::get<RedisFailure>(r).message.find("300 ms"), std::string::npos);
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LE(elapsed, 1500ms);
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.downs.size() == 1; }));
  {
    std::lock_guard lock(rec_.mu);
    EXPECT_EQ(rec_.downs[0], "command timed out after 300 ms");
  }
  EXPECT_FALSE(client_->up());
  r = Call({"GET", "k"});
  EXPECT_EQ(FailureOf(r), RedisFailureKind::kDisconnected) << Describe(r);
  // Reconnection attempts meet the stalled server and time out in the handshake.
  EXPECT_TRUE(rec_.WaitFor([&] { return rec_.reconnects >= 2; }));

  ASSERT_TRUE(server_->Resume());
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.ups == 2; }));
  EXPECT_EQ(ReplyOf(Call({"SET", "k", "v"})).str, "OK");
  EXPECT_EQ(ReplyOf(Call({"GET", "k"})).str, "v");
  std::lock_guard lock(rec_.mu);
  EXPECT_EQ(rec_.downs.size(), 1u) << "on_down once per outage";
}

TEST_F(RedisClientTest, RestartReconnectsAndResubscribes) {
  StartServer();
  StartClient(Options());
  std::promise<void> confirmed;
  client_->Subscribe("chan", [&] { confirmed.set_value(); });
  ASSERT_EQ(confirmed.get_future().wait_for(kWait), std::future_status::ready);

  ASSERT_TRUE(server_->Restart()) << server_->error();
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.downs.size() == 1 && rec_.ups == 2; }));
  // The resubscription was sent before on_up; wait until Redis has it.
  ASSERT_TRUE(PollInteger({"PUBSUB", "NUMSUB", "chan"}, 1, 1));
  EXPECT_EQ(ReplyOf(Call({"PUBLISH", "chan", "after"})).integer, 1);
  EXPECT_TRUE(
      rec_.WaitFor([&] { return !rec_.log.empty() && rec_.log.back() == "message chan after"; }));
}

TEST_F(RedisClientTest, KilledRedisFailsCommandsWithDisconnected) {
  StartServer();
  StartClient(Options());

  // A command in flight when the server dies (BLPOP blocks on an empty list).
  auto blocked = Send({"BLPOP", "empty", "0"});
  ASSERT_TRUE(rec_.WaitFor([&] { return client_->pending() == 1; }));
  server_->Kill();
  RedisResult r = Await(blocked);
  EXPECT_EQ(FailureOf(r), RedisFailureKind::kDisconnected) << Describe(r);
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.downs.size() == 1; }));
  r = Call({"GET", "k"});
  ASSERT_EQ(FailureOf(r), RedisFailureKind::kDisconnected) << Describe(r);
  EXPECT_FALSE(std::get<RedisFailure>(r).message.empty());
  EXPECT_TRUE(rec_.WaitFor([&] { return rec_.reconnects >= 2; }));  // keeps trying
  {
    std::lock_guard lock(rec_.mu);
    EXPECT_NE(rec_.downs[0].find("lost"), std::string::npos) << rec_.downs[0];
    EXPECT_EQ(rec_.ups, 1);
  }
  EXPECT_EQ(client_->pending(), 0u);
}

TEST_F(RedisClientTest, FirstConnectionRefusedThenServerAppears) {
  StartServer();
  ASSERT_TRUE(server_->Stop());
  StartClient(Options(), /*wait_up=*/false);
  // Wanted while down: subscribed (and confirmed) once connected.
  std::promise<void> confirmed;
  client_->Subscribe("early", [&] { confirmed.set_value(); });
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.downs.size() == 1; }));
  {
    std::lock_guard lock(rec_.mu);
    EXPECT_NE(rec_.downs[0].find("refused"), std::string::npos) << rec_.downs[0];
  }
  RedisResult r = Call({"PING"});
  ASSERT_EQ(FailureOf(r), RedisFailureKind::kDisconnected);
  EXPECT_NE(std::get<RedisFailure>(r).message.find("refused"), std::string::npos);

  ASSERT_TRUE(server_->Restart()) << server_->error();
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.ups == 1; }));
  EXPECT_EQ(ReplyOf(Call({"PING"})).str, "PONG");
  ASSERT_EQ(confirmed.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(ReplyOf(Call({"PUBLISH", "early", "hi"})).integer, 1);
  EXPECT_TRUE(
      rec_.WaitFor([&] { return !rec_.log.empty() && rec_.log.back() == "message early hi"; }));
}

TEST_F(RedisClientTest, QueueFullBeyondMaxPending) {
  StartServer();
  RedisOptions o = Options();
  o.max_pending = 100;
  StartClient(o);

  // Issued on the io thread, so none can be answered before all are issued.
  int ok = 0, full = 0, other = 0;
  std::promise<void> all;
  io_.Run([&] {
    for (int i = 0; i < 150; ++i) {
      client_->Command({"PING"}, [&](RedisResult r) {
        auto kind = FailureOf(r);
        ++(!kind ? ok : *kind == RedisFailureKind::kQueueFull ? full : other);
        if (ok + full + other == 150) all.set_value();
      });
    }
  });
  ASSERT_EQ(all.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(full, 50);
  EXPECT_EQ(other, 0);
  EXPECT_TRUE(client_->up());  // a full queue is not an outage
}

TEST_F(RedisClientTest, StopFailsPendingWithStopped) {
  StartServer();
  StartClient(Options());
  ASSERT_TRUE(server_->Pause());
  auto stuck = Send({"GET", "k"});
  ASSERT_TRUE(rec_.WaitFor([&] { return client_->pending() == 1; }));
  client_->Stop();
  RedisResult r = Await(stuck);
  EXPECT_EQ(FailureOf(r), RedisFailureKind::kStopped) << Describe(r);
  r = Call({"GET", "k"});
  EXPECT_EQ(FailureOf(r), RedisFailureKind::kStopped) << Describe(r);
  EXPECT_FALSE(client_->up());
  std::lock_guard lock(rec_.mu);
  EXPECT_TRUE(rec_.downs.empty()) << "Stop is not an outage";
}

// An ACL user: AUTH USER PASSWORD; a user the server does not know is refused like a bad password.
TEST_F(RedisClientTest, AclUser) {
  StartServer(
      {.password = "", .acl_user = "app on >pw ~app:* -@all +ping +get +set", .tls_dir = ""});
  RedisOptions right = Options();
  right.username = "app";
  right.password = "pw";
  StartClient(right);
  EXPECT_EQ(ReplyOf(Call({"SET", "app:k", "v"})).str, "OK");
  const RedisReply denied = ReplyOf(Call({"SET", "other", "v"}));  // outside its keys
  EXPECT_EQ(denied.type, RedisReply::Type::kError);
  EXPECT_EQ(denied.str.rfind("NOPERM", 0), 0u) << denied.str;
  io_.Run([&] { client_.reset(); });

  Recorder& wrong_rec = other_rec_;
  RedisOptions wrong = Options();
  wrong.username = "nobody";
  wrong.password = "pw";
  client_ = std::make_unique<RedisClient>(io_.io(), wrong, wrong_rec.Hooks());
  client_->Start();
  ASSERT_TRUE(wrong_rec.WaitFor([&] { return wrong_rec.downs.size() == 1; }));
  std::lock_guard lock(wrong_rec.mu);
  EXPECT_EQ(wrong_rec.downs[0].rfind("AUTH failed: ", 0), 0u) << wrong_rec.downs[0];
}

TEST_F(RedisClientTest, Password) {
  StartServer({.password = "s3cret", .acl_user = "", .tls_dir = ""});
  RedisOptions right = Options();
  right.password = "s3cret";
  StartClient(right);
  EXPECT_EQ(ReplyOf(Call({"SET", "k", "v"})).str, "OK");
  EXPECT_EQ(ReplyOf(Call({"GET", "k"})).str, "v");
  io_.Run([&] { client_.reset(); });

  Recorder& wrong_rec = other_rec_;
  RedisOptions wrong = Options();
  wrong.password = "nope";
  client_ = std::make_unique<RedisClient>(io_.io(), wrong, wrong_rec.Hooks());
  client_->Start();
  ASSERT_TRUE(wrong_rec.WaitFor([&] { return wrong_rec.downs.size() == 1; }));
  {
    std::lock_guard lock(wrong_rec.mu);
    EXPECT_EQ(wrong_rec.downs[0].rfind("AUTH failed: ", 0), 0u) << wrong_rec.downs[0];
  }
  RedisResult r = Call({"GET", "k"});
  ASSERT_EQ(FailureOf(r), RedisFailureKind::kDisconnected);
  EXPECT_NE(std::get<RedisFailure>(r).message.find("AUTH failed"), std::string::npos)
      << std::get<RedisFailure>(r).message;
  EXPECT_TRUE(wrong_rec.WaitFor([&] { return wrong_rec.reconnects >= 2; }));  // keeps retrying
  std::lock_guard lock(wrong_rec.mu);
  EXPECT_EQ(wrong_rec.ups, 0);
  EXPECT_EQ(wrong_rec.downs.size(), 1u);
}

// The first reason a client with `options` gives for being down (it never comes up).
std::string FirstDown(IoThread& io, RedisOptions options) {
  Recorder rec;
  auto client = std::make_unique<RedisClient>(io.io(), std::move(options), rec.Hooks());
  client->Start();
  const bool down = rec.WaitFor([&] { return !rec.downs.empty(); });
  io.Run([&] { client.reset(); });
  std::lock_guard lock(rec.mu);
  EXPECT_TRUE(down) << "never reported down";
  EXPECT_EQ(rec.ups, 0);
  return rec.downs.empty() ? "" : rec.downs[0];
}

RedisTlsOptions TestTls() {
  const std::string dir = VROUTER_TEST_CERT_DIR;
  return {true, dir + "/cert.pem", dir + "/cert.pem", dir + "/key.pem", ""};
}

// Issue 18, rediss://: commands, scripts and pub/sub over TLS, with a client certificate (the
// server asks for one), the server's certificate verified against the CA and the address.
TEST_F(RedisClientTest, TlsWithAClientCertificate) {
  StartServer({.password = "", .acl_user = "", .tls_dir = VROUTER_TEST_CERT_DIR});
  RedisOptions o = Options();
  o.port = server_->tls_port();
  o.tls = TestTls();
  StartClient(o);
  EXPECT_EQ(ReplyOf(Call({"SET", "k", "v"})).str, "OK");
  EXPECT_EQ(ReplyOf(Call({"GET", "k"})).str, "v");
  const RedisScript script("return ARGV[1]");
  EXPECT_EQ(ReplyOf(CallEval(script, {}, {"over tls"})).str, "over tls");
  std::promise<void> confirmed;
  client_->Subscribe("news", [&] { confirmed.set_value(); });
  ASSERT_EQ(confirmed.get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(ReplyOf(Call({"PUBLISH", "news", "hello"})).integer, 1);
  EXPECT_TRUE(rec_.WaitFor([&] {
    return std::find(rec_.log.begin(), rec_.log.end(), "message news hello") != rec_.log.end();
  }));
  // A big reply arrives in many TLS records and reads.
  const std::string big(200'000, 'x');
  EXPECT_EQ(ReplyOf(Call({"SET", "big", big})).str, "OK");
  EXPECT_EQ(ReplyOf(Call({"GET", "big"})).str, big);
}

// rediss-sentinel://: the client asks a Sentinel over TLS, which watches a TLS-only primary
// over TLS too, and connects to the primary it names over TLS. Plain text to the Sentinel's TLS
// port fails and says where.
TEST_F(RedisClientTest, SentinelOverTls) {
  StartServer({.password = "", .acl_user = "", .tls_dir = VROUTER_TEST_CERT_DIR});
  RedisServerOptions watch;
  watch.sentinel_for = server_->tls_port();
  watch.tls_dir = VROUTER_TEST_CERT_DIR;
  RedisServer sentinel(watch);
  ASSERT_TRUE(sentinel.ok()) << sentinel.error();
  RedisOptions o = Options();
  o.tls = TestTls();
  o.sentinel.sentinels.emplace_back("127.0.0.1", sentinel.tls_port());
  o.sentinel.master_name = "vrouter";
  o.sentinel.tls = true;
  StartClient(o);
  EXPECT_EQ(ReplyOf(Call({"SET", "k", "over tls, via a Sentinel over tls"})).str, "OK");
  EXPECT_EQ(ReplyOf(Call({"GET", "k"})).str, "over tls, via a Sentinel over tls");

  RedisOptions plain = o;
  plain.sentinel.tls = false;
  plain.connect_timeout = 500ms;
  const std::string why = FirstDown(io_, plain);
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string(sentinel.tls_port())), std::string::npos) << why;
}

// redis://HOST:PORT may name a Redis Cluster node: the app asks before it picks the store's mode.
TEST_F(RedisClientTest, TellsAClusterNodeFromOneRedis) {
  std::string why;
  StartServer();
  EXPECT_EQ(RedisClient::IsClusterNode(Options(), 2s, why), false) << why;
  RedisServerOptions node;
  node.cluster_node = true;
  RedisServer cluster(node);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  RedisOptions o = Options();
  o.port = cluster.port();
  EXPECT_EQ(RedisClient::IsClusterNode(o, 2s, why), true) << why;
  // Nobody there: cannot tell, at once, and says why.
  o.port = 1;  // tcpmux: nothing listens there
  why.clear();
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(RedisClient::IsClusterNode(o, 2s, why), std::nullopt);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
  EXPECT_NE(why.find("refused"), std::string::npos) << why;
}

// What goes wrong with TLS says what: a certificate for another name, no client certificate, a CA
// file that cannot be read, plain text to the TLS port. None comes up; each keeps retrying.
TEST_F(RedisClientTest, TlsFailuresSayWhy) {
  StartServer({.password = "", .acl_user = "", .tls_dir = VROUTER_TEST_CERT_DIR});
  RedisOptions base = Options();
  base.port = server_->tls_port();
  base.tls = TestTls();
  base.connect_timeout = 500ms;

  RedisOptions other_name = base;
  other_name.tls.server_name = "redis.example";
  const std::string wrong_name = FirstDown(io_, other_name);
  EXPECT_NE(wrong_name.find("TLS handshake with 127.0.0.1:"), std::string::npos) << wrong_name;
  EXPECT_NE(wrong_name.find("certificate verify failed"), std::string::npos) << wrong_name;

  RedisOptions no_client_cert = base;
  no_client_cert.tls.cert_file.clear();
  no_client_cert.tls.key_file.clear();
  const std::string refused = FirstDown(io_, no_client_cert);
  EXPECT_FALSE(refused.empty());  // the server ends the handshake (or the session) at once

  RedisOptions missing_ca = base;
  missing_ca.tls.ca_file = "/nonexistent/ca.pem";
  const std::string no_ca = FirstDown(io_, missing_ca);
  EXPECT_NE(no_ca.find("cannot use the CA file /nonexistent/ca.pem"), std::string::npos) << no_ca;

  RedisOptions plain = base;
  plain.tls = {};
  EXPECT_FALSE(FirstDown(io_, plain).empty());  // no answer to the handshake, or closed
}

// A node answering what is not RESP is a protocol error: the session ends with the reader's
// reason, commands fail with kDisconnected, nothing crashes or hangs.
TEST_F(RedisClientTest, GarbageFromTheServerIsAProtocolError) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::atomic<bool> stop{false};
  std::thread garbage([&] {
    acceptor.non_blocking(true);
    std::vector<asio::ip::tcp::socket> held;
    while (!stop) {
      boost::system::error_code ec;
      asio::ip::tcp::socket s = acceptor.accept(ec);
      if (ec) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      asio::write(s, asio::buffer(std::string_view("HTTP/1.1 400 Bad Request\r\n\r\n")), ec);
      held.push_back(std::move(s));
    }
  });
  RedisOptions o;
  o.port = acceptor.local_endpoint().port();
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  const std::string why = FirstDown(io_, o);
  EXPECT_NE(why.find("protocol error from 127.0.0.1:"), std::string::npos) << why;
  stop = true;
  garbage.join();
}

// One command on a fresh client to 127.0.0.1:`port` (a replica, a Sentinel): its result.
RedisResult OneShot(IoThread& io, std::uint16_t port, std::vector<std::string> args) {
  Recorder rec;
  RedisOptions o;
  o.port = port;
  auto client = std::make_unique<RedisClient>(io.io(), o, rec.Hooks());
  client->Start();
  auto p = std::make_shared<std::promise<RedisResult>>();
  auto fut = p->get_future();
  rec.WaitFor([&] { return rec.ups >= 1; }, 5s);
  client->Command(std::move(args), [p](RedisResult r) { p->set_value(std::move(r)); });
  RedisResult r = fut.wait_for(kWait) == std::future_status::ready
                      ? fut.get()
                      : RedisResult(RedisFailure{RedisFailureKind::kStopped, "no answer"});
  io.Run([&] { client.reset(); });
  return r;
}

// Issue 18, Sentinel: the client finds the primary through three Sentinels, and when the primary
// is killed (kill -9) follows the failover to the promoted replica by itself: writes resume,
// data written before is there, and subscriptions are made again.
TEST_F(RedisClientTest, SentinelFollowsAFailoverAndResubscribes) {
  vrouter::testing::SentinelFleet fleet;
  std::string error;
  ASSERT_TRUE(fleet.Start(error)) << error;
  RedisOptions o;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  o.sentinel.master_name = vrouter::testing::SentinelFleet::kMasterName;
  for (std::uint16_t port : fleet.sentinel_ports())
    o.sentinel.sentinels.emplace_back("127.0.0.1", port);
  StartClient(o);
  EXPECT_EQ(ReplyOf(Call({"SET", "before", "1"})).str, "OK");
  EXPECT_EQ(ReplyOf(Call({"WAIT", "1", "2000"})).integer, 1);  // on the replica too
  std::promise<void> confirmed;
  client_->Subscribe("news", [&] { confirmed.set_value(); });
  ASSERT_EQ(confirmed.get_future().wait_for(kWait), std::future_status::ready);

  const auto killed = std::chrono::steady_clock::now();
  fleet.primary().Kill();
  ASSERT_TRUE(rec_.WaitFor([&] { return rec_.ups >= 2; }, 30s)) << "never up on a new primary";
  const auto took = std::chrono::steady_clock::now() - killed;
  std::cout << "up again on the promoted replica "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms after kill -9 of the primary\n";
  {
    std::lock_guard lock(rec_.mu);
    ASSERT_FALSE(rec_.downs.empty());
    std::cout << "down: " << rec_.downs[0] << "\n";
  }
  EXPECT_EQ(ReplyOf(Call({"GET", "before"})).str, "1");
  EXPECT_EQ(ReplyOf(Call({"SET", "after", "2"})).str, "OK");
  const RedisReply role = ReplyOf(OneShot(io_, fleet.replica().port(), {"ROLE"}));
  ASSERT_FALSE(role.elements.empty());
  EXPECT_EQ(role.elements[0].str, "master");  // the client writes to the promoted replica
  EXPECT_TRUE(PollInteger({"PUBLISH", "news", "again"}, 0, 1)) << "never resubscribed";
  EXPECT_TRUE(rec_.WaitFor([&] {
    return std::find(rec_.log.begin(), rec_.log.end(), "message news again") != rec_.log.end();
  }));
}

// A Sentinel that does not know the name, one that wants a password, and no Sentinel at all:
// typed reasons, retries; with its password, it answers.
TEST_F(RedisClientTest, SentinelProblemsSayWhy) {
  StartServer();
  RedisServerOptions so;
  so.sentinel_for = server_->port();
  RedisServer sentinel(so);
  ASSERT_TRUE(sentinel.ok()) << sentinel.error();
  RedisOptions unknown = Options();
  unknown.sentinel.sentinels = {{"127.0.0.1", sentinel.port()}};
  unknown.sentinel.master_name = "nobody";
  const std::string why = FirstDown(io_, unknown);
  EXPECT_NE(why.find("knows no primary named 'nobody'"), std::string::npos) << why;

  // Sentinels with a password of their own.
  RedisServerOptions guarded_options;
  guarded_options.sentinel_for = server_->port();
  guarded_options.password = "sentinel-secret";
  RedisServer guarded(guarded_options);
  ASSERT_TRUE(guarded.ok()) << guarded.error();
  RedisOptions without = Options();
  without.sentinel.sentinels = {{"127.0.0.1", guarded.port()}};
  without.sentinel.master_name = "vrouter";
  const std::string noauth = FirstDown(io_, without);
  EXPECT_NE(noauth.find("NOAUTH"), std::string::npos) << noauth;
  RedisOptions with = without;
  with.sentinel.password = "sentinel-secret";
  StartClient(with);
  EXPECT_EQ(ReplyOf(Call({"SET", "k", "v"})).str, "OK");

  RedisOptions none = Options();
  none.sentinel.sentinels = {{"127.0.0.1", 1}};
  none.sentinel.master_name = "vrouter";
  const std::string refused = FirstDown(io_, none);
  EXPECT_NE(refused.find("connect to 127.0.0.1:1 failed"), std::string::npos) << refused;
}

}  // namespace
}  // namespace vrouter::store
