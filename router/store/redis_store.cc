// Why this file is longer than ~600 lines: RedisStore is one class over one connection pair and
// one store thread, and its write, read, subscription, lease and resynchronisation paths all go
// through the same local copies and pending-write bookkeeping. The pure parts are elsewhere (the
// key layout and encodings in redis_schema, local copies in local_copy, the fleet gossip codec in
// fleet_gossip); the remaining sections are marked below. Redis Cluster support is where this
// splits next (routing per node).
#include "router/store/redis_store.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <limits>
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
#include "router/store/redis_cluster_client.h"
#include "router/store/redis_schema.h"

namespace vrouter::store {
namespace asio = boost::asio;

using redis::ChangeMessage;
using Clock = std::chrono::steady_clock;

namespace {

// Changes buffered for a space while its snapshot loads; beyond this the load starts over.
constexpr std::size_t kMaxBufferedChanges = 100'000;
// Users per expire/orphan script call: keeps one script's run time (Redis is single-threaded)
// well under a millisecond.
constexpr std::size_t kSweepBatch = 500;
// How long a dead replica stays listed (so late replicas still reap its users).
constexpr std::chrono::minutes kForgetDeadReplica{10};
// How far ahead of Redis's clock (as this replica estimates it) a published epoch may be before
// the payload is distrusted and the record read from Redis instead. Epochs are Redis's clock in
// microseconds when written (redis_schema.h), so a real change is never ahead by more than the
// estimate's error; a forged `left` can silence a user's watchers for at most this long.
constexpr std::uint64_t kEpochAheadUs = 2'000'000;
// At most one log line per this interval for each kind of rejected message or corrupt key.
constexpr std::chrono::seconds kLogEvery{10};
// Why a change message from pub/sub was not applied as published (metric label values).
enum class ChangeRejection : std::uint8_t { kMalformed, kWrongChannel, kEpochAhead };
constexpr std::string_view kChangeRejectionNames[] = {"malformed", "wrong_channel", "epoch_ahead"};

StoreError ToStoreError(const RedisFailure& f) {
  switch (f.kind) {
    case RedisFailureKind::kTimeout:
      return StoreError::kTimeout;
    case RedisFailureKind::kQueueFull:
      return StoreError::kOverloaded;
    default:
      return StoreError::kUnavailable;
  }
}

const RedisReply* ReplyOf(const RedisResult& r) { return std::get_if<RedisReply>(&r); }

bool IsArray(const RedisReply* r) { return r != nullptr && r->type == RedisReply::Type::kArray; }

// A number in a reply (an integer, or digits in a string) within 0..2^53-1; nullopt otherwise.
std::optional<std::uint64_t> NumberOf(const RedisReply& r) {
  if (r.type == RedisReply::Type::kInteger) {
    if (r.integer < 0 || static_cast<std::uint64_t>(r.integer) > proto::kMaxSafeInteger) {
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(r.integer);
  }
  if (r.type != RedisReply::Type::kString) return std::nullopt;
  return redis::DecodeNumber(r.str);
}

// A script's "done" flag: {1, ...}.
bool Succeeded(const RedisReply* reply) {
  return IsArray(reply) && !reply->elements.empty() && NumberOf(reply->elements[0]) == 1u;
}

bool IsError(const RedisReply* r, std::string_view prefix) {
  return r != nullptr && r->type == RedisReply::Type::kError && r->str.starts_with(prefix);
}

std::int64_t SystemMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

class RedisStore::Impl {
 public:
  Impl(RedisStoreOptions options, telemetry::Metrics& metrics, ReplacedHandler on_replaced)
      : opt_(std::move(options)),
        me_(opt_.replica_id),
        metrics_(metrics),
        on_replaced_(std::move(on_replaced)),
        client_(MakeClient()),
        housekeeping_(io_),
        sealer_(opt_.replica_key, me_),
        opener_(opt_.replica_key) {
    for (std::size_t i = 0; i < redis::kDefectCount; ++i) {
      corrupt_[i] = &metrics_.store_corrupt->Add(
          {{"kind", std::string(redis::DefectName(static_cast<redis::Defect>(i)))}});
    }
    for (std::size_t i = 0; i < std::size(kChangeRejectionNames); ++i) {
      rejected_[i] = &metrics_.store_changes_rejected->Add(
          {{"reason", std::string(kChangeRejectionNames[i])}});
    }
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
      client_->Subscribe(std::string(redis::kFleetChannel), {});
      client_->Start();
      Housekeep();
    });
  }

  void Stop() {
    stopped_ = true;  // from now on requests fail at once instead of queueing for a dead thread
    if (!thread_.joinable()) return;
    Run([this] {
      housekeeping_.cancel();
      client_->Stop();  // fails every command in flight: their completions are posted next
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
  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const {
    vrouter::MutexLock lock(&mu_);
    return load_;
  }
  void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) {
    out.clear();
    vrouter::MutexLock lock(&mu_);
    for (const std::string& server : load_changed_) {
      const auto it = load_.find(server);
      out[server] = it == load_.end() ? 0 : it->second;
    }
    load_changed_.clear();
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
    if (!client_->up() || stopped_) return done(StoreError::kUnavailable);
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
      if (space.empty()) return ReadRemote(std::move(wanted), std::move(merge));
      ReadInSpace(space, std::move(wanted), std::move(merge));
    });
  }

  // The records of `users` in `space` (nullopt where there is none): one HGET each.
  void ReadInSpace(const std::string& space, std::vector<std::string> users, LookupDone done) {
    struct Read {
      Assignments found;
      std::size_t left = 0;
      std::optional<StoreError> error;
      LookupDone done;
    };
    auto read = std::make_shared<Read>();
    read->found.resize(users.size());
    read->left = users.size();
    read->done = std::move(done);
    if (read->left == 0) return read->done(Assignments{});
    for (std::size_t i = 0; i < users.size(); ++i) {
      ReadRecord(space, users[i], [read, i](StoreResult<std::optional<assign::Assignment>> r) {
        if (auto* e = std::get_if<StoreError>(&r)) {
          read->error = *e;
        } else {
          read->found[i] = std::move(std::get<0>(r));
        }
        if (--read->left > 0) return;
        if (read->error) return read->done(*read->error);
        read->done(std::move(read->found));
      });
    }
  }

  // ---------------------------------------------------------------- store thread
  // ---- what the store read that it cannot trust ----
  // Counts and logs (at most once per kLogEvery per kind, key and field) a defect of the data at
  // `key` (`field`: the hash field, when it is one: a user, or "" for the sequence).
  void NoteDefect(redis::Defect d, std::string_view key, std::string_view field = {}) {
    corrupt_[static_cast<std::size_t>(d)]->Increment();
    if (!LogDue(std::string(redis::DefectName(d)) + " " + std::string(key) + " " +
                std::string(field))) {
      return;
    }
    static constexpr std::string_view kAction[redis::kDefectCount] = {
        "treated as absent; the user's next write replaces it",
        "reset by the space's next write; local copies reload the space",
        "isolated: writes in this space fail until an operator repairs or deletes the key",
        "treated as absent", "skipped"};
    log::Error("store_corrupt", {{"kind", redis::DefectName(d)},
                                 {"key", key},
                                 {"field", field},
                                 {"action", kAction[static_cast<std::size_t>(d)]}});
  }

  // A change message from pub/sub not applied as published.
  void RejectChange(ChangeRejection why, std::string_view channel) {
    rejected_[static_cast<std::size_t>(why)]->Increment();
    if (!LogDue(std::string(kChangeRejectionNames[static_cast<std::size_t>(why)]))) return;
    log::Warn(
        "store_change_rejected",
        {{"reason", kChangeRejectionNames[static_cast<std::size_t>(why)]}, {"channel", channel}});
  }

  bool LogDue(const std::string& what) {
    const auto now = Clock::now();
    if (log_due_.size() > 10000) log_due_.clear();  // bounded whatever the keys
    auto [it, fresh] = log_due_.try_emplace(what, now);
    if (!fresh && now < it->second) return false;
    it->second = now + kLogEvery;
    return true;
  }

