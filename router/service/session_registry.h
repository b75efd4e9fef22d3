// Every live client session of this replica, and which session currently speaks for each user.
// Thread-safe; handles are weak, so the registry never keeps a closed session alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "router/assign/watch_hub.h"
#include "router/base/absl_compat.h"
#include "router/base/mutex.h"

namespace vrouter::service {

// What the rest of the router may do to a session from any thread. Implementations post onto the
// session's own executor and never block.
class SessionHandle : public assign::PushSink {
 public:
  // Closes with `code` after frames already queued (and `delay` from now) have been sent.
  virtual void CloseAsync(std::uint16_t code, std::string reason,
                          std::chrono::milliseconds delay = std::chrono::milliseconds(0)) = 0;
};

class SessionRegistry {
 public:
  void Add(std::uint64_t session, std::weak_ptr<SessionHandle> handle) {
    vrouter::MutexLock lock(&mu_);
    all_[session] = std::move(handle);
  }
  void Remove(std::uint64_t session) {
    vrouter::MutexLock lock(&mu_);
    all_.erase(session);
  }

  // Makes `session` the one session of `user`; returns the session it replaced, if any.
  std::shared_ptr<SessionHandle> Claim(std::string_view user, std::uint64_t session) {
    vrouter::MutexLock lock(&mu_);
    auto [it, inserted] = by_user_.try_emplace(AsAbsl(user), session);
    if (inserted || it->second == session) return nullptr;
    const std::uint64_t previous = it->second;
    it->second = session;
    auto found = all_.find(previous);
    return found == all_.end() ? nullptr : found->second.lock();
  }
  // Forgets `session` as the session of `user`, unless a newer one already claimed the user.
  void Release(std::string_view user, std::uint64_t session) {
    vrouter::MutexLock lock(&mu_);
    auto it = by_user_.find(AsAbsl(user));
    if (it != by_user_.end() && it->second == session) by_user_.erase(it);
  }

  // The live session speaking for `user` on this replica, if any.
  std::shared_ptr<SessionHandle> Find(std::string_view user) const {
    vrouter::MutexLock lock(&mu_);
    auto it = by_user_.find(AsAbsl(user));
    if (it == by_user_.end()) return nullptr;
    auto found = all_.find(it->second);
    return found == all_.end() ? nullptr : found->second.lock();
  }

  // The live session with this id, if any.
  std::shared_ptr<SessionHandle> Get(std::uint64_t session) const {
    vrouter::MutexLock lock(&mu_);
    auto found = all_.find(session);
    return found == all_.end() ? nullptr : found->second.lock();
  }

  std::vector<std::shared_ptr<SessionHandle>> Snapshot() const {
    vrouter::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<SessionHandle>> out;
    out.reserve(all_.size());
    for (const auto& [id, weak] : all_) {
      if (auto h = weak.lock()) out.push_back(std::move(h));
    }
    return out;
  }
  std::size_t size() const {
    vrouter::MutexLock lock(&mu_);
    return all_.size();
  }

 private:
  mutable vrouter::Mutex mu_;
  absl::flat_hash_map<std::uint64_t, std::weak_ptr<SessionHandle>> all_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::uint64_t> by_user_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vrouter::service
