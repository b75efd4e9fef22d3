// Heap allocations per lookup on the router's hot path (issue 21): a client's `lookup` frame of a
// few users through the real ClientProtocol and the memory store, answered into a frame the
// transport takes and drops once "sent", as the ws session does. Its own executable: it replaces
// the global operator new to count calls.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "proto/codec.h"
#include "router/edge/token.h"
#include "router/service/client_protocol.h"
#include "tests/support/service_harness.h"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*n*/) noexcept { std::free(p); }

namespace vrouter::service {
namespace {

// Keeps only the frame last sent, as a session drops each frame once it is written.
class SinkSession : public SessionTransport, public SessionHandle {
 public:
  void Send(assign::Frame f) override {
    last = std::move(f);
    ++frames;
  }
  void Close(std::uint16_t /*code*/, std::string_view /*reason*/) override {}
  void Dispatch(std::function<void()> fn) override { fn(); }
  void Push(assign::Frame /*frame*/) override {}
  void CloseAsync(std::uint16_t /*code*/, std::string /*reason*/,
                  std::chrono::milliseconds /*delay*/) override {}
  assign::Frame last;
  long frames = 0;
};

struct LookupAllocations : ::testing::Test, vrouter::testing::ServiceHarness {
  LookupAllocations() {
    fleet_control.Declare({{"sfu-1", "wss://sfu-1.example.net/ws", "eu-west", 100, false}});
    // Lookups without a rate limit: a frozen test clock never refills a bucket.
    service.limits.rate_limits.by_type[proto::kClientTypeIndex<proto::Lookup>] = {};
  }

  // A joined user on its own session.
  std::unique_ptr<ClientProtocol> Joined(const std::string& user, SinkSession& session) {
    const auto id = next_id++;
    auto protocol = std::make_unique<ClientProtocol>(
        service, session, std::shared_ptr<SinkSession>(&session, [](SinkSession*) {}), id);
    protocol->OnText(proto::Encode(
        proto::Hello{1, edge::MintToken(user, "space-1", "k", kUnixNow, kUnixNow + 3600)}));
    protocol->OnText(proto::Encode(proto::Join{2}));
    EXPECT_TRUE(std::holds_alternative<proto::Assigned>(
        std::get<proto::ServerMessage>(proto::DecodeServerMessage(*session.last))));
    return protocol;
  }

  std::uint64_t next_id = 1;
};

TEST_F(LookupAllocations, NonePerLookupOfAFewUsers) {
  SinkSession alice_session, bob_session, asker_session;
  auto alice = Joined("alice-0123456789abcdef", alice_session);  // longer than the SSO buffer
  auto bob = Joined("bob", bob_session);
  auto asker = Joined("carol", asker_session);
  const std::string frame =
      R"({"type":"lookup","id":77,"users":["alice-0123456789abcdef","bob","nobody"]})";

  for (int i = 0; i < 10; ++i) asker->OnText(frame);  // warm: pools and reused slots filled
  const auto answer =
      std::get<proto::LookupResult>(std::get<0>(proto::DecodeServerMessage(*asker_session.last)));
  ASSERT_EQ(answer.results.size(), 3u);
  EXPECT_EQ(answer.results[0].server->url, "wss://sfu-1.example.net/ws");
  EXPECT_EQ(answer.results[1].user, "bob");
  EXPECT_FALSE(answer.results[2].server.has_value());

  constexpr int kLookups = 1000;
  const long frames_before = asker_session.frames;
  const long before = allocations.load();
  for (int i = 0; i < kLookups; ++i) asker->OnText(frame);
  const long allocated = allocations.load() - before;
  EXPECT_EQ(asker_session.frames - frames_before, kLookups);
  EXPECT_EQ(allocated, 0) << static_cast<double>(allocated) / kLookups << " per lookup";

  // The counter counts: the same lookup with an escape in an id takes the DOM decoder and the
  // owning message, which allocate.
  const long before_escaped = allocations.load();
  asker->OnText(R"({"type":"lookup","id":78,"users":["\u0062ob"]})");
  EXPECT_GT(allocations.load() - before_escaped, 0);
  EXPECT_EQ(
      std::get<proto::LookupResult>(std::get<0>(proto::DecodeServerMessage(*asker_session.last)))
          .results[0]
          .user,
      "bob");
}

}  // namespace
}  // namespace vrouter::service
