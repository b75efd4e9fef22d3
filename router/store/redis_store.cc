// The Redis store, put together from its parts, each in its own file:
//   redis_gateway   the connection, the scripts, the clock, the checks on every answer;
//   own_sessions    writes for this replica's live sessions, and what they own;
//   space_copies    local copies of the spaces held here, following their channels;
//   user_watches    watched users, and the change listener told what they became;
//   replica_leases  leases, dead replicas' leftovers, the fleet-wide load.
// What stays here: the store's thread and lifecycle, the connection's ups and downs (what a
// resynchronization does, in which order), the dispatch of pub/sub messages to the parts,
// lookups, fleet gossip, and the hello and admission counters.
#include "router/store/redis_store.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <limits>
#include <memory>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "proto/decode_error.h"
#include "router/base/absl_compat.h"
#include "router/base/log.h"
#include "router/base/mutex.h"
#include "router/store/fleet_gossip.h"
#include "router/store/gossip_auth.h"
#include "router/store/local_copy.h"
#include "router/store/own_sessions.h"
#include "router/store/redis_gateway.h"
#include "router/store/redis_replies.h"
#include "router/store/redis_schema.h"
#include "router/store/replica_leases.h"
#include "router/store/space_copies.h"
#include "router/store/user_watches.h"

namespace vrouter::store {
namespace asio = boost::asio;

class RedisStore::Impl {
 public:
  Impl(RedisStoreOptions options, telemetry::Metrics& metrics, ReplacedHandler on_replaced)
      : opt_(std::move(options)),
        me_(opt_.replica_id),
        metrics_(metrics),
        gw_(io_, opt_, metrics_, Hooks()),
        sessions_(gw_, local_, opt_, std::move(on_replaced)),
        spaces_(gw_, local_, sessions_, opt_),
        watches_(io_, gw_, opt_, [this](const assign::AssignmentChange& c) { Notify(c); }),
        leases_(gw_, local_, spaces_, sessions_, opt_),
        housekeeping_(io_),
        sealer_(opt_.replica_key, me_),
        opener_(opt_.replica_key) {
    for (std::size_t i = 0; i < kGossipAuthErrorCount; ++i) {
      gossip_refused_[i] = &metrics_.fleet_gossip_rejected->Add(
          {{"reason", std::string(GossipAuthErrorName(static_cast<GossipAuthError>(i)))}});
    }
    // The decoding failures the fleet controller counts, present from the start too.
    for (std::size_t i = 0; i < kGossipErrorCount; ++i) {
      metrics_.fleet_gossip_rejected->Add(
          {{"reason", std::string(GossipErrorName(static_cast<GossipError>(i)))}});
    }
  }

  // ---------------------------------------------------------------- lifecycle

  void Start() {
    if (opt_.replica_key.size() < kMinReplicaKeyBytes) {
      log::Error("fleet_gossip_disabled",
                 {{"why",
                   "no replica key (--replica-key): fleet messages between replicas are "
                   "neither sent nor accepted"}});
    }
    work_.emplace(asio::make_work_guard(io_));
    thread_ = std::thread([this] { io_.run(); });
    Run([this] {
      gw_.client().Subscribe(std::string(redis::kFleetChannel), {});
      gw_.client().Start();
      Housekeep();
    });
  }

  void Stop() {
    stopped_ = true;  // from now on requests fail at once instead of queueing for a dead thread
    if (!thread_.joinable()) return;
    Run([this] {
      housekeeping_.cancel();
      gw_.client().Stop();  // fails every command in flight: their completions are posted next
      work_.reset();
      // Then stop for good, after those completions ran: a wait still pending somewhere (a
      // descriptor, a watch's timer) must not keep the thread, and shutdown, waiting.
      Run([this] { io_.stop(); });
    });
    thread_.join();
  }

