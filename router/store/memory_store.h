// The embedded, single-replica store: the assignment table in this process's memory.
#pragma once

#include <chrono>

#include "router/core/assignment_table.h"
#include "router/store/store.h"

namespace vrouter::store {

class MemoryStore final : public AssignmentStore {
 public:
  // `resume_grace`: how long a detached assignment waits for its user to come back.
  explicit MemoryStore(std::chrono::nanoseconds resume_grace, std::size_t shards = 64)
      : table_(shards), grace_(resume_grace) {}

  void SetChangeListener(ChangeListener listener) override { listener_ = std::move(listener); }

  std::optional<core::Assignment> Get(std::string_view user) const override {
    return table_.Get(user);
  }
  void Lookup(std::span<const std::string> users,
              std::vector<std::optional<core::Assignment>>& out) const override {
    table_.Lookup(users, out);
  }
  core::PutResult Put(core::Assignment desired, std::uint64_t expected_epoch,
                      std::uint64_t min_epoch) override;
  std::optional<core::Assignment> Attach(std::string_view user, std::uint64_t session) override {
    return table_.Attach(user, session);
  }
  bool Detach(std::string_view user, std::uint64_t session, core::SteadyTime now) override {
    return table_.Detach(user, session, now);
  }
  bool Remove(std::string_view user, std::uint64_t session) override;
  std::size_t ExpireDetached(core::SteadyTime now) override;

  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const override {
    return table_.LoadByServer();
  }
  absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(std::string_view space) const override {
    return table_.SpaceLoad(space);
  }
  std::vector<core::Assignment> AssignedTo(std::string_view server,
                                           std::size_t limit) const override {
    return table_.AssignedTo(server, limit);
  }
  std::size_t size() const override { return table_.size(); }

 private:
  void Notify(const core::AssignmentChange& change) const {
    if (listener_) listener_(change);
  }

  core::AssignmentTable table_;
  std::chrono::nanoseconds grace_;
  ChangeListener listener_;
};

}  // namespace vrouter::store