  // Checks a reply for what the store held at `key`: a WRONGTYPE error is a defect of the key,
  // and a script's trailing "VRDEFECTS ..." report is counted and removed from the reply.
  void Inspect(const std::string& key, RedisResult& r) {
    auto* reply = std::get_if<RedisReply>(&r);
    if (reply == nullptr) return;
    if (IsError(reply, redis::kCorruptReplyPrefix) || IsError(reply, "WRONGTYPE")) {
      return NoteDefect(redis::Defect::kWrongType, key);
    }
    if (!IsArray(reply) || reply->elements.empty()) return;
    const RedisReply& last = reply->elements.back();
    if (IsStatus(last, redis::kDefectsPrefix)) {
      std::string_view names = std::string_view(last.str).substr(redis::kDefectsPrefix.size());
      while (!names.empty()) {
        const auto comma = names.find(',');
        const auto d = redis::DefectFromName(names.substr(0, comma));
        NoteDefect(d.value_or(redis::Defect::kOther), key);
        names.remove_prefix(comma == std::string_view::npos ? names.size() : comma + 1);
      }
      reply->elements.pop_back();
    }
    // A sharded script's user changes (redis_schema.h): published to the users' shard channels.
    std::vector<std::string> told;
    while (!reply->elements.empty() && IsStatus(reply->elements.back(), redis::kTellPrefix)) {
      told.push_back(reply->elements.back().str.substr(redis::kTellPrefix.size()));
      reply->elements.pop_back();
    }
    for (auto it = told.rbegin(); it != told.rend(); ++it) Tell(std::move(*it));
  }

  static bool IsStatus(const RedisReply& r, std::string_view prefix) {
    return r.type == RedisReply::Type::kStatus && r.str.starts_with(prefix);
  }

  // SPUBLISHes a change handed back by a sharded script to its user's channel. Not atomic with
  // the script: a replica that dies between the two leaves that one change unheard by the
  // user's watchers (their next change, or a resync, tells them where the user is).
  void Tell(std::string message) {
    auto m = redis::DecodeChange(message);
    if (!m) return NoteDefect(redis::Defect::kOther, "VRTELL");
    client_->Command({"SPUBLISH", redis::UserChannel(m->user, pubsub_), std::move(message)},
                     [](const RedisResult&) {});
  }

  // A script on `key` (a space's key: EvalSpace), its reply inspected first.
  void EvalOn(const RedisScript& script, const std::string& key, std::vector<std::string> args,
              RedisCallback cb) {
    client_->Eval(script, {key}, std::move(args), [this, key, cb = std::move(cb)](RedisResult r) {
      Inspect(key, r);
      cb(std::move(r));
    });
  }
  void EvalSpace(const RedisScript& script, const std::string& space, std::vector<std::string> args,
                 RedisCallback cb) {
    EvalOn(script, redis::SpaceKey(space), std::move(args), std::move(cb));
  }

  // A command on `key`, its reply inspected first.
  void CommandOn(const std::string& key, std::vector<std::string> args, RedisCallback cb) {
    client_->Command(std::move(args), [this, key, cb = std::move(cb)](RedisResult r) {
      Inspect(key, r);
      cb(std::move(r));
    });
  }

  // Why a script refused a write, from its reply: its space key is corrupt, or something else.
  static StoreError ScriptRefusal(const RedisReply* reply) {
    return IsError(reply, redis::kCorruptReplyPrefix) ? StoreError::kCorrupt
                                                      : StoreError::kUnavailable;
  }