  // Runs `fn` on the store's thread.
  void Run(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

  bool stopped() const { return stopped_.load(); }

  // ---------------------------------------------------------------- any thread

  void SetChangeListener(ChangeListener l) {
    vrouter::MutexLock lock(&mu_);
    listener_ = std::move(l);
  }

  void SetFleetListener(std::function<void(std::string_view)> l) {
    vrouter::MutexLock lock(&mu_);
    fleet_listener_ = std::move(l);
  }

  std::string Problem() const {
    vrouter::MutexLock lock(&mu_);
    return problem_;
  }

  // `space` empty: any space (a user not held here is found through its pointer); otherwise only
  // `space`'s records are read, one HGET per user not held here, whatever the user's state.
  void Lookup(std::vector<std::string> users, LookupDone done, std::string space = {}) {
    Assignments out;
    std::vector<std::size_t> missing;
    local_.Lookup(users, out, missing);
    if (!space.empty()) {
      for (auto& a : out) {
        if (a && a->space != space) a.reset();
      }
    }
    metrics_.lookup_users[0]->Increment(static_cast<double>(users.size() - missing.size()));
    if (missing.empty()) return done(std::move(out));
    if (!gw_.client().up() || stopped_) return done(StoreError::kUnavailable);
    metrics_.lookup_users[1]->Increment(static_cast<double>(missing.size()));
    std::vector<std::string> wanted;
    wanted.reserve(missing.size());
    for (std::size_t i : missing) wanted.push_back(users[i]);
    Run([this, wanted = std::move(wanted), missing = std::move(missing), out = std::move(out),
         done = std::move(done), space = std::move(space)]() mutable {
      auto merge = [missing = std::move(missing), out = std::move(out),
                    done = std::move(done)](StoreResult<Assignments> r) mutable {
        if (auto* err = std::get_if<StoreError>(&r)) return done(*err);
        auto& found = std::get<Assignments>(r);
        for (std::size_t k = 0; k < missing.size(); ++k) out[missing[k]] = std::move(found[k]);
        done(std::move(out));
      };
      if (space.empty()) return gw_.ReadRemote(std::move(wanted), std::move(merge));
      gw_.ReadInSpace(space, std::move(wanted), std::move(merge));
    });
  }

  // ---------------------------------------------------------------- store thread

  // ---- change stream ----

  void OnMessage(std::string_view channel, std::string_view payload) {
    if (channel == redis::kFleetChannel) return OnFleetMessage(payload);
    auto m = redis::DecodeChange(payload);
    if (!m) return gw_.RejectChange(ChangeRejection::kMalformed, channel);
    // A change is about the user (or in the space) its channel names; anything else is forged.
    if (auto user = redis::UserOfChannel(channel, gw_.pubsub())) {
      if (*user != m->user) return gw_.RejectChange(ChangeRejection::kWrongChannel, channel);
      return watches_.NotifyWatchers(*m);
    }
    auto of_space = redis::SpaceOfChannel(channel, gw_.pubsub());
    if (!of_space) return;
    const std::string space(*of_space);
    if (m->space != space) return gw_.RejectChange(ChangeRejection::kWrongChannel, channel);
    spaces_.OnChange(space, std::move(*m));
  }

  // Fleet messages of the other replicas (and this one's echo): only sealed ones with the replica
  // key, recent and not replayed (gossip_auth.h), reach the fleet controller.
  void OnFleetMessage(std::string_view payload) {
    if (opt_.replica_key.size() < kMinReplicaKeyBytes) return;  // Start() said why
    auto opened = opener_.Open(payload, gw_.RedisNowMs());
    if (!opened.ok()) {
      const auto why = static_cast<std::size_t>(opened.error());
      gossip_refused_[why]->Increment();
      if (gw_.LogDue("gossip " + std::string(GossipAuthErrorName(opened.error())))) {
        log::Warn("fleet_gossip_rejected", {{"reason", GossipAuthErrorName(opened.error())}});
      }
      return;
    }
    std::function<void(std::string_view)> l;
    {
      vrouter::MutexLock lock(&mu_);
      l = fleet_listener_;
    }
    if (l) l(opened.value());
  }

  void Notify(const assign::AssignmentChange& change) {
    ChangeListener l;
    {
      vrouter::MutexLock lock(&mu_);
      l = listener_;
    }
    if (l) l(change);
  }

  // Redis Cluster moved a shard channel's slot (RedisHooks::on_shard_lost): changes published
  // since may have been missed. A space is subscribed and loaded again; a watched user is
  // subscribed again, then read again, and its watchers told what changed.
  void OnChannelLost(const std::string& channel) {
    metrics_.store_channels_moved->Increment();
    if (auto space = redis::SpaceOfChannel(channel, gw_.pubsub())) {
      if (spaces_.Holds(std::string(*space))) spaces_.Subscribe(std::string(*space));
    } else if (auto user = redis::UserOfChannel(channel, gw_.pubsub())) {
      watches_.OnLost(std::string(*user));
    }
  }

  // ---- connection state ----

  RedisHooks Hooks() {
    RedisHooks h;
    h.on_up = [this] { OnUp(); };
    h.on_down = [this](const std::string& why) { OnDown(why); };
    h.on_message = [this](std::string_view c, std::string_view p) { OnMessage(c, p); };
    h.on_shard_lost = [this](const std::string& channel, const std::string&) {
      OnChannelLost(channel);
    };
    h.on_command = [this](double seconds, bool ok) {
      metrics_.redis_command_seconds->Observe(seconds);
      if (!ok) metrics_.redis_command_errors->Increment();
    };
    h.on_reconnect_attempt = [this] { metrics_.redis_reconnects->Increment(); };
    h.on_partial = [this](std::size_t primaries_down, const std::string& why) {
      OnPartial(primaries_down, why);
    };
    return h;
  }

  // Redis Cluster: some shards down (their primary not replaced yet), or all whole again. The
  // spaces of a shard that comes back reload when their channels move or their node returns;
  // watched users are read again here, wherever their channels live, since a record of theirs
  // may have been in the shard (and lost with it).
  void OnPartial(std::size_t primaries_down, const std::string& why) {
    metrics_.redis_primaries_down->Set(static_cast<double>(primaries_down));
    if (primaries_down > 0) {
      log::Warn("store_partial", {{"why", why},
                                  {"effect",
                                   "writes in those shards get the retryable "
                                   "`unavailable`; the other shards work on"}});
      was_partial_ = true;
      return;
    }
    log::Info("store_whole", {{"why", "every shard has its primary again"}});
    if (std::exchange(was_partial_, false)) watches_.Resync();
  }

  void OnDown(const std::string& why) {
    {
      vrouter::MutexLock lock(&mu_);
      problem_ = "redis unreachable: " + why;
    }
    metrics_.redis_up->Set(0);
    if (!was_down_) log::Warn("store_down", {{"why", why}});
    was_down_ = true;
    spaces_.OnDown();
    watches_.OnDown();
  }

  void OnUp() {
    // Scripts first: everything sent after them on this connection runs after them.
    for (const RedisScript* s : gw_.scripts.All()) {
      gw_.client().Command({"SCRIPT", "LOAD", s->source()}, [](const RedisResult&) {});
    }
    {
      vrouter::MutexLock lock(&mu_);
      problem_.clear();
    }
    metrics_.redis_up->Set(1);
    // The reaper's list of this replica's spaces (entered before the first connection, or lost
    // with a Redis restart).
    for (const auto& space : spaces_.Held()) {
      gw_.client().Command({"SADD", redis::ReplicaSpacesKey(me_), space},
                           [](const RedisResult&) {});
    }
    if (!was_down_) return;
    was_down_ = false;
    metrics_.store_resyncs->Increment();
    log::Info("store_resync", {{"spaces", spaces_.size()}, {"watched", watches_.size()}});
    spaces_.ResubscribeAll();
    watches_.Resync();
  }

  // ---- housekeeping ----

  void Housekeep() {
    housekeeping_.expires_after(opt_.housekeeping_interval);
    housekeeping_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Housekeep();
    });
    metrics_.redis_pending->Set(static_cast<double>(gw_.client().pending()));
    metrics_.redis_up->Set(gw_.client().up() ? 1 : 0);
    metrics_.store_local_spaces->Set(static_cast<double>(spaces_.size()));
    spaces_.DropIdleSpaces(leases_.dead());
    if (!gw_.client().up()) return;
    sessions_.RetryDetaches();
    spaces_.RestartStuckSpaces();
    leases_.Renew();
    sessions_.WriteOwnLoad();
  }

