#include "router/store/redis_gateway.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <utility>

#include "proto/messages.h"
#include "router/base/log.h"
#include "router/store/redis_cluster_client.h"
#include "router/store/redis_replies.h"

namespace vrouter::store {

StoreScripts::StoreScripts(redis::PubSub pubsub)
    : put(redis::SpaceScriptFor(redis::kPutScript, pubsub)),
      attach(redis::SpaceScriptFor(redis::kAttachScript, pubsub)),
      detach(redis::SpaceScriptFor(redis::kDetachScript, pubsub)),
      remove(redis::SpaceScriptFor(redis::kRemoveScript, pubsub)),
      expire(redis::SpaceScriptFor(redis::kExpireScript, pubsub)),
      orphan(redis::SpaceScriptFor(redis::kOrphanScript, pubsub)),
      lease(std::string(redis::kLeaseScript)),
      pointer_delete(std::string(redis::kPointerDeleteScript)),
      own_load(std::string(redis::kOwnLoadScript)),
      hello_count(std::string(redis::kHelloCountScript)),
      admit(std::string(redis::kAdmitScript)) {}

std::vector<const RedisScript*> StoreScripts::All() const {
  return {&put,   &attach,         &detach,   &remove,      &expire, &orphan,
          &lease, &pointer_delete, &own_load, &hello_count, &admit};
}

RedisGateway::RedisGateway(boost::asio::io_context& io, const RedisStoreOptions& opt,
                           telemetry::Metrics& metrics, RedisHooks hooks)
    : scripts(PubSubFor(opt)),
      io_(io),
      opt_(opt),
      pubsub_(PubSubFor(opt)),
      metrics_(metrics),
      client_(MakeClient(std::move(hooks))) {
  for (std::size_t i = 0; i < redis::kDefectCount; ++i) {
    corrupt_[i] = &metrics_.store_corrupt->Add(
        {{"kind", std::string(redis::DefectName(static_cast<redis::Defect>(i)))}});
  }
  for (std::size_t i = 0; i < std::size(kChangeRejectionNames); ++i) {
    rejected_[i] =
        &metrics_.store_changes_rejected->Add({{"reason", std::string(kChangeRejectionNames[i])}});
  }
}

void RedisGateway::NoteDefect(redis::Defect d, std::string_view key, std::string_view field) {
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

void RedisGateway::RejectChange(ChangeRejection why, std::string_view channel) {
  rejected_[static_cast<std::size_t>(why)]->Increment();
  if (!LogDue(std::string(kChangeRejectionNames[static_cast<std::size_t>(why)]))) return;
  log::Warn(
      "store_change_rejected",
      {{"reason", kChangeRejectionNames[static_cast<std::size_t>(why)]}, {"channel", channel}});
}

bool RedisGateway::LogDue(const std::string& what) {
  const auto now = Now();
  if (log_due_.size() > 10000) log_due_.clear();  // bounded whatever the keys
  auto [it, fresh] = log_due_.try_emplace(what, now);
  if (!fresh && now < it->second) return false;
  it->second = now + kLogEvery;
  return true;
}

void RedisGateway::Inspect(const std::string& key, RedisResult& r) {
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

bool RedisGateway::IsStatus(const RedisReply& r, std::string_view prefix) {
  return r.type == RedisReply::Type::kStatus && r.str.starts_with(prefix);
}

void RedisGateway::Tell(std::string message) {
  auto m = redis::DecodeChange(message);
  if (!m) return NoteDefect(redis::Defect::kOther, "VRTELL");
  client_->Command({"SPUBLISH", redis::UserChannel(m->user, pubsub_), std::move(message)},
                   [](const RedisResult&) {});
}

void RedisGateway::EvalOn(const RedisScript& script, const std::string& key,
                          std::vector<std::string> args, RedisCallback cb) {
  client_->Eval(script, {key}, std::move(args), [this, key, cb = std::move(cb)](RedisResult r) {
    Inspect(key, r);
    cb(std::move(r));
  });
}

void RedisGateway::EvalSpace(const RedisScript& script, const std::string& space,
                             std::vector<std::string> args, RedisCallback cb) {
  EvalOn(script, redis::SpaceKey(space), std::move(args), std::move(cb));
}

void RedisGateway::CommandOn(const std::string& key, std::vector<std::string> args,
                             RedisCallback cb) {
  client_->Command(std::move(args), [this, key, cb = std::move(cb)](RedisResult r) {
    Inspect(key, r);
    cb(std::move(r));
  });
}

std::int64_t RedisGateway::RedisNowMs() const { return SystemMs() + clock_offset_ms_; }

std::uint64_t RedisGateway::EpochCeiling() const {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, RedisNowMs())) * 1000 + kEpochAheadUs;
}

void RedisGateway::ReadRemote(std::vector<std::string> users, LookupDone done) {
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

void RedisGateway::ReadRecord(const std::string& space, const std::string& user, AttachDone done) {
  const std::string key = redis::SpaceKey(space);
  CommandOn(
      key, {"HGET", key, user},
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
        return done(std::optional<assign::Assignment>(redis::ToAssignment(user, space, *d, Now())));
      });
}

void RedisGateway::ReadInSpace(const std::string& space, std::vector<std::string> users,
                               LookupDone done) {
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

void RedisGateway::Listen(const std::string& channel, std::function<void()> confirmed) {
  if (pubsub_ == redis::PubSub::kSharded) {
    return client_->SubscribeShard(channel, std::move(confirmed));
  }
  client_->Subscribe(channel, std::move(confirmed));
}

void RedisGateway::StopListening(const std::string& channel) {
  if (pubsub_ == redis::PubSub::kSharded) return client_->UnsubscribeShard(channel);
  client_->Unsubscribe(channel);
}

std::unique_ptr<RedisConnection> RedisGateway::MakeClient(RedisHooks hooks) {
  if (opt_.cluster_seeds.empty())
    return std::make_unique<RedisClient>(io_, opt_.redis, std::move(hooks));
  RedisClusterOptions cluster;
  cluster.seeds = opt_.cluster_seeds;
  cluster.node = opt_.redis;
  return std::make_unique<RedisClusterClient>(io_, std::move(cluster), std::move(hooks));
}

}  // namespace vrouter::store
