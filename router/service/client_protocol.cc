// Why this file is longer than ~600 lines: it is one client session's protocol, every handler
// reading and writing the same per-session state (its user, space, budgets, watches, the request
// it is serving); the parts that stand alone already do (proto/ codecs, edge/ budgets and tokens,
// the fleet controller's placement and admission, the store).
#include "router/service/client_protocol.h"

#include <algorithm>
#include <chrono>

#include "absl/container/inlined_vector.h"
#include "proto/client_view.h"
#include "proto/codec.h"
#include "router/base/frame_pool.h"
#include "router/base/log.h"
#include "router/base/wake_clock.h"
#include "router/edge/token.h"
#include "router/service/fleet_controller.h"

namespace vrouter::service {

using proto::ErrorCode;

namespace {
// Store writes are compare-and-set; a loser re-reads and retries. More than a few rounds means
// something keeps rewriting this user (two devices fighting): answer `unavailable`, don't spin.
constexpr int kMaxPlacementAttempts = 4;
// A resuming client's epoch raises the epoch counter (so its epochs never go backwards), but
// epochs are shared by all users: honouring 2^53-1 would push every later epoch past what
// JavaScript clients (and our own decoder) accept. Above 2^52 a client gets no such favour.
constexpr std::uint64_t kMaxHonouredResumeEpoch = proto::kMaxSafeInteger >> 1;
// Frames queued while a request waits for the store. Normal clients have a handful in flight.
constexpr std::size_t kMaxBacklog = 64;
// Hellos are also counted across the fleet (with a shared store) in windows this long: at most
// BURST + RATE x window per user and per address, whichever replicas they reach.
constexpr std::chrono::milliseconds kFleetHelloWindow{10000};
constexpr std::size_t kHelloType = proto::kClientTypeIndex<proto::Hello>;
constexpr std::size_t kLookupType = proto::kClientTypeIndex<proto::Lookup>;

std::int64_t FleetHelloAllowance(const edge::RateLimit& limit) {
  return static_cast<std::int64_t>(limit.burst +
                                   limit.per_second * kFleetHelloWindow.count() / 1000.0);
}
}  // namespace

ClientProtocol::ClientProtocol(Service& service, SessionTransport& transport,
                               std::weak_ptr<SessionHandle> self, std::uint64_t session_id,
                               std::string ip_region, std::string address)
    : service_(service),
      transport_(transport),
      self_(std::move(self)),
      session_id_(session_id),
      region_(std::move(ip_region)),
      address_(std::move(address)) {}

template <typename R>
std::function<void(R)> ClientProtocol::OnSessionThread(std::function<void(R)> fn) {
  // The session handle owns this protocol: holding it keeps `this` alive until `fn` has run.
  return [this, keep = self_.lock(), fn = std::move(fn)](R result) mutable {
    transport_.Dispatch([keep, fn = std::move(fn), result = std::move(result)]() mutable {
      fn(std::move(result));
    });
  };
}

void ClientProtocol::OnText(std::string_view text) {
  if (waiting_ || !backlog_.empty()) {
    if (backlog_.size() >= kMaxBacklog) {
      // The client pipelines far faster than the store answers. Answering this frame now would
      // break the in-order promise, and buffering without bound would grow memory: close.
      service_.metrics.protocol_closes->Increment();
      backlog_.clear();
      transport_.Close(proto::close_code::kPolicyViolation, "too many requests waiting");
      return;
    }
    backlog_.push_back(std::string(text));
    return;
  }
  Handle(text);
}

void ClientProtocol::Done() {
  waiting_ = false;
  while (!waiting_ && !closed_ && !backlog_.empty()) {
    std::string next = std::move(backlog_.front());
    backlog_.pop_front();
    Handle(next);
  }
}

void ClientProtocol::StoreFailed(const proto::RequestId& id, store::StoreError error) {
  service_.metrics.store_errors->Increment();
  SendError(id, ErrorCode::kUnavailable, std::string(store::StoreErrorMessage(error)));
}

void ClientProtocol::Handle(std::string_view text) {
  // Read in place when the frame allows (proto/client_view.h); a lookup is then answered from the
  // views into `text` without copying its ids. Anything else goes through the owning decoder,
  // whose DOM fallback words the errors.
  proto::ClientView view;
  if (proto::ReadClientView(text, view)) {
    if (!Accept(view.type, view.id)) return;
    if (view.type == kLookupType) return OnLookup(view.id, view.users);
    return Route(proto::ToMessage(view));
  }
  proto::ClientDecodeResult decoded = proto::DecodeClientMessageDom(text);
  if (auto* err = std::get_if<proto::DecodeError>(&decoded)) {
    SendError(err->id, err->code, std::move(err->message));
    return;
  }
  const proto::ClientMessage& message = std::get<proto::ClientMessage>(decoded);
  if (!Accept(message.index(), std::visit(
                                   [](const auto& m) -> const auto& { return m.id; }, message))) {
    return;
  }
  Route(message);
}

bool ClientProtocol::Accept(std::size_t type, const proto::RequestId& id) {
  service_.metrics.messages_received[type]->Increment();
  if (!Admit(type, id)) return false;
  if (!authenticated() && type != kHelloType) {
    SendError(id, ErrorCode::kNotAuthenticated, "send 'hello' with a token first");
    return false;
  }
  return true;
}

void ClientProtocol::Route(const proto::ClientMessage& message) {
  std::visit(
      [this](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Hello>) OnHello(m);
        if constexpr (std::is_same_v<T, proto::Join>) OnJoin(m);
        if constexpr (std::is_same_v<T, proto::Resume>) OnResume(m);
        if constexpr (std::is_same_v<T, proto::Lookup>) {
          OnLookup(m.id, absl::InlinedVector<std::string_view, 8>(m.users.begin(), m.users.end()));
        }
        if constexpr (std::is_same_v<T, proto::Watch>) OnWatch(m);
        if constexpr (std::is_same_v<T, proto::Unwatch>) OnUnwatch(m);
        if constexpr (std::is_same_v<T, proto::Report>) OnReport(m);
        if constexpr (std::is_same_v<T, proto::Leave>) OnLeave(m);
      },
      message);
}