  // ---- shared budgets: hellos and admissions ----

  // Two counters (the user's and the address's: different slots in a cluster), one answer.
  void DoCountHello(const std::string& user, const std::string& address,
                    std::chrono::milliseconds window, HelloCountDone done) {
    if (!gw_.client().up()) return done(StoreError::kUnavailable);
    struct Pending {
      HelloCountDone done;
      HelloCounts counts;
      std::optional<StoreError> error;
      int left = 2;
    };
    auto pending = std::make_shared<Pending>(Pending{std::move(done), {}, std::nullopt, 2});
    auto count = [this, pending, window](const std::string& key, std::int64_t HelloCounts::*field) {
      gw_.EvalOn(gw_.scripts.hello_count, key, {std::to_string(window.count())},
                 [this, key, pending, field](const RedisResult& r) {
                   const RedisReply* reply = ReplyOf(r);
                   const auto n = reply != nullptr ? NumberOf(*reply) : std::nullopt;
                   if (reply == nullptr) {
                     pending->error = ToStoreError(std::get<RedisFailure>(r));
                   } else if (reply->type == RedisReply::Type::kInteger && n && *n >= 1) {
                     pending->counts.*field = static_cast<std::int64_t>(*n);
                   } else if (reply->type == RedisReply::Type::kInteger) {
                     // A counter someone set out of range: the replica's own budgets hold.
                     gw_.NoteDefect(redis::Defect::kOther, key);
                     pending->error = StoreError::kCorrupt;
                   } else {
                     // An error reply (a key of the wrong type is counted by EvalOn).
                     pending->error = IsError(reply, "WRONGTYPE") ? StoreError::kCorrupt
                                                                  : StoreError::kUnavailable;
                   }
                   if (--pending->left > 0) return;
                   if (pending->error) return pending->done(*pending->error);
                   pending->done(pending->counts);
                 });
    };
    count(redis::HelloUserKey(user), &HelloCounts::user);
    count(redis::HelloAddressKey(address), &HelloCounts::address);
  }

