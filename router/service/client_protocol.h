// What a client session means, independent of the socket it arrives on: authentication, join,
// resume, lookups, watches, reports, leave. One instance per session, used only on the session's
// thread. The transport (ws or wss) feeds it text frames and gives it a way to send and to close;
// tests drive it directly with a fake transport.
//
// Requests that wait for the store (join, resume, lookup, watch, leave) complete asynchronously.
// Requests are answered in the order they arrive: while one waits, later frames queue (bounded),
// so a client that sends `join` then `lookup` of itself sees its own assignment.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "proto/codec.h"
#include "proto/messages.h"
#include "router/assign/assignment.h"
#include "router/base/fifo_queue.h"
#include "router/edge/shared_budgets.h"
#include "router/edge/token.h"
#include "router/service/service.h"
#include "router/service/session_protocol.h"

namespace vrouter::service {

class ClientProtocol final : public SessionProtocol {
 public:
  // `self` is the session's own handle: the watch hub pushes to it, a newer session closes it.
  // `ip_region` is the region of the client's address (Service::RegionOf), used when its token
  // names none.
  ClientProtocol(Service& service, SessionTransport& transport, std::weak_ptr<SessionHandle> self,
                 std::uint64_t session_id, std::string ip_region = {}, std::string address = {});
  ClientProtocol(const ClientProtocol&) = delete;
  ClientProtocol& operator=(const ClientProtocol&) = delete;

  void OnText(std::string_view text) override;
  // The connection is gone: drop watches, detach the assignment (it now waits for a resume).
  void OnClosed() override;

  bool authenticated() const override { return !user_.empty(); }

 private:
  void OnHello(const proto::Hello& m);
  void Welcome(const proto::RequestId& id, edge::TokenClaims claims,
               std::shared_ptr<edge::SharedBudget> budget);
  // Answers `rate_limited` for a message of `type` over `limit` (closing the connection on
  // sustained abuse, kClose). False: the message must not be handled.
  bool Charged(const proto::RequestId& id, std::size_t type, edge::RateLimiter::Verdict verdict,
               const edge::RateLimit& limit, std::string_view whose);
  void OnJoin(const proto::Join& m);
  void OnResume(const proto::Resume& m);
  void OnLookup(const proto::RequestId& id, std::span<const std::string_view> users);
  void OnWatch(const proto::Watch& m);
  void OnUnwatch(const proto::Unwatch& m);
  void OnReport(const proto::Report& m);
  bool MayReport(std::string_view server) const;
  void OnLeave(const proto::Leave& m);

  void Handle(std::string_view text);
  // Counts a message of `type` and checks it may be handled: admitted (below) and, unless it is
  // a hello, authenticated. False after answering why not.
  bool Accept(std::size_t type, const proto::RequestId& id);
  // Calls the handler of the message's type.
  void Route(const proto::ClientMessage& message);
  // Charges the message to its rate limit: the user's budget once authenticated, the address's
  // budget for a hello before. False (after answering rate_limited, and closing the connection
  // on sustained abuse) when it must not be handled.
  bool Admit(std::size_t type, const proto::RequestId& id);

  // Finds or makes this user's assignment and answers `assigned` (or an error).
  // `resume_server` is empty for `join`.
  struct Placement {
    proto::RequestId id;
    std::string resume_server;
    std::uint64_t resume_epoch = 0;
    int attempt = 0;
  };
  void Place(Placement p);
  void PlaceFrom(Placement p, std::optional<assign::Assignment> existing);
  // Writes the user's assignment to `target` (chosen, resumed or returned to).
  void PlaceOn(Placement p, std::string target, std::uint64_t expected_epoch);
  void Write(Placement p, assign::Assignment desired, std::uint64_t expected_epoch,
             std::uint64_t min_epoch);
  void Placed(const Placement& p, const assign::Assignment& a);

  // The store's lookup as this client may see it: its own space, unless the replica lets lookups
  // cross spaces.
  void LookUp(std::vector<std::string> users, store::LookupDone done) const;
  // Answers a lookup or watch: where each of `users` is, per `found` (the store's answer).
  void SendLocations(proto::LocationsType type, const proto::RequestId& id,
                     std::span<const std::string_view> users, const store::Assignments& found);

  // A request waits for the store: later frames queue until Done().
  void Wait() { waiting_ = true; }
  void Done();
  // Wraps a store completion so it runs on this session's thread, keeping the session alive.
  template <typename R>
  std::function<void(R)> OnSessionThread(std::function<void(R)> fn);
  void StoreFailed(const proto::RequestId& id, store::StoreError error);

  void Send(const proto::ServerMessage& message);
  void SendError(const proto::RequestId& id, proto::ErrorCode code, std::string message);

  Service& service_;
  SessionTransport& transport_;
  std::weak_ptr<SessionHandle> self_;
  const std::uint64_t session_id_;

  std::string user_;  // empty until `hello` succeeds
  std::string space_;
  std::string region_;  // from the token, else from the client address (region table)
  // The client's address (behind trusted proxies, who they say it is): one address counts once
  // among a server's failure reporters, however many users report from it.
  std::string address_;
  bool joined_ = false;
  bool closed_ = false;
  // The user's rate limits, shared with its other connections to this replica (from `hello` on).
  std::shared_ptr<edge::SharedBudget> budget_;
  bool waiting_ = false;                  // a request is waiting for the store
  base::FifoQueue<std::string> backlog_;  // frames that arrived meanwhile (nothing held when empty)
  absl::flat_hash_set<std::string> watching_;
};

// Turns assignment changes into `moved` / `left` pushes to watchers: encoded once per change,
// shared by every watcher. Installed as the store's change listener by the app.
void PublishChange(const assign::AssignmentChange& change, const fleet::DirectorySnapshot& fleet,
                   assign::WatchHub& hub, telemetry::Metrics& metrics);

}  // namespace vrouter::service