bool ClientProtocol::Admit(std::size_t type, const proto::RequestId& id) {
  if (budget_) {
    const auto& limits = service_.limits.rate_limits;
    return Charged(id, type, budget_->Admit(type, service_.steady_now(), limits),
                   limits.by_type[type], "per user");
  }
  // Not authenticated: only hellos do anything (others get not_authenticated), and they cost a
  // token check each, so they are charged to the address.
  if (type != kHelloType) return true;
  const auto limits = service_.AddressLimits();
  const auto verdict =
      service_.address_budgets.Get(address_)->Admit(type, service_.steady_now(), limits);
  return Charged(id, type, verdict, limits.by_type[type], "per address");
}

bool ClientProtocol::Charged(const proto::RequestId& id, std::size_t type,
                             edge::RateLimiter::Verdict verdict, const edge::RateLimit& limit,
                             std::string_view whose) {
  if (verdict == edge::RateLimiter::Verdict::kAllow) return true;
  service_.metrics.rate_limited[type]->Increment();
  std::string text = "more than " + std::to_string(static_cast<long>(limit.per_second)) + " '" +
                     std::string(proto::kClientTypeNames[type]) + "' per second " +
                     std::string(whose) + " (burst " +
                     std::to_string(static_cast<long>(limit.burst)) + "); slow down";
  SendError(id, ErrorCode::kRateLimited, std::move(text));
  if (verdict == edge::RateLimiter::Verdict::kClose) {
    service_.metrics.rate_limit_closes->Increment();
    log::Info("rate_limit_closed", {{"session", session_id_}, {"user", user_}});
    transport_.Close(proto::close_code::kPolicyViolation, "rate_limited");
  }
  return false;
}

