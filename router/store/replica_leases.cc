#include "router/store/replica_leases.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "proto/messages.h"
#include "router/base/log.h"
#include "router/store/redis_replies.h"
#include "router/store/redis_schema.h"

namespace vrouter::store {

namespace {
// Users per expire/orphan script call: keeps one script's run time (Redis is single-threaded)
// well under a millisecond.
constexpr std::size_t kSweepBatch = 500;
// How long a dead replica stays listed (so late replicas still reap its users).
constexpr std::chrono::minutes kForgetDeadReplica{10};
}  // namespace

ReplicaLeases::ReplicaLeases(RedisGateway& gw, LocalCopy& local, SpaceCopies& spaces,
                             OwnSessions& sessions, const RedisStoreOptions& opt)
    : gw_(gw),
      client_(&gw.client()),
      local_(local),
      spaces_(spaces),
      sessions_(sessions),
      opt_(opt),
      me_(opt.replica_id),
      metrics_(gw.metrics()) {}

void ReplicaLeases::Renew() {
  gw_.EvalOn(gw_.scripts.lease, std::string(redis::kReplicasKey),
             {me_, std::to_string(opt_.lease_ttl.count()),
              std::to_string(std::chrono::milliseconds(kForgetDeadReplica).count())},
             [this](const RedisResult& r) {
               const RedisReply* reply = ReplyOf(r);
               if (!IsArray(reply) || reply->elements.size() < 2) return;
               const auto now_ms = NumberOf(reply->elements[0]);
               const auto dead = NumberOf(reply->elements[1]);
               if (!now_ms || !dead) return;
               gw_.SetClockOffset(static_cast<std::int64_t>(*now_ms) - SystemMs());
               dead_.clear();
               std::vector<std::string> live;
               for (std::size_t i = 2; i < reply->elements.size(); ++i) {
                 const std::string& id = reply->elements[i].str;
                 if (!proto::IsValidId(id)) {
                   gw_.NoteDefect(redis::Defect::kOther, redis::kReplicasKey);
                   continue;
                 }
                 if (i - 2 < *dead) {
                   if (id != me_) dead_.insert(id);
                 } else {
                   live.push_back(id);
                 }
               }
               live_replicas_.store(std::max<std::size_t>(1, live.size()),
                                    std::memory_order_relaxed);
               Sweep();
               Reap();
               RefreshLoad(live);
             });
}

void ReplicaLeases::Sweep() {
  const auto now = gw_.Now();
  for (const std::string& space : spaces_.Ready()) {
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
      gw_.EvalSpace(
          gw_.scripts.expire, space, std::move(args),
          [this, space = std::string(space)](const RedisResult& r) {
            const RedisReply* reply = ReplyOf(r);
            if (!IsArray(reply)) return;
            metrics_.assignments_expired->Increment(static_cast<double>(reply->elements.size()));
            for (const auto& u : reply->elements) sessions_.DeletePointer(u.str, space);
          });
    }
    for (auto& [dead, users] : orphan) {
      for (std::size_t i = 0; i < users.size(); i += kSweepBatch) {
        std::vector<std::string> args{space, dead};
        for (std::size_t k = i; k < std::min(users.size(), i + kSweepBatch); ++k) {
          args.push_back(users[k]);
        }
        gw_.EvalSpace(gw_.scripts.orphan, space, std::move(args), [](const RedisResult&) {});
      }
    }
  }
}

void ReplicaLeases::Reap() {
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
          client_->Command({"SMEMBERS", redis::ReplicaSpacesKey(dead)}, [this, dead, hold](
                                                                            const RedisResult& m) {
            const RedisReply* spaces = ReplyOf(m);
            if (!IsArray(spaces)) return;
            log::Info("replica_reaped", {{"replica", dead}, {"spaces", spaces->elements.size()}});
            for (const auto& s : spaces->elements) {
              if (proto::IsValidId(s.str)) {
                spaces_.Hold(s.str, 0, gw_.Now() + hold);
              } else {
                gw_.NoteDefect(redis::Defect::kOther, redis::ReplicaSpacesKey(dead));
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

void ReplicaLeases::RefreshLoad(const std::vector<std::string>& live) {
  struct Sum {
    absl::flat_hash_map<std::string, std::int64_t> load;
    std::size_t left;
  };
  if (live.empty()) return;
  auto sum = std::make_shared<Sum>(Sum{{}, live.size()});
  for (const auto& replica : live) {
    const std::string key = redis::ReplicaLoadKey(replica);
    gw_.CommandOn(key, {"HGETALL", key}, [this, key, sum](const RedisResult& r) {
      const RedisReply* reply = ReplyOf(r);
      if (IsArray(reply)) {
        for (std::size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
          const auto n = NumberOf(reply->elements[i + 1]);
          if (!n || !proto::IsValidId(reply->elements[i].str)) {
            gw_.NoteDefect(redis::Defect::kOther, key);
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

absl::flat_hash_map<std::string, std::int64_t> ReplicaLeases::LoadByServer() const {
  vrouter::MutexLock lock(&mu_);
  return load_;
}

void ReplicaLeases::TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) {
  out.clear();
  vrouter::MutexLock lock(&mu_);
  for (const std::string& server : load_changed_) {
    const auto it = load_.find(server);
    out[server] = it == load_.end() ? 0 : it->second;
  }
  load_changed_.clear();
}

}  // namespace vrouter::store
