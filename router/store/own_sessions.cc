#include "router/store/own_sessions.h"

#include <algorithm>
#include <utility>

#include "proto/messages.h"
#include "router/base/log.h"
#include "router/store/redis_replies.h"
#include "router/store/redis_schema.h"

namespace vrouter::store {

OwnSessions::OwnSessions(RedisGateway& gw, LocalCopy& local, const RedisStoreOptions& opt,
                         ReplacedHandler on_replaced)
    : gw_(gw),
      client_(&gw.client()),
      local_(local),
      opt_(opt),
      me_(opt.replica_id),
      metrics_(gw.metrics()),
      on_replaced_(std::move(on_replaced)) {}

void OwnSessions::DoPut(assign::Assignment desired, std::uint64_t expected, std::uint64_t min_epoch,
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

void OwnSessions::DoAttach(const std::string& user, const std::string& space, std::uint64_t session,
                           AttachDone done) {
  if (!client_->up()) return done(StoreError::kUnavailable);
  AttachIn(user, space, session,
           [this, user, space, session,
            done = std::move(done)](StoreResult<std::optional<assign::Assignment>> r) mutable {
             auto* found = std::get_if<std::optional<assign::Assignment>>(&r);
             if (found == nullptr || found->has_value()) return done(std::move(r));
             // Not in the session's space: the user may be elsewhere (a space change).
             const std::string pointer = redis::UserKey(user);
             gw_.CommandOn(pointer, {"GET", pointer},
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
                               gw_.NoteDefect(redis::Defect::kPointer, pointer);
                               return done(std::optional<assign::Assignment>());
                             }
                             AttachIn(user, reply->str, session, std::move(done));
                           });
           });
}

void OwnSessions::DoDetach(const std::string& user, std::uint64_t session) {
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
  if (!client_->up()) return;  // the resync (or reload of its space) after the outage detaches it
  SendDetach(user, session, space);
}