void ClientProtocol::OnHello(const proto::Hello& m) {
  if (authenticated()) {
    SendError(m.id, ErrorCode::kAlreadyAuthenticated, "this connection already said hello");
    return;
  }
  auto verified = edge::VerifyToken(m.token, *service_.client_keys.Get(), service_.unix_seconds(),
                                    service_.token_leeway_seconds);
  if (auto* err = std::get_if<edge::TokenError>(&verified)) {
    SendError(m.id, err->code, std::move(err->message));
    transport_.Close(proto::close_code::kAuthFailed, "authentication failed");
    return;
  }
  auto& claims = std::get<edge::TokenClaims>(verified);
  // The user's hellos on this replica, whichever connection they come on (the address's were
  // charged in Admit).
  auto budget = service_.user_budgets.Get(claims.user);
  const auto& limits = service_.limits.rate_limits;
  if (!Charged(m.id, kHelloType, budget->Admit(kHelloType, service_.steady_now(), limits),
               limits.by_type[kHelloType], "per user")) {
    return;
  }
  // And across the fleet: a reconnect storm spread over replicas meets the same budgets. A store
  // that cannot count (down) leaves the replica's own budgets in charge.
  Wait();
  const std::string user = claims.user;
  service_.store.CountHello(
      user, address_, kFleetHelloWindow,
      OnSessionThread<store::StoreResult<store::HelloCounts>>(
          [this, id = m.id, claims = std::move(claims),
           budget = std::move(budget)](store::StoreResult<store::HelloCounts> r) mutable {
            if (closed_) return Done();
            if (const auto* counts = std::get_if<store::HelloCounts>(&r)) {
              const auto& user_limit = service_.limits.rate_limits.by_type[kHelloType];
              const auto& address_limit = service_.limits.hellos_per_ip;
              const bool user_over =
                  user_limit.per_second > 0 && counts->user > FleetHelloAllowance(user_limit);
              const bool address_over = address_limit.per_second > 0 &&
                                        counts->address > FleetHelloAllowance(address_limit);
              if (user_over || address_over) {
                service_.metrics.rate_limited[kHelloType]->Increment();
                SendError(id, ErrorCode::kRateLimited,
                          std::string("too many hellos ") +
                              (user_over ? "for this user" : "from this address") +
                              " across the fleet in the last " +
                              std::to_string(kFleetHelloWindow.count() / 1000) + " s; retry later");
                return Done();
              }
            }
            Welcome(id, std::move(claims), std::move(budget));
            Done();
          }));
}

void ClientProtocol::Welcome(const proto::RequestId& id, edge::TokenClaims claims,
                             std::shared_ptr<edge::SharedBudget> budget) {
  user_ = std::move(claims.user);
  space_ = std::move(claims.space);
  budget_ = std::move(budget);
  if (!claims.region.empty()) region_ = std::move(claims.region);  // the issuer knows best
  if (auto previous = service_.sessions.Claim(user_, session_id_)) {
    service_.metrics.sessions_replaced->Increment();
    previous->CloseAsync(proto::close_code::kSessionReplaced, "session_replaced");
  }
  // With a shared store, this replica now keeps the space locally: lookups in it are memory reads.
  service_.store.EnterSpace(space_);
  Send(proto::Welcome{id, service_.replica_id, std::to_string(session_id_), user_, space_,
                      service_.WireLimits()});
  transport_.Authenticated();
}

void ClientProtocol::Place(Placement p) {
  if (closed_) return Done();  // the connection went between two attempts
  if (p.attempt >= kMaxPlacementAttempts) {
    SendError(p.id, ErrorCode::kUnavailable,
              "assignment kept changing under concurrent writes; retry");
    return Done();
  }
  service_.store.Attach(user_, space_, session_id_,
                        OnSessionThread<store::StoreResult<std::optional<assign::Assignment>>>(
                            [this, p = std::move(p)](
                                store::StoreResult<std::optional<assign::Assignment>> r) mutable {
                              if (auto* error = std::get_if<store::StoreError>(&r)) {
                                StoreFailed(p.id, *error);
                                return Done();
                              }
                              PlaceFrom(std::move(p), std::move(std::get<0>(r)));
                            }));
}

