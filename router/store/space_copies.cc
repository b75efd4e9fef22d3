#include "router/store/space_copies.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "proto/messages.h"
#include "router/base/log.h"
#include "router/store/redis_replies.h"

namespace vrouter::store {

using redis::ChangeMessage;

namespace {
// Changes buffered for a space while its snapshot loads; beyond this the load starts over.
constexpr std::size_t kMaxBufferedChanges = 100'000;
}  // namespace

SpaceCopies::SpaceCopies(RedisGateway& gw, LocalCopy& local, OwnSessions& sessions,
                         const RedisStoreOptions& opt)
    : gw_(gw),
      client_(&gw.client()),
      local_(local),
      sessions_(sessions),
      me_(opt.replica_id),
      metrics_(gw.metrics()),
      pubsub_(gw.pubsub()) {}

void SpaceCopies::Hold(const std::string& space, int refs, base::SteadyTime until) {
  auto [it, fresh] = spaces_.try_emplace(space);
  it->second.refs += refs;
  it->second.hold_until = std::max(it->second.hold_until, until);
  if (!fresh) return;
  if (client_->up()) {
    client_->Command({"SADD", redis::ReplicaSpacesKey(me_), space}, [](const RedisResult&) {});
  }
  Subscribe(space);
}

void SpaceCopies::Subscribe(const std::string& space) {
  SpaceState& st = spaces_[space];
  st.phase = SpaceState::Phase::kSubscribing;
  st.phase_since = gw_.Now();
  st.buffered.clear();
  const std::uint64_t gen = ++st.generation;
  gw_.Listen(redis::SpaceChannel(space, pubsub_), [this, space, gen] { LoadSnapshot(space, gen); });
}

void SpaceCopies::RestartStuckSpaces() {
  constexpr auto kStuck = std::chrono::seconds(2);
  const auto now = gw_.Now();
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

void SpaceCopies::DropIdleSpaces(const absl::flat_hash_set<std::string>& dead) {
  const auto now = gw_.Now();
  for (auto it = spaces_.begin(); it != spaces_.end();) {
    auto next = std::next(it);
    SpaceState& st = it->second;
    if (st.refs <= 0 && now >= st.hold_until && st.phase == SpaceState::Phase::kReady) {
      // Keep a space while it has records this replica must see expire: its own detached
      // users and those of dead replicas.
      bool keep = false;
      for (const auto& a : local_.SpaceRecords(it->first)) {
        if (a.replica == me_ || dead.contains(a.replica)) {
          keep = true;
          break;
        }
      }
      if (!keep) {
        gw_.StopListening(redis::SpaceChannel(it->first, pubsub_));
        local_.DropSpace(it->first);
        spaces_.erase(it);
      }
    }
    it = next;
  }
}

void SpaceCopies::LoadSnapshot(const std::string& space, std::uint64_t gen) {
  auto it = spaces_.find(space);
  if (it == spaces_.end() || it->second.generation != gen) return;
  it->second.phase = SpaceState::Phase::kLoading;
  it->second.phase_since = gw_.Now();
  const std::string key = redis::SpaceKey(space);
  gw_.CommandOn(key, {"HGETALL", key}, [this, key, space, gen](const RedisResult& r) {
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
    const auto now = gw_.Now();
    for (std::size_t i = 0; !wrong_type && i + 1 < reply->elements.size(); i += 2) {
      const std::string& field = reply->elements[i].str;
      if (field.empty()) {
        // Not a number: 0 here, so that the change after the write that resets it is a gap.
        auto n = NumberOf(reply->elements[i + 1]);
        if (!n) gw_.NoteDefect(redis::Defect::kSequence, key);
        seq = n.value_or(0);
      } else if (auto rec = redis::DecodeRecord(reply->elements[i + 1].str);
                 rec && proto::IsValidId(field)) {
        records.push_back(redis::ToAssignment(field, space, *rec, DetachedSince(*rec, now)));
      } else {
        gw_.NoteDefect(redis::Defect::kRecord, key, field);
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
    sessions_.Reconcile(space, records);
  });
}

base::SteadyTime SpaceCopies::DetachedSince(const redis::Record& r, base::SteadyTime now) const {
  if (r.session != 0 || r.detached_ms == 0) return now;
  const std::int64_t redis_now = gw_.RedisNowMs();
  return now - std::chrono::milliseconds(std::max<std::int64_t>(0, redis_now - r.detached_ms));
}

void SpaceCopies::ApplySpaceChange(const std::string& space, ChangeMessage m) {
  SpaceState& st = spaces_[space];
  if (m.seq <= st.seq) return;  // in the snapshot already
  if (m.record.epoch > gw_.EpochCeiling() && m.seq == st.seq + 1) {
    // An epoch ahead of Redis's clock: not applied as published (a forged one would make this
    // copy ignore the user's real changes, and clients hear it). What Redis holds is read
    // instead, and the sequence number is not taken: a real change of that number still
    // applies, and if this one was real (a resume presenting a huge epoch), the next change
    // is a gap and the space reloads.
    gw_.RejectChange(ChangeRejection::kEpochAhead, redis::SpaceChannel(space, pubsub_));
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
  const auto a = redis::ToAssignment(m.user, m.space, m.record, DetachedSince(m.record, gw_.Now()));
  auto cur = local_.Get(m.user);
  if (m.kind == ChangeMessage::Kind::kRemoved) {
    if (cur && cur->space == m.space && cur->epoch <= a.epoch) local_.Erase(m.space, m.user);
  } else if (!cur || cur->space != m.space || cur->epoch <= a.epoch) {
    local_.Upsert(a);
  }
  if (m.kind == ChangeMessage::Kind::kRemoved) {
    return sessions_.OnRemovedElsewhere(m.user, m.space, a.epoch);
  }
  sessions_.CheckOwnership(a);
}

void SpaceCopies::RefreshRecord(const std::string& space, const std::string& user) {
  const auto before = local_.Get(user);
  gw_.ReadRecord(
      space, user, [this, space, user, before](StoreResult<std::optional<assign::Assignment>> r) {
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
          return sessions_.CheckOwnership(*found);
        }
        // Gone from Redis: erased here unless a change arrived meanwhile.
        const bool unchanged =
            cur.has_value() == before.has_value() && (!cur || cur->epoch == before->epoch);
        if (cur && unchanged) local_.Erase(space, user);
      });
}

void SpaceCopies::Release(const std::string& space) {
  auto it = spaces_.find(space);
  if (it != spaces_.end() && it->second.refs > 0) --it->second.refs;
}

void SpaceCopies::OnChange(const std::string& space, ChangeMessage m) {
  auto it = spaces_.find(space);
  if (it == spaces_.end()) return;
  SpaceState& st = it->second;
  if (st.phase != SpaceState::Phase::kReady) {
    if (st.buffered.size() >= kMaxBufferedChanges) return Subscribe(space);
    st.buffered.push_back(std::move(m));
    return;
  }
  ApplySpaceChange(space, std::move(m));
}

void SpaceCopies::OnDown() {
  for (auto& [space, st] : spaces_) {
    if (st.phase == SpaceState::Phase::kReady) st.phase = SpaceState::Phase::kSubscribing;
  }
}

void SpaceCopies::ResubscribeAll() {
  for (auto& [space, st] : spaces_) Subscribe(space);
}

std::vector<std::string> SpaceCopies::Held() const {
  std::vector<std::string> out;
  out.reserve(spaces_.size());
  for (const auto& [space, st] : spaces_) out.push_back(space);
  return out;
}

std::vector<std::string> SpaceCopies::Ready() const {
  std::vector<std::string> out;
  for (const auto& [space, st] : spaces_) {
    if (st.phase == SpaceState::Phase::kReady) out.push_back(space);
  }
  return out;
}

}  // namespace vrouter::store