void OwnSessions::DoRemove(const std::string& user, std::uint64_t session, RemoveDone done) {
  auto it = owned_.find(user);
  if (it == owned_.end() || it->second.session != session) return done(false);
  if (!client_->up()) return done(StoreError::kUnavailable);
  const assign::Assignment own = it->second;
  owned_.erase(it);
  gw_.EvalSpace(gw_.scripts.remove, own.space,
                {user, me_, std::to_string(session), own.space, "0", "1"},
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

void OwnSessions::Reconcile(const std::string& space,
                            const std::vector<assign::Assignment>& records) {
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
    gw_.EvalSpace(gw_.scripts.detach, space, {a.user, me_, std::to_string(a.session), space},
                  [](const RedisResult&) {});
  }
}

void OwnSessions::CheckOwnership(const assign::Assignment& a) {
  auto it = owned_.find(a.user);
  if (it == owned_.end() || it->second.space != a.space || a.epoch < it->second.epoch) return;
  assign::Assignment& own = it->second;
  if (a.replica == me_ && a.session == own.session) {
    own = a;
    return;
  }
  if (a.session == 0) {
    // Detached by someone else (this replica looked dead): the session is alive, take it back.
    gw_.EvalSpace(
        gw_.scripts.attach, a.space, {a.user, me_, std::to_string(own.session), a.space},
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

void OwnSessions::Reassert(const assign::Assignment& own) {
  log::Info("store_reassert", {{"user", own.user}, {"server", own.server}});
  metrics_.store_reasserted->Increment();
  PutScript(
      own, 0, own.epoch, "", [](const StoreResult<assign::PutResult>&) {}, /*claim=*/false);
}

void OwnSessions::DeletePointer(const std::string& user, const std::string& space) {
  gw_.EvalOn(gw_.scripts.pointer_delete, redis::UserKey(user), {space}, [](const RedisResult&) {});
}

void OwnSessions::WriteOwnLoad() {
  absl::flat_hash_map<std::string, std::int64_t> mine;
  for (const auto& [user, a] : owned_) ++mine[a.server];
  std::vector<std::string> args{std::to_string(opt_.lease_ttl.count())};
  for (const auto& [server, n] : mine) {
    args.push_back(server);
    args.push_back(std::to_string(n));
  }
  client_->Eval(gw_.scripts.own_load, {redis::ReplicaLoadKey(me_)}, std::move(args),
                [](const RedisResult&) {});
}

std::optional<assign::Assignment> OwnSessions::Known(const std::string& user) const {
  auto it = owned_.find(user);
  if (it != owned_.end()) return it->second;
  return local_.Get(user);
}

void OwnSessions::MoveSpace(assign::Assignment desired, const assign::Assignment& old,
                            std::uint64_t min_epoch, PutDone done) {
  auto own = owned_.find(desired.user);
  if (own != owned_.end()) own->second.space = desired.space;  // the old space's 'r' is ours
  gw_.EvalSpace(
      gw_.scripts.remove, old.space, {old.user, "", "0", old.space, std::to_string(old.epoch), "0"},
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
        PutScript(desired, 0, floor, old.server,
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

void OwnSessions::PutScript(const assign::Assignment& desired, std::uint64_t expected,
                            std::uint64_t min_epoch, std::string previous_server, PutDone done,
                            bool claim) {
  const std::string space = desired.space;
  gw_.EvalSpace(
      gw_.scripts.put, space,
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
        if (record) result.current = redis::ToAssignment(user, space, *record, gw_.Now());
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

void OwnSessions::ReadCurrent(const std::string& user, PutDone done) {
  gw_.ReadRemote({user}, [done = std::move(done)](StoreResult<Assignments> read) {
    assign::PutResult refused;
    if (auto* found = std::get_if<Assignments>(&read); found != nullptr && found->front()) {
      refused.current = *found->front();
    }
    done(std::move(refused));
  });
}

void OwnSessions::ApplyOwnWrite(const assign::Assignment& a, bool claim) {
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

void OwnSessions::SendDetach(const std::string& user, std::uint64_t session,
                             const std::string& space) {
  gw_.EvalSpace(gw_.scripts.detach, space, {user, me_, std::to_string(session), space},
                [this, user, session, space](const RedisResult& r) {
                  // Not reaching Redis is repaired by the resync (or the reload of the space's
                  // shard) after the outage; anything else (queue full, error reply) is tried again
                  // by housekeeping, except a corrupt space (isolated until an operator repairs it;
                  // its record is unusable anyway).
                  auto* failure = std::get_if<RedisFailure>(&r);
                  const bool retry = failure != nullptr
                                         ? failure->kind != RedisFailureKind::kDisconnected &&
                                               failure->kind != RedisFailureKind::kStopped
                                         : ReplyOf(r)->type == RedisReply::Type::kError &&
                                               !IsError(ReplyOf(r), redis::kCorruptReplyPrefix);
                  if (retry) retry_detach_.push_back({user, session, space});
                });
}

void OwnSessions::AttachIn(const std::string& user, const std::string& space, std::uint64_t session,
                           AttachDone done) {
  gw_.EvalSpace(
      gw_.scripts.attach, space, {user, me_, std::to_string(session), space},
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
        auto a = redis::ToAssignment(user, space, *record, gw_.Now());
        ApplyOwnWrite(a);
        done(std::optional<assign::Assignment>(std::move(a)));
      });
}

void OwnSessions::OnRemovedElsewhere(const std::string& user, const std::string& space,
                                     std::uint64_t epoch) {
  auto own = owned_.find(user);
  if (own != owned_.end() && own->second.space == space && own->second.epoch <= epoch &&
      !writing_.contains(user)) {
    Reassert(own->second);
  }
}

void OwnSessions::RetryDetaches() {
  for (auto& d : std::exchange(retry_detach_, {})) SendDetach(d.user, d.session, d.space);
}

}  // namespace vrouter::store