void ClientProtocol::PlaceFrom(Placement p, std::optional<assign::Assignment> existing) {
  if (closed_) return Done();  // OnClosed detached whatever this session came to own
  auto& fleet = service_.fleet_control;
  // Keep the user where its media already is unless that server is drained, ejected, gone or
  // swallowing media; otherwise place it anew (its watchers hear `moved`).
  if (existing && fleet.CanKeep(existing->server)) {
    if (existing->space == space_) return Placed(p, *existing);
    // Same server, new space: rewrite the space (space affinity and the per-space copies read
    // it). Watchers get no push: the user's video server is unchanged.
    assign::Assignment desired = *existing;
    desired.space = space_;
    desired.session = session_id_;
    desired.replica = service_.replica_id;
    desired.since = service_.steady_now();
    const std::uint64_t expected = existing->epoch;
    return Write(std::move(p), std::move(desired), expected, 0);
  }
  // A user who left a moment ago and joins again goes back to its server as a returning user:
  // its own churn must not use up the admission budget new users share.
  std::optional<std::string> left_from;
  if (!existing && p.resume_server.empty()) {
    left_from =
        service_.departures.TakeSince(user_, service_.steady_now() - service_.rejoin_window);
  }
  const std::uint64_t expected = existing ? existing->epoch : 0;
  if (!existing && !p.resume_server.empty() && fleet.CanKeep(p.resume_server)) {
    std::string target = p.resume_server;  // keep the client's media where it is
    return PlaceOn(std::move(p), std::move(target), expected);
  }
  if (left_from && fleet.CanKeep(*left_from)) return PlaceOn(std::move(p), *left_from, expected);
  fleet.Place(space_, region_,
              OnSessionThread<std::string>([this, p = std::move(p),
                                            expected](const std::string& target) mutable {
                if (closed_) return Done();
                if (target.empty()) {
                  SendError(p.id, ErrorCode::kNoVideoServer, "no video server has room right now");
                  return Done();
                }
                PlaceOn(std::move(p), target, expected);
              }));
}

void ClientProtocol::PlaceOn(Placement p, std::string target, std::uint64_t expected_epoch) {
  assign::Assignment desired{
      user_, space_, std::move(target), 0, service_.replica_id, session_id_, service_.steady_now()};
  const std::uint64_t min_epoch = std::min(p.resume_epoch, kMaxHonouredResumeEpoch);
  Write(std::move(p), std::move(desired), expected_epoch, min_epoch);
}

void ClientProtocol::Write(Placement p, assign::Assignment desired, std::uint64_t expected_epoch,
                           std::uint64_t min_epoch) {
  service_.store.Put(
      std::move(desired), expected_epoch, min_epoch,
      OnSessionThread<store::StoreResult<assign::PutResult>>(
          [this, p = std::move(p)](store::StoreResult<assign::PutResult> r) mutable {
            if (auto* error = std::get_if<store::StoreError>(&r)) {
              StoreFailed(p.id, *error);
              return Done();
            }
            auto& put = std::get<assign::PutResult>(r);
            if (!put.written) {  // somebody else wrote this user meanwhile: read again
              ++p.attempt;
              return Place(std::move(p));
            }
            service_.metrics.assignments_written->Increment();
            if (closed_) {
              // Written after the connection went (OnClosed's detach ran before it): detach now.
              service_.store.Detach(user_, session_id_, service_.steady_now());
              return Done();
            }
            Placed(p, put.current);
          }));
}

void ClientProtocol::Placed(const Placement& p, const assign::Assignment& a) {
  joined_ = true;
  const bool resumed = !p.resume_server.empty() && a.server == p.resume_server;
  Send(proto::Assigned{p.id, fleet::ServerRefFor(*service_.fleet.Snapshot(), a.server), a.epoch,
                       resumed});
  Done();
}