  // How long an admission counts against a server's room (redis_schema.cc, kAdmitScript): the
  // load counts every replica reads lag by up to two housekeeping intervals (written once per
  // interval, read once per interval), plus the round trips.
  std::chrono::milliseconds AdmissionHorizon() const {
    return 2 * opt_.housekeeping_interval + std::chrono::milliseconds(250);
  }

  void DoAdmit(const std::string& server, std::uint32_t cap, std::uint32_t room,
               std::chrono::milliseconds window, AdmitDone done) {
    if (!gw_.client().up()) return done(StoreError::kUnavailable);
    const std::string key = redis::AdmissionKey(server);
    const auto horizon = AdmissionHorizon();
    gw_.client().Eval(
        gw_.scripts.admit, {key, redis::AdmissionRecentKey(server)},
        {std::to_string(cap), std::to_string(window.count()), std::to_string(room),
         std::to_string(horizon.count())},
        [this, key, window, horizon, done = std::move(done)](RedisResult r) {
          gw_.Inspect(key, r);
          const RedisReply* reply = ReplyOf(r);
          if (reply == nullptr) return done(ToStoreError(std::get<RedisFailure>(r)));
          if (!IsArray(reply) || reply->elements.size() != 3) {
            gw_.NoteDefect(redis::Defect::kOther, key);
            return done(IsError(reply, "WRONGTYPE") ? StoreError::kCorrupt
                                                    : StoreError::kUnavailable);
          }
          const auto admitted = NumberOf(reply->elements[0]);
          const auto count = NumberOf(reply->elements[1]);
          const auto left = NumberOf(reply->elements[2]);
          if (!admitted || *admitted > 1 || !count ||
              *count > std::numeric_limits<std::uint32_t>::max() || !left) {
            gw_.NoteDefect(redis::Defect::kOther, key);
            return done(StoreError::kCorrupt);
          }
          done(Admission{*admitted == 1, static_cast<std::uint32_t>(*count),
                         std::min(std::chrono::milliseconds(static_cast<std::int64_t>(*left)),
                                  std::max(window, horizon))});
        });
  }

  // ---------------------------------------------------------------- state
  const RedisStoreOptions opt_;
  const std::string me_;
  telemetry::Metrics& metrics_;

  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  LocalCopy local_;
  // The parts (store thread only, but for what they say is thread-safe).
  RedisGateway gw_;
  OwnSessions sessions_;
  SpaceCopies spaces_;
  UserWatches watches_;
  ReplicaLeases leases_;
  asio::steady_timer housekeeping_;
  GossipSealer sealer_;  // store thread only
  GossipOpener opener_;  // store thread only
  std::array<prometheus::Counter*, kGossipAuthErrorCount> gossip_refused_{};
  bool was_down_ = false;     // store thread only
  bool was_partial_ = false;  // store thread only: a shard was down (OnPartial)

  // Any thread.
  mutable vrouter::Mutex mu_;
  std::string problem_ ABSL_GUARDED_BY(mu_) = "connecting to redis";
  ChangeListener listener_ ABSL_GUARDED_BY(mu_);
  std::function<void(std::string_view)> fleet_listener_ ABSL_GUARDED_BY(mu_);
};

// ------------------------------------------------------------------ public face

RedisStore::RedisStore(RedisStoreOptions options, telemetry::Metrics& metrics,
                       ReplacedHandler on_replaced)
    : impl_(std::make_unique<Impl>(std::move(options), metrics, std::move(on_replaced))) {}
RedisStore::~RedisStore() { impl_->Stop(); }
void RedisStore::Start() { impl_->Start(); }
void RedisStore::Stop() { impl_->Stop(); }