  // Redis's clock as this replica estimates it (ms), from the lease script's answers.
  std::int64_t RedisNowMs() const { return SystemMs() + clock_offset_ms_; }
  // The highest epoch a change published now can honestly carry (see kEpochAheadUs).
  std::uint64_t EpochCeiling() const {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, RedisNowMs())) * 1000 +
           kEpochAheadUs;
  }

  // Reads users from Redis: the pointer to their space, then their record there.
  void ReadRemote(std::vector<std::string> users, LookupDone done) {
    struct Read {
      std::vector<std::string> users;
      Assignments found;
      std::size_t left = 0;
      std::optional<StoreError> error;
      LookupDone done;
      void Finish() {
        if (--left > 0) return;
        if (error) return done(*error);
        done(std::move(found));
      }
    };
    auto read = std::make_shared<Read>();
    read->found.resize(users.size());
    read->left = users.size();
    read->done = std::move(done);
    read->users = std::move(users);
    if (read->left == 0) return read->done(Assignments{});
    for (std::size_t i = 0; i < read->users.size(); ++i) {
      const std::string pointer = redis::UserKey(read->users[i]);
      CommandOn(pointer, {"GET", pointer}, [this, read, i, pointer](const RedisResult& r) {
        const RedisReply* reply = ReplyOf(r);
        if (reply == nullptr) {
          read->error = ToStoreError(std::get<RedisFailure>(r));
          return read->Finish();
        }
        if (reply->type != RedisReply::Type::kString) return read->Finish();  // not connected
        if (!proto::IsValidId(reply->str)) {
          NoteDefect(redis::Defect::kPointer, pointer);
          return read->Finish();
        }
        std::string space = reply->str;
        ReadRecord(space, read->users[i],
                   [read, i](StoreResult<std::optional<assign::Assignment>> found) {
                     if (auto* e = std::get_if<StoreError>(&found)) {
                       read->error = *e;
                     } else {
                       read->found[i] = std::move(std::get<0>(found));
                     }
                     read->Finish();
                   });
      });
    }
  }

  // The user's record in `space` as Redis holds it now (nullopt: none, or not a valid one).
  void ReadRecord(const std::string& space, const std::string& user, AttachDone done) {
    const std::string key = redis::SpaceKey(space);
    CommandOn(key, {"HGET", key, user},
              [this, key, space, user, done = std::move(done)](const RedisResult& r) {
                const RedisReply* rec = ReplyOf(r);
                if (rec == nullptr) return done(ToStoreError(std::get<RedisFailure>(r)));
                if (rec->type != RedisReply::Type::kString) {
                  return done(std::optional<assign::Assignment>());
                }
                auto d = redis::DecodeRecord(rec->str);
                if (!d) {
                  NoteDefect(redis::Defect::kRecord, key, user);
                  return done(std::optional<assign::Assignment>());
                }
                return done(std::optional<assign::Assignment>(
                    redis::ToAssignment(user, space, *d, Clock::now())));
              });
  }

  std::optional<assign::Assignment> Known(const std::string& user) const {
    auto it = owned_.find(user);
    if (it != owned_.end()) return it->second;
    return local_.Get(user);
  }

  void DoPut(assign::Assignment desired, std::uint64_t expected, std::uint64_t min_epoch,
             PutDone done) {
    if (!client_->up()) return done(StoreError::kUnavailable);
    // Records name the writing process (its lease identity), whatever replica name the caller
    // used: ownership, sweeping and reaping all go by it.
    if (desired.session != 0) desired.replica = me_;
    // While this write is in flight, a snapshot of the user's space must not "repair" the user
    // from owned_ (it would race the write).
    ++writing_[desired.user];
    done = [this, user = desired.user, done = std::move(done)](StoreResult<assign::PutResult> r) {
      if (auto it = writing_.find(user); it != writing_.end() && --it->second <= 0) {
        writing_.erase(it);
      }
      done(std::move(r));
    };
    if (expected != 0) {
      auto known = Known(desired.user);
      if (known && known->epoch == expected && known->space != desired.space) {
        return MoveSpace(std::move(desired), *known, min_epoch, std::move(done));
      }
    }
    PutScript(desired, expected, min_epoch, "", std::move(done));
  }

  // A user changing spaces: its record leaves the old space's key (compare-and-set on the epoch,
  // which decides between racing writers) and is written into the new one.
  void MoveSpace(assign::Assignment desired, const assign::Assignment& old, std::uint64_t min_epoch,
                 PutDone done) {
    auto own = owned_.find(desired.user);
    if (own != owned_.end()) own->second.space = desired.space;  // the old space's 'r' is ours
    EvalSpace(remove_, old.space, {old.user, "", "0", old.space, std::to_string(old.epoch), "0"},
              [this, desired = std::move(desired), old, min_epoch,
               done = std::move(done)](const RedisResult& r) mutable {
                const RedisReply* reply = ReplyOf(r);
                // Not moved: the user stays where it was, as far as this replica knows.
                auto stay = [&] {
                  auto own = owned_.find(old.user);
                  if (own != owned_.end() && own->second.space == desired.space) {
                    own->second.space = old.space;
                  }
                };
                if (reply == nullptr) {
                  stay();
                  return done(ToStoreError(std::get<RedisFailure>(r)));
                }
                if (IsError(reply, redis::kCorruptReplyPrefix)) {
                  stay();
                  return done(StoreError::kCorrupt);
                }
                if (!Succeeded(reply)) {
                  stay();  // somebody else wrote it meanwhile: the caller hears what is there now
                  return ReadCurrent(old.user, std::move(done));
                }
                local_.Erase(old.space, old.user);
                const std::uint64_t floor = std::max(min_epoch, old.epoch);
                PutScript(
                    desired, 0, floor, old.server,
                    [this, old, done = std::move(done)](StoreResult<assign::PutResult> r) mutable {
                      if (std::holds_alternative<StoreError>(r)) {
                        // Removed from the old space but not written to the new one: put it
                        // back (best effort; a resync after an outage repairs it too).
                        auto own = owned_.find(old.user);
                        if (own != owned_.end()) own->second.space = old.space;
                        PutScript(old, 0, old.epoch, "",
                                  [](const StoreResult<assign::PutResult>&) {});
                      }
                      done(std::move(r));
                    });
              });
  }

  // `claim`: the write comes from the session named in `desired` (it then owns the user here);
  // false for the store's own repairs, which never make a released session an owner again.
  void PutScript(const assign::Assignment& desired, std::uint64_t expected, std::uint64_t min_epoch,
                 std::string previous_server, PutDone done, bool claim = true) {
    const std::string space = desired.space;
    EvalSpace(
        put_, space,
        {desired.user, std::to_string(expected), std::to_string(min_epoch), desired.server,
         desired.replica, std::to_string(desired.session), space, std::move(previous_server)},
        [this, user = desired.user, space, claim, done = std::move(done)](const RedisResult& r) {
          const RedisReply* reply = ReplyOf(r);
          if (reply == nullptr) return done(ToStoreError(std::get<RedisFailure>(r)));
          if (!IsArray(reply) || reply->elements.size() < 2) {
            if (!IsError(reply, redis::kCorruptReplyPrefix)) {
              log::Error("redis_script_failed", {{"script", "put"}, {"reply", reply->str}});
            }
            return done(ScriptRefusal(reply));
          }
          assign::PutResult result;
          const auto record = reply->elements[1].type == RedisReply::Type::kString
                                  ? redis::DecodeRecord(reply->elements[1].str)
                                  : std::nullopt;
          if (record) result.current = redis::ToAssignment(user, space, *record, Clock::now());
          const bool written = Succeeded(reply);
          if (!written && !record) {
            // Refused, and the user is not in this space: the current record is elsewhere.
            return ReadCurrent(user, done);
          }
          if (!written || !record) return done(std::move(result));
          result.written = true;
          std::optional<std::string> from;
          if (reply->elements.size() > 3 && !reply->elements[3].str.empty()) {
            from = reply->elements[3].str;
          }
          result.change = assign::AssignmentChange{assign::AssignmentChange::Kind::kAssigned,
                                                   result.current, std::move(from), std::nullopt};
          ApplyOwnWrite(result.current, claim);
          // Answer once the pointer is written too: a lookup on any replica that starts after
          // the answer then finds the user (its outcome does not change the write's).
          client_->Command({"SET", redis::UserKey(user), space},
                           [done, result = std::move(result)](const RedisResult&) mutable {
                             done(std::move(result));
                           });
        });
  }

  // A refused write's answer: the user's record wherever it is now.
  void ReadCurrent(const std::string& user, PutDone done) {
    ReadRemote({user}, [done = std::move(done)](StoreResult<Assignments> read) {
      assign::PutResult refused;
      if (auto* found = std::get_if<Assignments>(&read); found != nullptr && found->front()) {
        refused.current = *found->front();
      }
      done(std::move(refused));
    });
  }

  // A write of this replica that Redis accepted: visible to this replica's lookups at once.
  void ApplyOwnWrite(const assign::Assignment& a, bool claim = true) {
    if (local_.Holds(a.space)) {
      auto cur = local_.Get(a.user);
      if (!cur || cur->space != a.space || cur->epoch <= a.epoch) local_.Upsert(a);
    }
    if (a.replica != me_ || a.session == 0) return;
    if (claim) {
      owned_[a.user] = a;
      return;
    }
    // A repair: if the session let go of the user meanwhile (detach, leave), let go again.
    auto own = owned_.find(a.user);
    if (own == owned_.end() || own->second.session != a.session)
      SendDetach(a.user, a.session, a.space);
  }

  void SendDetach(const std::string& user, std::uint64_t session, const std::string& space) {
    EvalSpace(detach_, space, {user, me_, std::to_string(session), space},
              [this, user, session, space](const RedisResult& r) {
                // Not reaching Redis is repaired by the resync after an outage; anything else
                // (queue full, error reply) is tried again by housekeeping, except a corrupt
                // space (isolated until an operator repairs it; its record is unusable anyway).
                auto* failure = std::get_if<RedisFailure>(&r);
                const bool retry = failure != nullptr
                                       ? failure->kind != RedisFailureKind::kDisconnected &&
                                             failure->kind != RedisFailureKind::kStopped
                                       : ReplyOf(r)->type == RedisReply::Type::kError &&
                                             !IsError(ReplyOf(r), redis::kCorruptReplyPrefix);
                if (retry) retry_detach_.push_back({user, session, space});
              });
  }

  void DoAttach(const std::string& user, const std::string& space, std::uint64_t session,
                AttachDone done) {
    if (!client_->up()) return done(StoreError::kUnavailable);
    AttachIn(user, space, session,
             [this, user, space, session,
              done = std::move(done)](StoreResult<std::optional<assign::Assignment>> r) mutable {
               auto* found = std::get_if<std::optional<assign::Assignment>>(&r);
               if (found == nullptr || found->has_value()) return done(std::move(r));
               // Not in the session's space: the user may be elsewhere (a space change).
               const std::string pointer = redis::UserKey(user);
               CommandOn(pointer, {"GET", pointer},
                         [this, user, space, session, pointer,
                          done = std::move(done)](const RedisResult& g) mutable {
                           const RedisReply* reply = ReplyOf(g);
                           if (reply == nullptr) {
                             return done(ToStoreError(std::get<RedisFailure>(g)));
                           }
                           if (reply->type != RedisReply::Type::kString || reply->str == space) {
                             return done(std::optional<assign::Assignment>());
                           }
                           if (!proto::IsValidId(reply->str)) {
                             NoteDefect(redis::Defect::kPointer, pointer);
                             return done(std::optional<assign::Assignment>());
                           }
                           AttachIn(user, reply->str, session, std::move(done));
                         });
             });
  }

  void AttachIn(const std::string& user, const std::string& space, std::uint64_t session,
                AttachDone done) {
    EvalSpace(
        attach_, space, {user, me_, std::to_string(session), space},
        [this, user, space, done = std::move(done)](const RedisResult& r) {
          const RedisReply* reply = ReplyOf(r);
          if (reply == nullptr) return done(ToStoreError(std::get<RedisFailure>(r)));
          if (!IsArray(reply) || reply->elements.empty()) {
            if (!IsError(reply, redis::kCorruptReplyPrefix)) {
              log::Error("redis_script_failed", {{"script", "attach"}, {"reply", reply->str}});
            }
            return done(ScriptRefusal(reply));
          }
          if (!Succeeded(reply) || reply->elements.size() < 2) {
            return done(std::optional<assign::Assignment>());
          }
          auto record = redis::DecodeRecord(reply->elements[1].str);
          if (!record) return done(std::optional<assign::Assignment>());
          auto a = redis::ToAssignment(user, space, *record, Clock::now());
          ApplyOwnWrite(a);
          done(std::optional<assign::Assignment>(std::move(a)));
        });
  }

  void DoDetach(const std::string& user, std::uint64_t session) {
    // The script checks that this session owns the record, so it is sent whatever owned_ says
    // (a repair in flight may be about to make the session the owner again).
    std::string space;
    auto it = owned_.find(user);
    if (it != owned_.end() && it->second.session == session) {
      space = it->second.space;
      owned_.erase(it);  // before the script: its 'o' change must not look like a takeover
    } else if (auto known = Known(user)) {
      space = known->space;
    } else {
      return;
    }
    if (!client_->up()) return;  // the resync after the outage detaches it
    SendDetach(user, session, space);
  }

  void DoRemove(const std::string& user, std::uint64_t session, RemoveDone done) {
    auto it = owned_.find(user);
    if (it == owned_.end() || it->second.session != session) return done(false);
    if (!client_->up()) return done(StoreError::kUnavailable);
    const assign::Assignment own = it->second;
    owned_.erase(it);
    EvalSpace(remove_, own.space, {user, me_, std::to_string(session), own.space, "0", "1"},
              [this, own, done = std::move(done)](const RedisResult& r) {
                const RedisReply* reply = ReplyOf(r);
                if (reply == nullptr || IsError(reply, redis::kCorruptReplyPrefix)) {
                  owned_.emplace(own.user, own);  // still ours: the session lives on
                  return done(reply == nullptr ? ToStoreError(std::get<RedisFailure>(r))
                                               : StoreError::kCorrupt);
                }
                const bool removed = Succeeded(reply);
                if (removed) {
                  local_.Erase(own.space, own.user);
                  DeletePointer(own.user, own.space);
                }
                done(removed);
              });
  }

  // Two counters (the user's and the address's: different slots in a cluster), one answer.
  void DoCountHello(const std::string& user, const std::string& address,
                    std::chrono::milliseconds window, HelloCountDone done) {
    if (!client_->up()) return done(StoreError::kUnavailable);
    struct Pending {
      HelloCountDone done;
      HelloCounts counts;
      std::optional<StoreError> error;
      int left = 2;
    };
    auto pending = std::make_shared<Pending>(Pending{std::move(done), {}, std::nullopt, 2});
    auto count = [this, pending, window](const std::string& key, std::int64_t HelloCounts::*field) {
      EvalOn(hello_count_, key, {std::to_string(window.count())},
             [this, key, pending, field](const RedisResult& r) {
               const RedisReply* reply = ReplyOf(r);
               const auto n = reply != nullptr ? NumberOf(*reply) : std::nullopt;
               if (reply == nullptr) {
                 pending->error = ToStoreError(std::get<RedisFailure>(r));
               } else if (reply->type == RedisReply::Type::kInteger && n && *n >= 1) {
                 pending->counts.*field = static_cast<std::int64_t>(*n);
               } else if (reply->type == RedisReply::Type::kInteger) {
                 // A counter someone set out of range: the replica's own budgets hold.
                 NoteDefect(redis::Defect::kOther, key);
                 pending->error = StoreError::kCorrupt;
               } else {
                 // An error reply (a key of the wrong type is counted by EvalOn).
                 pending->error =
                     IsError(reply, "WRONGTYPE") ? StoreError::kCorrupt : StoreError::kUnavailable;
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
    if (!client_->up()) return done(StoreError::kUnavailable);
    const std::string key = redis::AdmissionKey(server);
    const auto horizon = AdmissionHorizon();
    client_->Eval(
        admit_, {key, redis::AdmissionRecentKey(server)},
        {std::to_string(cap), std::to_string(window.count()), std::to_string(room),
         std::to_string(horizon.count())},
        [this, key, window, horizon, done = std::move(done)](RedisResult r) {
          Inspect(key, r);
          const RedisReply* reply = ReplyOf(r);
          if (reply == nullptr) return done(ToStoreError(std::get<RedisFailure>(r)));
          if (!IsArray(reply) || reply->elements.size() != 3) {
            NoteDefect(redis::Defect::kOther, key);
            return done(IsError(reply, "WRONGTYPE") ? StoreError::kCorrupt
                                                    : StoreError::kUnavailable);
          }
          const auto admitted = NumberOf(reply->elements[0]);
          const auto count = NumberOf(reply->elements[1]);
          const auto left = NumberOf(reply->elements[2]);
          if (!admitted || *admitted > 1 || !count ||
              *count > std::numeric_limits<std::uint32_t>::max() || !left) {
            NoteDefect(redis::Defect::kOther, key);
            return done(StoreError::kCorrupt);
          }
          done(Admission{*admitted == 1, static_cast<std::uint32_t>(*count),
                         std::min(std::chrono::milliseconds(static_cast<std::int64_t>(*left)),
                                  std::max(window, horizon))});
        });
  }

  void DeletePointer(const std::string& user, const std::string& space) {
    EvalOn(pointer_delete_, redis::UserKey(user), {space}, [](const RedisResult&) {});
  }

  // ---- interest ----
  struct SpaceState {
    int refs = 0;
    Clock::time_point hold_until{};
    enum class Phase { kSubscribing, kLoading, kReady } phase = Phase::kSubscribing;
    std::uint64_t seq = 0;
    std::uint64_t generation = 0;     // a newer load makes older callbacks stale
    Clock::time_point phase_since{};  // when the current subscribe or load began
    std::vector<ChangeMessage> buffered;
  };

  void Hold(const std::string& space, int refs, Clock::time_point until) {
    auto [it, fresh] = spaces_.try_emplace(space);
    it->second.refs += refs;
    it->second.hold_until = std::max(it->second.hold_until, until);
    if (!fresh) return;
    if (client_->up()) {
      client_->Command({"SADD", redis::ReplicaSpacesKey(me_), space}, [](const RedisResult&) {});
    }
    Subscribe(space);
  }

  // Subscribes (again) and loads the snapshot once Redis has confirmed the subscription.
  void Subscribe(const std::string& space) {
    SpaceState& st = spaces_[space];
    st.phase = SpaceState::Phase::kSubscribing;
    st.phase_since = Clock::now();
    st.buffered.clear();
    const std::uint64_t gen = ++st.generation;
    Listen(redis::SpaceChannel(space, pubsub_), [this, space, gen] { LoadSnapshot(space, gen); });
  }

  void LoadSnapshot(const std::string& space, std::uint64_t gen) {
    auto it = spaces_.find(space);
    if (it == spaces_.end() || it->second.generation != gen) return;
    it->second.phase = SpaceState::Phase::kLoading;
    it->second.phase_since = Clock::now();
    const std::string key = redis::SpaceKey(space);
    CommandOn(key, {"HGETALL", key}, [this, key, space, gen](const RedisResult& r) {
      auto it = spaces_.find(space);
      if (it == spaces_.end() || it->second.generation != gen) return;
      SpaceState& st = it->second;
      const RedisReply* reply = ReplyOf(r);
      // Not a hash (counted and logged by CommandOn): isolated, held as an empty space. Writes
      // there fail with kCorrupt; once an operator deletes the key, the next write's change
      // (sequence 1) applies here as usual.
      const bool wrong_type = IsError(reply, "WRONGTYPE");
      if (!IsArray(reply) && !wrong_type) return;  // RestartStuckSpaces loads it again
      std::vector<assign::Assignment> records;
      std::uint64_t seq = 0;
      const auto now = Clock::now();
      for (std::size_t i = 0; !wrong_type && i + 1 < reply->elements.size(); i += 2) {
        const std::string& field = reply->elements[i].str;
        if (field.empty()) {
          // Not a number: 0 here, so that the change after the write that resets it is a gap.
          auto n = NumberOf(reply->elements[i + 1]);
          if (!n) NoteDefect(redis::Defect::kSequence, key);
          seq = n.value_or(0);
        } else if (auto rec = redis::DecodeRecord(reply->elements[i + 1].str);
                   rec && proto::IsValidId(field)) {
          records.push_back(redis::ToAssignment(field, space, *rec, DetachedSince(*rec, now)));
        } else {
          NoteDefect(redis::Defect::kRecord, key, field);
        }
      }
      local_.Replace(space, records);
      st.seq = seq;
      st.phase = SpaceState::Phase::kReady;
      metrics_.store_space_loads->Increment();
      std::vector<ChangeMessage> buffered = std::move(st.buffered);
      st.buffered.clear();
      std::sort(buffered.begin(), buffered.end(),
                [](const auto& a, const auto& b) { return a.seq < b.seq; });
      for (auto& m : buffered) ApplySpaceChange(space, std::move(m));
      Reconcile(space, records);
    });
  }

  // The local time a detached record was detached at, from the Redis-clock ms in the record.
  Clock::time_point DetachedSince(const redis::Record& r, Clock::time_point now) const {
    if (r.session != 0 || r.detached_ms == 0) return now;
    const std::int64_t redis_now = SystemMs() + clock_offset_ms_;
    return now - std::chrono::milliseconds(std::max<std::int64_t>(0, redis_now - r.detached_ms));
  }

  // After a (re)load: this replica's records match its live sessions. A live session whose record
  // Redis lost is written again; a record of this replica without a live session is detached.
  void Reconcile(const std::string& space, const std::vector<assign::Assignment>& records) {
    absl::flat_hash_map<std::string, const assign::Assignment*> in_redis;
    for (const auto& a : records) in_redis[a.user] = &a;
    std::vector<assign::Assignment> mine;  // copied: CheckOwnership may erase from owned_
    for (const auto& [user, own] : owned_) {
      if (own.space == space && !writing_.contains(user)) mine.push_back(own);
    }
    for (const auto& own : mine) {
      auto it = in_redis.find(own.user);
      if (it == in_redis.end()) {
        Reassert(own);
      } else {
        CheckOwnership(*it->second);
      }
    }
    for (const auto& a : records) {
      if (a.replica != me_ || a.session == 0) continue;
      auto own = owned_.find(a.user);
      if (own != owned_.end() && own->second.session == a.session) continue;
      EvalSpace(detach_, space, {a.user, me_, std::to_string(a.session), space},
                [](const RedisResult&) {});
    }
  }

  void Reassert(const assign::Assignment& own) {
    log::Info("store_reassert", {{"user", own.user}, {"server", own.server}});
    metrics_.store_reasserted->Increment();
    PutScript(
        own, 0, own.epoch, "", [](const StoreResult<assign::PutResult>&) {}, /*claim=*/false);
  }

  // ---- change stream ----
  void OnMessage(std::string_view channel, std::string_view payload) {
    if (channel == redis::kFleetChannel) return OnFleetMessage(payload);
    auto m = redis::DecodeChange(payload);
    if (!m) return RejectChange(ChangeRejection::kMalformed, channel);
    // A change is about the user (or in the space) its channel names; anything else is forged.
    if (auto user = redis::UserOfChannel(channel, pubsub_)) {
      if (*user != m->user) return RejectChange(ChangeRejection::kWrongChannel, channel);
      return NotifyWatchers(*m);
    }
    auto of_space = redis::SpaceOfChannel(channel, pubsub_);
    if (!of_space) return;
    const std::string space(*of_space);
    if (m->space != space) return RejectChange(ChangeRejection::kWrongChannel, channel);
    auto it = spaces_.find(space);
    if (it == spaces_.end()) return;
    SpaceState& st = it->second;
    if (st.phase != SpaceState::Phase::kReady) {
      if (st.buffered.size() >= kMaxBufferedChanges) return Subscribe(space);
      st.buffered.push_back(std::move(*m));
      return;
    }
    ApplySpaceChange(space, std::move(*m));
  }

  // Fleet messages of the other replicas (and this one's echo): only sealed ones with the replica
  // key, recent and not replayed (gossip_auth.h), reach the fleet controller.
  void OnFleetMessage(std::string_view payload) {
    if (opt_.replica_key.size() < kMinReplicaKeyBytes) return;  // Start() said why
    auto opened = opener_.Open(payload, RedisNowMs());
    if (!opened.ok()) {
      const auto why = static_cast<std::size_t>(opened.error());
      gossip_refused_[why]->Increment();
      if (LogDue("gossip " + std::string(GossipAuthErrorName(opened.error())))) {
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

  void ApplySpaceChange(const std::string& space, ChangeMessage m) {
    SpaceState& st = spaces_[space];
    if (m.seq <= st.seq) return;  // in the snapshot already
    if (m.record.epoch > EpochCeiling() && m.seq == st.seq + 1) {
      // An epoch ahead of Redis's clock: not applied as published (a forged one would make this
      // copy ignore the user's real changes, and clients hear it). What Redis holds is read
      // instead, and the sequence number is not taken: a real change of that number still
      // applies, and if this one was real (a resume presenting a huge epoch), the next change
      // is a gap and the space reloads.
      RejectChange(ChangeRejection::kEpochAhead, redis::SpaceChannel(space, pubsub_));
      return RefreshRecord(space, m.user);
    }
    if (m.seq != st.seq + 1) {
      metrics_.store_gaps->Increment();
      log::Warn("store_sequence_gap", {{"space", space}, {"expected", st.seq + 1}, {"got", m.seq}});
      st.phase = SpaceState::Phase::kLoading;
      st.buffered.clear();
      st.buffered.push_back(std::move(m));
      LoadSnapshot(space, ++st.generation);
      return;
    }
    st.seq = m.seq;
    const auto a =
        redis::ToAssignment(m.user, m.space, m.record, DetachedSince(m.record, Clock::now()));
    auto cur = local_.Get(m.user);
    if (m.kind == ChangeMessage::Kind::kRemoved) {
      if (cur && cur->space == m.space && cur->epoch <= a.epoch) local_.Erase(m.space, m.user);
    } else if (!cur || cur->space != m.space || cur->epoch <= a.epoch) {
      local_.Upsert(a);
    }
    if (m.kind == ChangeMessage::Kind::kRemoved) {
      auto own = owned_.find(m.user);
      // A live session's record removed by someone else (this replica's lease ran out during a
      // partition, and another replica expired it): the session is still here, so write it back.
      if (own != owned_.end() && own->second.space == m.space && own->second.epoch <= a.epoch &&
          !writing_.contains(m.user)) {
        Reassert(own->second);
      }
      return;
    }
    CheckOwnership(a);
  }

  // Replaces the local copy's record of `user` in `space` with what Redis holds now.
  void RefreshRecord(const std::string& space, const std::string& user) {
    const auto before = local_.Get(user);
    ReadRecord(space, user,
               [this, space, user, before](StoreResult<std::optional<assign::Assignment>> r) {
                 auto it = spaces_.find(space);
                 // Failed, or a (re)load of the space is under way: the load covers the user.
                 if (std::holds_alternative<StoreError>(r) || it == spaces_.end() ||
                     it->second.phase != SpaceState::Phase::kReady) {
                   return;
                 }
                 const auto& found = std::get<0>(r);
                 const auto cur = local_.Get(user);
                 if (found) {
                   if (!cur || cur->space != space || cur->epoch <= found->epoch) {
                     local_.Upsert(*found);
                   }
                   return CheckOwnership(*found);
                 }
                 // Gone from Redis: erased here unless a change arrived meanwhile.
                 const bool unchanged =
                     cur.has_value() == before.has_value() && (!cur || cur->epoch == before->epoch);
                 if (cur && unchanged) local_.Erase(space, user);
               });
  }

  // Whether a record change took a user away from this replica's live session.
  void CheckOwnership(const assign::Assignment& a) {
    auto it = owned_.find(a.user);
    if (it == owned_.end() || it->second.space != a.space || a.epoch < it->second.epoch) return;
    assign::Assignment& own = it->second;
    if (a.replica == me_ && a.session == own.session) {
      own = a;
      return;
    }
    if (a.session == 0) {
      // Detached by someone else (this replica looked dead): the session is alive, take it back.
      EvalSpace(attach_, a.space, {a.user, me_, std::to_string(own.session), a.space},
                [this, user = a.user, space = a.space, session = own.session](const RedisResult&) {
                  auto own = owned_.find(user);
                  if (own == owned_.end() || own->second.session != session) {
                    SendDetach(user, session, space);  // the session let go meanwhile
                  }
                });
      return;
    }
    const std::uint64_t session = own.session;
    const std::string user = a.user;
    owned_.erase(it);
    if (on_replaced_) on_replaced_(user, session);
  }

  void NotifyWatchers(const ChangeMessage& m) {
    if (m.kind == ChangeMessage::Kind::kOwner) return;
    auto it = watched_.find(m.user);
    if (it == watched_.end()) return;
    if (m.record.epoch > EpochCeiling()) {
      // Ahead of Redis's clock: a forged `left` or `moved` would silence every later change of
      // the user for its watchers (their epochs would look stale). Tell them what Redis holds.
      RejectChange(ChangeRejection::kEpochAhead, redis::UserChannel(m.user, pubsub_));
      ReadRemote({m.user}, [this, user = m.user](StoreResult<Assignments> r) {
        if (auto* found = std::get_if<Assignments>(&r)) ReconcileWatched(user, found->front());
      });
      return;
    }
    Watched& w = it->second;
    const bool removed = m.kind == ChangeMessage::Kind::kRemoved;
    if (m.record.epoch < w.last_epoch) return;
    if (m.record.epoch == w.last_epoch && (!removed || w.removed)) return;
    // The space the user was in, as its watchers last heard it: a move to another space is
    // published as an assignment in the new space only (the old space's removal tells nobody).
    std::optional<std::string> from_space;
    if (!removed && w.last && !w.removed) from_space = w.last->space;
    w.last_epoch = m.record.epoch;
    w.removed = removed;
    assign::AssignmentChange change{
        removed ? assign::AssignmentChange::Kind::kRemoved
                : assign::AssignmentChange::Kind::kAssigned,
        redis::ToAssignment(m.user, m.space, m.record, Clock::now()),
        m.from_server.empty() ? std::nullopt : std::optional<std::string>(m.from_server),
        std::move(from_space)};
    w.last = change.assignment;
    Notify(change);
  }

  void Notify(const assign::AssignmentChange& change) {
    ChangeListener l;
    {
      vrouter::MutexLock lock(&mu_);
      l = listener_;
    }
    if (l) l(change);
  }

  struct Watched {
    int refs = 0;
    bool confirmed = false;                           // Redis confirmed the SUBSCRIBE
    std::vector<std::function<void()>> on_confirmed;  // later watchers waiting for it
    std::uint64_t last_epoch = 0;
    bool removed = false;
    std::optional<assign::Assignment> last;
  };

  void DoWatch(std::vector<std::string> users, ReadyDone ready) {
    std::vector<std::string> fresh, unconfirmed;
    for (auto& u : users) {
      Watched& w = watched_[u];
      if (w.refs++ == 0) {
        fresh.push_back(std::move(u));
      } else if (!w.confirmed) {
        unconfirmed.push_back(std::move(u));  // an earlier watch's SUBSCRIBE is on its way
      }
    }
    if (fresh.empty() && unconfirmed.empty()) return ready();
    if (!client_->up()) {
      for (auto& u : fresh) Listen(redis::UserChannel(u, pubsub_), Confirmer(u));
      return ready();  // the resync after the outage re-reads them and tells what changed
    }
    // Ready when every SUBSCRIBE is confirmed, or after the command timeout (an outage began:
    // the resync covers it), whichever comes first.
    struct Wait {
      std::size_t left;
      ReadyDone ready;
      asio::steady_timer timer;
      void Fire() {
        if (!ready) return;
        timer.cancel();
        auto r = std::move(ready);
        ready = nullptr;
        r();
      }
    };
    auto wait = std::make_shared<Wait>(
        Wait{fresh.size() + unconfirmed.size(), std::move(ready), asio::steady_timer(io_)});
    wait->timer.expires_after(opt_.redis.command_timeout);
    wait->timer.async_wait([wait](boost::system::error_code ec) {
      if (!ec) wait->Fire();
    });
    auto one_done = [wait] {
      if (--wait->left == 0) wait->Fire();
    };
    for (auto& u : unconfirmed) watched_[u].on_confirmed.emplace_back(one_done);
    for (auto& u : fresh) {
      Listen(redis::UserChannel(u, pubsub_), [confirm = Confirmer(u), one_done] {
        confirm();
        one_done();
      });
    }
  }

  // The space and user channels: classic or shard channels (redis_schema.h, PubSub).
  void Listen(const std::string& channel, std::function<void()> confirmed) {
    if (pubsub_ == redis::PubSub::kSharded) {
      return client_->SubscribeShard(channel, std::move(confirmed));
    }
    client_->Subscribe(channel, std::move(confirmed));
  }
  void StopListening(const std::string& channel) {
    if (pubsub_ == redis::PubSub::kSharded) return client_->UnsubscribeShard(channel);
    client_->Unsubscribe(channel);
  }

  // Redis Cluster moved a shard channel's slot (RedisHooks::on_shard_lost): changes published
  // since may have been missed. A space is subscribed and loaded again; a watched user is
  // subscribed again, then read again, and its watchers told what changed.
  void OnChannelLost(const std::string& channel) {
    metrics_.store_channels_moved->Increment();
    if (auto of_space = redis::SpaceOfChannel(channel, pubsub_)) {
      const std::string space(*of_space);
      if (spaces_.contains(space)) Subscribe(space);
      return;
    }
    auto of_user = redis::UserOfChannel(channel, pubsub_);
    if (!of_user) return;
    const std::string user(*of_user);
    auto it = watched_.find(user);
    if (it == watched_.end()) return;
    it->second.confirmed = false;
    Listen(channel, [this, user, confirm = Confirmer(user)] {
      confirm();
      ReadRemote({user}, [this, user](StoreResult<Assignments> r) {
        if (auto* found = std::get_if<Assignments>(&r)) ReconcileWatched(user, found->front());
      });
    });
  }

  // Marks the user's channel confirmed and releases the watchers that waited for it.
  std::function<void()> Confirmer(const std::string& user) {
    return [this, user] {
      auto it = watched_.find(user);
      if (it == watched_.end()) return;
      it->second.confirmed = true;
      for (auto& f : std::exchange(it->second.on_confirmed, {})) f();
    };
  }

  void DoUnwatch(const std::vector<std::string>& users) {
    for (const auto& u : users) {
      auto it = watched_.find(u);
      if (it == watched_.end()) continue;
      if (--it->second.refs > 0) continue;
      watched_.erase(it);
      StopListening(redis::UserChannel(u, pubsub_));
    }
  }

  // ---- connection state ----
  std::unique_ptr<RedisConnection> MakeClient() {
    if (opt_.cluster_seeds.empty()) return std::make_unique<RedisClient>(io_, opt_.redis, Hooks());
    RedisClusterOptions cluster;
    cluster.seeds = opt_.cluster_seeds;
    cluster.node = opt_.redis;
    return std::make_unique<RedisClusterClient>(io_, std::move(cluster), Hooks());
  }

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
    return h;
  }

  void OnDown(const std::string& why) {
    {
      vrouter::MutexLock lock(&mu_);
      problem_ = "redis unreachable: " + why;
    }
    metrics_.redis_up->Set(0);
    if (!was_down_) log::Warn("store_down", {{"why", why}});
    was_down_ = true;
    for (auto& [space, st] : spaces_) {
      if (st.phase == SpaceState::Phase::kReady) st.phase = SpaceState::Phase::kSubscribing;
    }
    // Subscriptions are made again after the outage: until confirmed, a new watcher waits.
    for (auto& [user, w] : watched_) w.confirmed = false;
  }

  void OnUp() {
    // Scripts first: everything sent after them on this connection runs after them.
    for (const RedisScript* s : {&put_, &attach_, &detach_, &remove_, &expire_, &orphan_, &lease_,
                                 &pointer_delete_, &own_load_, &hello_count_, &admit_}) {
      client_->Command({"SCRIPT", "LOAD", s->source()}, [](const RedisResult&) {});
    }
    {
      vrouter::MutexLock lock(&mu_);
      problem_.clear();
    }
    metrics_.redis_up->Set(1);
    // The reaper's list of this replica's spaces (entered before the first connection, or lost
    // with a Redis restart).
    for (const auto& [space, st] : spaces_) {
      client_->Command({"SADD", redis::ReplicaSpacesKey(me_), space}, [](const RedisResult&) {});
    }
    if (!was_down_) return;
    was_down_ = false;
    metrics_.store_resyncs->Increment();
    log::Info("store_resync", {{"spaces", spaces_.size()}, {"watched", watched_.size()}});
    for (auto& [space, st] : spaces_) Subscribe(space);
    for (const auto& [user, w] : watched_) {
      if (!w.confirmed) Listen(redis::UserChannel(user, pubsub_), Confirmer(user));
    }
    // Watchers may have missed changes during the outage: read each watched user again.
    std::vector<std::string> users;
    for (const auto& [u, w] : watched_) users.push_back(u);
    ReadRemote(users, [this, users](StoreResult<Assignments> r) {
      auto* found = std::get_if<Assignments>(&r);
      if (found == nullptr) return;
      for (std::size_t i = 0; i < users.size(); ++i) ReconcileWatched(users[i], (*found)[i]);
    });
  }

  void ReconcileWatched(const std::string& user, const std::optional<assign::Assignment>& now) {
    auto it = watched_.find(user);
    if (it == watched_.end()) return;
    Watched& w = it->second;
    if (now && (now->epoch > w.last_epoch || w.removed)) {
      std::optional<std::string> from, from_space;
      if (w.last && !w.removed) {
        from = w.last->server;
        from_space = w.last->space;
      }
      w.last_epoch = now->epoch;
      w.removed = false;
      w.last = now;
      Notify({assign::AssignmentChange::Kind::kAssigned, *now, from, from_space});
    } else if (!now && w.last && !w.removed) {
      w.removed = true;
      Notify({assign::AssignmentChange::Kind::kRemoved, *w.last, std::nullopt, std::nullopt});
    }
  }

  // ---- housekeeping ----
  void Housekeep() {
    housekeeping_.expires_after(opt_.housekeeping_interval);
    housekeeping_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Housekeep();
    });
    metrics_.redis_pending->Set(static_cast<double>(client_->pending()));
    metrics_.redis_up->Set(client_->up() ? 1 : 0);
    metrics_.store_local_spaces->Set(static_cast<double>(spaces_.size()));
    DropIdleSpaces();
    if (!client_->up()) return;
    for (auto& d : std::exchange(retry_detach_, {})) SendDetach(d.user, d.session, d.space);
    RestartStuckSpaces();
    EvalOn(lease_, std::string(redis::kReplicasKey),
           {me_, std::to_string(opt_.lease_ttl.count()),
            std::to_string(std::chrono::milliseconds(kForgetDeadReplica).count())},
           [this](const RedisResult& r) {
             const RedisReply* reply = ReplyOf(r);
             if (!IsArray(reply) || reply->elements.size() < 2) return;
             const auto now_ms = NumberOf(reply->elements[0]);
             const auto dead = NumberOf(reply->elements[1]);
             if (!now_ms || !dead) return;
             clock_offset_ms_ = static_cast<std::int64_t>(*now_ms) - SystemMs();
             dead_.clear();
             std::vector<std::string> live;
             for (std::size_t i = 2; i < reply->elements.size(); ++i) {
               const std::string& id = reply->elements[i].str;
               if (!proto::IsValidId(id)) {
                 NoteDefect(redis::Defect::kOther, redis::kReplicasKey);
                 continue;
               }
               if (i - 2 < *dead) {
                 if (id != me_) dead_.insert(id);
               } else {
                 live.push_back(id);
               }
             }
             live_replicas_.store(std::max<std::size_t>(1, live.size()), std::memory_order_relaxed);
             Sweep();
             Reap();
             RefreshLoad(live);
           });
    WriteOwnLoad();
  }

  // A space whose subscription or snapshot did not complete (a failed read, a full queue) starts
  // over; changes keep being buffered meanwhile.
  void RestartStuckSpaces() {
    constexpr auto kStuck = std::chrono::seconds(2);
    const auto now = Clock::now();
    std::vector<std::string> stuck;
    for (const auto& [space, st] : spaces_) {
      if (st.phase != SpaceState::Phase::kReady && now - st.phase_since > kStuck) {
        stuck.push_back(space);
      }
    }
    for (const auto& space : stuck) {
      log::Warn("store_space_reload", {{"space", space}, {"why", "load did not complete"}});
      Subscribe(space);
    }
  }

  void DropIdleSpaces() {
    const auto now = Clock::now();
    for (auto it = spaces_.begin(); it != spaces_.end();) {
      auto next = std::next(it);
      SpaceState& st = it->second;
      if (st.refs <= 0 && now >= st.hold_until && st.phase == SpaceState::Phase::kReady) {
        // Keep a space while it has records this replica must see expire: its own detached
        // users and those of dead replicas.
        bool keep = false;
        for (const auto& a : local_.SpaceRecords(it->first)) {
          if (a.replica == me_ || dead_.contains(a.replica)) {
            keep = true;
            break;
          }
        }
        if (!keep) {
          StopListening(redis::SpaceChannel(it->first, pubsub_));
          local_.DropSpace(it->first);
          spaces_.erase(it);
        }
      }
      it = next;
    }
  }

  // Ends what is due in the spaces held here: detached past the grace, or owned by a dead replica.
  void Sweep() {
    const auto now = Clock::now();
    for (const auto& [space, st] : spaces_) {
      if (st.phase != SpaceState::Phase::kReady) continue;
      std::vector<std::string> expire;
      absl::flat_hash_map<std::string, std::vector<std::string>> orphan;  // dead replica -> users
      for (const auto& a : local_.SpaceRecords(space)) {
        if (a.session == 0) {
          if (now - a.since >= opt_.resume_grace) expire.push_back(a.user);
        } else if (dead_.contains(a.replica)) {
          orphan[a.replica].push_back(a.user);
        }
      }
      for (std::size_t i = 0; i < expire.size(); i += kSweepBatch) {
        std::vector<std::string> args{space, std::to_string(opt_.resume_grace.count())};
        for (std::size_t k = i; k < std::min(expire.size(), i + kSweepBatch); ++k) {
          args.push_back(expire[k]);
        }
        EvalSpace(
            expire_, space, std::move(args),
            [this, space = std::string(space)](const RedisResult& r) {
              const RedisReply* reply = ReplyOf(r);
              if (!IsArray(reply)) return;
              metrics_.assignments_expired->Increment(static_cast<double>(reply->elements.size()));
              for (const auto& u : reply->elements) DeletePointer(u.str, space);
            });
      }
      for (auto& [dead, users] : orphan) {
        for (std::size_t i = 0; i < users.size(); i += kSweepBatch) {
          std::vector<std::string> args{space, dead};
          for (std::size_t k = i; k < std::min(users.size(), i + kSweepBatch); ++k) {
            args.push_back(users[k]);
          }
          EvalSpace(orphan_, space, std::move(args), [](const RedisResult&) {});
        }
      }
    }
  }

  // Takes a dead replica's spaces in hand (one live replica per dead one, by a lock), so its
  // users expire after the grace even where no other replica has sessions.
  void Reap() {
    const auto hold = opt_.resume_grace + opt_.lease_ttl + std::chrono::seconds(10);
    for (const auto& dead : dead_) {
      if (!reaped_.insert(dead).second) continue;
      const auto lock_ms = std::chrono::duration_cast<std::chrono::milliseconds>(hold).count() +
                           std::chrono::milliseconds(std::chrono::minutes(1)).count();
      client_->Command(
          {"SET", redis::ReapLockKey(dead), me_, "NX", "PX", std::to_string(lock_ms)},
          [this, dead, hold](const RedisResult& r) {
            const RedisReply* reply = ReplyOf(r);
            if (reply == nullptr || reply->type != RedisReply::Type::kStatus) {
              if (reply == nullptr) reaped_.erase(dead);  // try again next tick
              return;
            }
            client_->Command({"SMEMBERS", redis::ReplicaSpacesKey(dead)}, [this, dead,
                                                                           hold](const RedisResult&
                                                                                     m) {
              const RedisReply* spaces = ReplyOf(m);
              if (!IsArray(spaces)) return;
              log::Info("replica_reaped", {{"replica", dead}, {"spaces", spaces->elements.size()}});
              for (const auto& s : spaces->elements) {
                if (proto::IsValidId(s.str)) {
                  Hold(s.str, 0, Clock::now() + hold);
                } else {
                  NoteDefect(redis::Defect::kOther, redis::ReplicaSpacesKey(dead));
                }
              }
              client_->Command(
                  {"PEXPIRE", redis::ReplicaSpacesKey(dead),
                   std::to_string(std::chrono::milliseconds(kForgetDeadReplica).count())},
                  [](const RedisResult&) {});
            });
          });
    }
  }

  void WriteOwnLoad() {
    absl::flat_hash_map<std::string, std::int64_t> mine;
    for (const auto& [user, a] : owned_) ++mine[a.server];
    std::vector<std::string> args{std::to_string(opt_.lease_ttl.count())};
    for (const auto& [server, n] : mine) {
      args.push_back(server);
      args.push_back(std::to_string(n));
    }
    client_->Eval(own_load_, {redis::ReplicaLoadKey(me_)}, std::move(args),
                  [](const RedisResult&) {});
  }

  // Fleet-wide users per server: the sum of every live replica's own count.
  void RefreshLoad(const std::vector<std::string>& live) {
    struct Sum {
      absl::flat_hash_map<std::string, std::int64_t> load;
      std::size_t left;
    };
    if (live.empty()) return;
    auto sum = std::make_shared<Sum>(Sum{{}, live.size()});
    for (const auto& replica : live) {
      const std::string key = redis::ReplicaLoadKey(replica);
      CommandOn(key, {"HGETALL", key}, [this, key, sum](const RedisResult& r) {
        const RedisReply* reply = ReplyOf(r);
        if (IsArray(reply)) {
          for (std::size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
            const auto n = NumberOf(reply->elements[i + 1]);
            if (!n || !proto::IsValidId(reply->elements[i].str)) {
              NoteDefect(redis::Defect::kOther, key);
              continue;
            }
            sum->load[reply->elements[i].str] += static_cast<std::int64_t>(*n);
          }
        }
        if (--sum->left > 0) return;
        vrouter::MutexLock lock(&mu_);
        for (const auto& [server, users] : load_) {
          const auto it = sum->load.find(server);
          if (it == sum->load.end() || it->second != users) load_changed_.insert(server);
        }
        for (const auto& [server, users] : sum->load) {
          if (!load_.contains(server)) load_changed_.insert(server);
        }
        load_ = std::move(sum->load);
      });
    }
  }

  // ---------------------------------------------------------------- state
  const RedisStoreOptions opt_;
  // Sharded pub/sub on Redis Cluster (a change travels only inside its shard), classic otherwise.
  const redis::PubSub pubsub_ =
      opt_.cluster_seeds.empty() ? redis::PubSub::kClassic : redis::PubSub::kSharded;
  const std::string me_;
  telemetry::Metrics& metrics_;
  const ReplacedHandler on_replaced_;

  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  std::unique_ptr<RedisConnection> client_;  // one Redis (maybe via Sentinel), or a Cluster
  asio::steady_timer housekeeping_;
  LocalCopy local_;
  GossipSealer sealer_;  // store thread only
  GossipOpener opener_;  // store thread only
  std::array<prometheus::Counter*, redis::kDefectCount> corrupt_{};
  std::array<prometheus::Counter*, std::size(kChangeRejectionNames)> rejected_{};
  std::array<prometheus::Counter*, kGossipAuthErrorCount> gossip_refused_{};

  const RedisScript put_{redis::SpaceScriptFor(redis::kPutScript, pubsub_)};
  const RedisScript attach_{redis::SpaceScriptFor(redis::kAttachScript, pubsub_)};
  const RedisScript detach_{redis::SpaceScriptFor(redis::kDetachScript, pubsub_)};
  const RedisScript remove_{redis::SpaceScriptFor(redis::kRemoveScript, pubsub_)};
  const RedisScript expire_{redis::SpaceScriptFor(redis::kExpireScript, pubsub_)};
  const RedisScript orphan_{redis::SpaceScriptFor(redis::kOrphanScript, pubsub_)};
  const RedisScript lease_{std::string(redis::kLeaseScript)};
  const RedisScript pointer_delete_{std::string(redis::kPointerDeleteScript)};
  const RedisScript own_load_{std::string(redis::kOwnLoadScript)};
  const RedisScript hello_count_{std::string(redis::kHelloCountScript)};
  const RedisScript admit_{std::string(redis::kAdmitScript)};
  std::atomic<std::size_t> live_replicas_{1};  // as of the last lease renewal

  // Store thread only.
  absl::flat_hash_map<std::string, SpaceState> spaces_;
  absl::flat_hash_map<std::string, Watched> watched_;
  absl::flat_hash_map<std::string, assign::Assignment> owned_;  // live sessions of this replica
  absl::flat_hash_map<std::string, int> writing_;               // users with a Put in flight
  struct PendingDetach {
    std::string user;
    std::uint64_t session;
    std::string space;
  };
  std::vector<PendingDetach> retry_detach_;  // detaches Redis refused; retried by housekeeping
  absl::flat_hash_set<std::string> dead_;    // replicas whose lease ran out
  absl::flat_hash_set<std::string> reaped_;
  bool was_down_ = false;
  absl::flat_hash_map<std::string, Clock::time_point> log_due_;  // LogDue: when to log again
  std::int64_t clock_offset_ms_ = 0;  // Redis clock minus this machine's, from the lease script

  // Any thread.
  mutable vrouter::Mutex mu_;
  std::string problem_ ABSL_GUARDED_BY(mu_) = "connecting to redis";
  absl::flat_hash_map<std::string, std::int64_t> load_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> load_changed_ ABSL_GUARDED_BY(mu_);  // since TakeLoadChanges
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
    impl->DoPut(std::move(desired), expected_epoch, min_epoch, std::move(done));
  });
}
void RedisStore::Attach(std::string_view user, std::string_view space, std::uint64_t session,
                        AttachDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run([impl, user = std::string(user), space = std::string(space), session,
             done = std::move(done)]() mutable {
    impl->DoAttach(user, space, session, std::move(done));
  });
}
void RedisStore::Detach(std::string_view user, std::uint64_t session, base::SteadyTime) {
  Impl* impl = impl_.get();
  impl->Run([impl, user = std::string(user), session] { impl->DoDetach(user, session); });
}
void RedisStore::Remove(std::string_view user, std::uint64_t session, RemoveDone done) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return done(StoreError::kUnavailable);
  impl->Run([impl, user = std::string(user), session, done = std::move(done)]() mutable {
    impl->DoRemove(user, session, std::move(done));
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
std::size_t RedisStore::LiveReplicas() const {
  return impl_->live_replicas_.load(std::memory_order_relaxed);
}
void RedisStore::EnterSpace(std::string_view space) {
  Impl* impl = impl_.get();
  impl->Run([impl, space = std::string(space)] { impl->Hold(space, 1, {}); });
}
void RedisStore::LeaveSpace(std::string_view space) {
  Impl* impl = impl_.get();
  impl->Run([impl, space = std::string(space)] {
    auto it = impl->spaces_.find(space);
    if (it != impl->spaces_.end() && it->second.refs > 0) --it->second.refs;
  });
}
void RedisStore::WatchUsers(std::span<const std::string> users, ReadyDone ready) {
  Impl* impl = impl_.get();
  if (impl->stopped()) return ready();
  impl->Run(
      [impl, users = std::vector<std::string>(users.begin(), users.end()),
       ready = std::move(ready)]() mutable { impl->DoWatch(std::move(users), std::move(ready)); });
}
void RedisStore::UnwatchUsers(std::span<const std::string> users) {
  if (users.empty()) return;
  Impl* impl = impl_.get();
  impl->Run([impl, users = std::vector<std::string>(users.begin(), users.end())] {
    impl->DoUnwatch(users);
  });
}
absl::flat_hash_map<std::string, std::int64_t> RedisStore::LoadByServer() const {
  return impl_->LoadByServer();
}
void RedisStore::TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) {
  impl_->TakeLoadChanges(out);
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
    if (!impl->client_->up() || impl->opt_.replica_key.size() < kMinReplicaKeyBytes) return;
    impl->client_->Command({"PUBLISH", std::string(redis::kFleetChannel),
                            impl->sealer_.Seal(payload, impl->RedisNowMs())},
                           [](const RedisResult&) {});
  });
}
void RedisStore::SetFleetListener(std::function<void(std::string_view)> listener) {
  impl_->SetFleetListener(std::move(listener));
}

}  // namespace vrouter::store