void ClientProtocol::OnJoin(const proto::Join& m) {
  if (service_.draining.load(std::memory_order_relaxed)) {
    SendError(m.id, ErrorCode::kShuttingDown, "this replica is shutting down; reconnect elsewhere");
    return;
  }
  Wait();
  Place(Placement{m.id, "", 0, 0});
}

void ClientProtocol::OnResume(const proto::Resume& m) {
  if (service_.draining.load(std::memory_order_relaxed)) {
    SendError(m.id, ErrorCode::kShuttingDown, "this replica is shutting down; reconnect elsewhere");
    return;
  }
  Wait();
  Place(Placement{m.id, m.server, m.epoch, 0});
}

void ClientProtocol::SendLocations(proto::LocationsType type, const proto::RequestId& id,
                                   std::span<const std::string_view> users,
                                   const store::Assignments& found) {
  const fleet::DirectorySnapshot& fleet = service_.fleet.Current();  // the views point into it
  absl::InlinedVector<proto::UserLocationView, 8> results(users.size());
  for (std::size_t i = 0; i < users.size(); ++i) {
    results[i].user = users[i];
    // A user in another space looks absent: the answer is the same as for nobody, so it says
    // nothing about where else people are (unless the replica lets lookups cross spaces).
    if (i < found.size() && found[i] &&
        (service_.lookups_across_spaces || found[i]->space == space_)) {
      // As fleet::ServerRefFor, without copying: a server gone from the directory is its bare id.
      const std::string& server = found[i]->server;
      const fleet::VideoServer* s = fleet.Find(server);
      results[i].server = s != nullptr ? proto::ServerRefView{s->id, s->url, s->region}
                                       : proto::ServerRefView{server, "", ""};
      results[i].epoch = found[i]->epoch;
    }
  }
  const std::size_t index =
      type == proto::LocationsType::kLookupResult
          ? proto::VariantIndex<proto::LookupResult, proto::ServerMessage>::value
          : proto::VariantIndex<proto::WatchResult, proto::ServerMessage>::value;
  service_.metrics.messages_sent[index]->Increment();
  transport_.Send(base::MakePooledFrame(
      [&](std::string& out) { proto::EncodeLocationsTo(type, id, results, out); }));
}