void RedisStore::SetChangeListener(ChangeListener listener) {
  impl_->SetChangeListener(std::move(listener));
}
std::optional<assign::Assignment> RedisStore::GetLocal(std::string_view user) const {
  return impl_->local_.Get(user);
}
void RedisStore::Lookup(std::vector<std::string> users, LookupDone done) const {
  impl_->Lookup(std::move(users), std::move(done));
}
void RedisStore::LookupInSpace(std::vector<std::string> users, std::string space,
                               LookupDone done) const {
  impl_->Lookup(std::move(users), std::move(done), std::move(space));
}
void RedisStore::Put(assign::Assignment desired, std::uint64_t expected_epoch,
                     std::uint64_t min_epoch, PutDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run([impl, desired = std::move(desired), expected_epoch, min_epoch,
             done = std::move(done)]() mutable {
    impl->sessions_.DoPut(std::move(desired), expected_epoch, min_epoch, std::move(done));
  });
}
void RedisStore::Attach(std::string_view user, std::string_view space, std::uint64_t session,
                        AttachDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run([impl, user = std::string(user), space = std::string(space), session,
             done = std::move(done)]() mutable {
    impl->sessions_.DoAttach(user, space, session, std::move(done));
  });
}
void RedisStore::Detach(std::string_view user, std::uint64_t session, base::SteadyTime) {
  Impl* impl = impl_.get();
  impl->Run([impl, user = std::string(user), session] { impl->sessions_.DoDetach(user, session); });
}
void RedisStore::Remove(std::string_view user, std::uint64_t session, RemoveDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run([impl, user = std::string(user), session, done = std::move(done)]() mutable {
    impl->sessions_.DoRemove(user, session, std::move(done));
  });
}
void RedisStore::CountHello(std::string_view user, std::string_view address,
                            std::chrono::milliseconds window, HelloCountDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run([impl, user = std::string(user), address = std::string(address), window,
             done = std::move(done)]() mutable {
    impl->DoCountHello(user, address, window, std::move(done));
  });
}
void RedisStore::Admit(std::string_view server, std::uint32_t cap, std::uint32_t room,
                       std::chrono::milliseconds window, AdmitDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run(
      [impl, server = std::string(server), cap, room, window, done = std::move(done)]() mutable {
        impl->DoAdmit(server, cap, room, window, std::move(done));
      });
}
std::size_t RedisStore::LiveReplicas() const { return impl_->leases_.LiveReplicas(); }
void RedisStore::EnterSpace(std::string_view space) {
  Impl* impl = impl_.get();
  impl->Run([impl, space = std::string(space)] { impl->spaces_.Hold(space, 1, {}); });
}
void RedisStore::LeaveSpace(std::string_view space) {
  Impl* impl = impl_.get();
  impl->Run([impl, space = std::string(space)] { impl->spaces_.Release(space); });
}
void RedisStore::WatchUsers(std::span<const std::string> users, ReadyDone ready) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return ready();
  impl->Run([impl, users = std::vector<std::string>(users.begin(), users.end()),
             ready = std::move(ready)]() mutable {
    impl->watches_.DoWatch(std::move(users), std::move(ready));
  });
}
void RedisStore::UnwatchUsers(std::span<const std::string> users) {
  if (users.empty()) return;
  Impl* impl = impl_.get();
  impl->Run([impl, users = std::vector<std::string>(users.begin(), users.end())] {
    impl->watches_.DoUnwatch(users);
  });
}
absl::flat_hash_map<std::string, std::int64_t> RedisStore::LoadByServer() const {
  return impl_->leases_.LoadByServer();
}
void RedisStore::TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) {
  impl_->leases_.TakeLoadChanges(out);
}
absl::flat_hash_map<std::string, std::int64_t> RedisStore::SpaceLoad(std::string_view space) const {
  return impl_->local_.SpaceLoad(space);
}
std::vector<assign::Assignment> RedisStore::AssignedTo(std::string_view server,
                                                       std::size_t limit) const {
  return impl_->local_.AssignedTo(server, impl_->me_, limit);
}
std::size_t RedisStore::size() const { return impl_->local_.size(); }
std::string RedisStore::Problem() const { return impl_->Problem(); }
void RedisStore::PublishFleet(std::string payload) {
  Impl* impl = impl_.get();
  impl->Run([impl, payload = std::move(payload)] {
    if (!impl->gw_.client().up() || impl->opt_.replica_key.size() < kMinReplicaKeyBytes) return;
    impl->gw_.client().Command({"PUBLISH", std::string(redis::kFleetChannel),
                                impl->sealer_.Seal(payload, impl->gw_.RedisNowMs())},
                               [](const RedisResult&) {});
  });
}
void RedisStore::SetFleetListener(std::function<void(std::string_view)> listener) {
  impl_->SetFleetListener(std::move(listener));
}

}  // namespace vrouter::store