void ClientProtocol::OnLookup(const proto::RequestId& id, std::span<const std::string_view> users) {
  // From the wake-up that read the request: the time spent behind other sockets of the batch
  // counts too, and the start costs no clock read of its own.
  const auto start = base::WakeClock::Now();
  if (users.size() > service_.limits.max_batch) {
    SendError(id, ErrorCode::kBatchTooLarge,
              "lookup of " + std::to_string(users.size()) + " users; the limit is " +
                  std::to_string(service_.limits.max_batch));
    return;
  }
  auto observe = [this, start] {
    service_.metrics.lookup_seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
  // The hot path: a store that holds everything in memory answers at once, into this thread's
  // reused slots (nothing else runs on this thread until the answer is written).
  thread_local store::Assignments found;
  if (service_.store.LookupLocal(users, found)) {
    SendLocations(proto::LocationsType::kLookupResult, id, users, found);
    observe();
    return;
  }
  Wait();
  std::vector<std::string> ids(users.begin(), users.end());
  LookUp(ids, OnSessionThread<store::StoreResult<store::Assignments>>(
                  [this, id, ids, observe](store::StoreResult<store::Assignments> r) mutable {
                    if (auto* error = std::get_if<store::StoreError>(&r)) {
                      StoreFailed(id, *error);
                      return Done();
                    }
                    SendLocations(proto::LocationsType::kLookupResult, id,
                                  absl::InlinedVector<std::string_view, 8>(ids.begin(), ids.end()),
                                  std::get<0>(r));
                    observe();
                    Done();
                  }));
}

void ClientProtocol::OnWatch(const proto::Watch& m) {
  if (m.users.size() > service_.limits.max_batch) {
    SendError(m.id, ErrorCode::kBatchTooLarge,
              "watch of " + std::to_string(m.users.size()) + " users; the limit is " +
                  std::to_string(service_.limits.max_batch));
    return;
  }
  std::size_t added = 0;
  for (const auto& u : m.users) added += watching_.contains(u) ? 0 : 1;
  if (watching_.size() + added > service_.limits.max_watches) {
    SendError(m.id, ErrorCode::kTooManyWatches,
              "a session may watch at most " + std::to_string(service_.limits.max_watches) +
                  " users; unwatch some first");
    return;
  }
  // Register before reading the current state: a change in between is pushed, never lost.
  std::vector<std::string> fresh;
  for (const auto& u : m.users) {
    if (watching_.insert(u).second) {
      service_.hub.Watch(u, session_id_, self_,
                         service_.lookups_across_spaces ? std::string_view() : space_);
      service_.metrics.watches->Increment();
      fresh.push_back(u);
    }
  }
  Wait();
  auto answer = OnSessionThread<store::StoreResult<store::Assignments>>(
      [this, id = m.id, users = m.users](store::StoreResult<store::Assignments> r) {
        if (auto* error = std::get_if<store::StoreError>(&r)) {
          StoreFailed(id, *error);  // the watches stay: pushes still arrive
          return Done();
        }
        SendLocations(proto::LocationsType::kWatchResult, id,
                      absl::InlinedVector<std::string_view, 8>(users.begin(), users.end()),
                      std::get<0>(r));
        Done();
      });
  service_.store.WatchUsers(
      fresh, [this, keep = self_.lock(), users = m.users, answer = std::move(answer)]() mutable {
        LookUp(std::move(users), std::move(answer));
      });
}

void ClientProtocol::LookUp(std::vector<std::string> users, store::LookupDone done) const {
  if (service_.lookups_across_spaces)
    return service_.store.Lookup(std::move(users), std::move(done));
  service_.store.LookupInSpace(std::move(users), space_, std::move(done));
}

void ClientProtocol::OnUnwatch(const proto::Unwatch& m) {
  if (m.users.size() > service_.limits.max_batch) {
    SendError(m.id, ErrorCode::kBatchTooLarge, "unwatch batch above the limit");
    return;
  }
  std::vector<std::string> dropped;
  for (const auto& u : m.users) {
    if (watching_.erase(u) > 0) {
      service_.hub.Unwatch(u, session_id_);
      service_.metrics.watches->Decrement();
      dropped.push_back(u);
    }
  }
  service_.store.UnwatchUsers(dropped);
  Send(proto::Ack{m.id});
}

// A joined client speaks for the servers its media goes through: its own (it publishes there)
// and those of the users of its own space it watches (it subscribes to their media there: when a
// server stops forwarding, its viewers on other servers are the first to see it). Watches may
// cross spaces (--lookups-across-spaces), so only same-space users count: otherwise watching
// anyone would let a client speak for any server. Reporters still count once per user and per
// address (FleetModel), however many servers they may speak for.
bool ClientProtocol::MayReport(std::string_view server) const {
  if (!joined_) return false;
  const auto mine = service_.store.GetLocal(user_);
  if (mine && mine->server == server) return true;
  return std::any_of(watching_.begin(), watching_.end(), [&](const std::string& user) {
    const auto theirs = service_.store.GetLocal(user);
    return theirs && theirs->space == space_ && theirs->server == server;
  });
}

void ClientProtocol::OnReport(const proto::Report& m) {
  if (service_.fleet.Snapshot()->Find(m.server) == nullptr) {
    SendError(m.id, ErrorCode::kUnknownServer, "no video server '" + m.server + "'");
    return;
  }
  if (!MayReport(m.server)) {
    SendError(m.id, ErrorCode::kForbidden,
              "a client reports only its own video server or the server of a user it watches");
    return;
  }
  service_.metrics.media_failure_reports[static_cast<int>(m.reason)]->Increment();
  service_.fleet_control.OnFailureReport(m.server, user_, address_);
  log::Debug("media_failure_report", {{"user", user_},
                                      {"server", m.server},
                                      {"reason", proto::FailureReasonName(m.reason)},
                                      {"detail", m.detail}});
  Send(proto::Ack{m.id});
}

void ClientProtocol::OnLeave(const proto::Leave& m) {
  if (!joined_) {
    SendError(m.id, ErrorCode::kNotJoined, "'leave' needs a prior 'join' or 'resume'");
    return;
  }
  Wait();
  const auto mine = service_.store.GetLocal(user_);
  service_.store.Remove(user_, session_id_,
                        OnSessionThread<store::StoreResult<bool>>(
                            [this, id = m.id, server = mine ? mine->server : std::string()](
                                store::StoreResult<bool> r) {
                              if (auto* error = std::get_if<store::StoreError>(&r)) {
                                StoreFailed(id, *error);
                                return Done();
                              }
                              if (std::get<bool>(r) && !server.empty()) {
                                service_.departures.Left(user_, server, service_.steady_now());
                              }
                              joined_ = false;
                              Send(proto::Ack{id});
                              Done();
                            }));
}

void ClientProtocol::OnClosed() {
  closed_ = true;
  backlog_.clear();
  std::vector<std::string> watched(watching_.begin(), watching_.end());
  for (const auto& u : watched) {
    service_.hub.Unwatch(u, session_id_);
    service_.metrics.watches->Decrement();
  }
  watching_.clear();
  service_.store.UnwatchUsers(watched);
  if (!authenticated()) return;
  // Detach whatever this session owns: a `join` that failed after its attach (no server, store
  // error) leaves an owned assignment too. The store ignores a session that owns nothing.
  service_.store.Detach(user_, session_id_, service_.steady_now());
  service_.store.LeaveSpace(space_);
  service_.sessions.Release(user_, session_id_);
}

void ClientProtocol::Send(const proto::ServerMessage& message) {
  service_.metrics.messages_sent[message.index()]->Increment();
  transport_.Send(base::MakePooledFrame([&](std::string& out) { proto::EncodeTo(message, out); }));
}

void ClientProtocol::SendError(const proto::RequestId& id, ErrorCode code, std::string message) {
  service_.metrics.errors[static_cast<int>(code)]->Increment();
  Send(proto::Error{id, code, std::move(message)});
}

void PublishChange(const assign::AssignmentChange& change, const fleet::DirectorySnapshot& fleet,
                   assign::WatchHub& hub, telemetry::Metrics& metrics) {
  const assign::Assignment& a = change.assignment;
  auto publish = [&](const proto::ServerMessage& message, assign::Audience audience) {
    auto frame = std::make_shared<const std::string>(proto::Encode(message));
    const std::size_t delivered = hub.Publish(a.user, frame, audience);
    metrics.messages_sent[message.index()]->Increment(static_cast<double>(delivered));
  };
  if (change.kind == assign::AssignmentChange::Kind::kRemoved) {
    return publish(proto::Left{a.user, a.epoch}, {a.space, true});
  }
  const bool same_server = change.from_server && *change.from_server == a.server;
  const bool new_space = change.from_space && *change.from_space != a.space;
  // Watchers see their own space: a user who went to another space has left theirs, and has
  // arrived in the new one even on the same server. Watchers of any space see server moves only.
  if (new_space) publish(proto::Left{a.user, a.epoch}, {*change.from_space, false});
  if (same_server && !new_space) return;
  // `from` names a server of the same space only: it would tell the new space's watchers where
  // the user was in another one.
  publish(proto::Moved{a.user, fleet::ServerRefFor(fleet, a.server), a.epoch,
                       same_server || new_space ? std::nullopt : change.from_server},
          {a.space, !same_server});
}

}  // namespace vrouter::service
