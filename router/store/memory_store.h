// The embedded, single-replica store: the assignment table in this process's memory. Every
// callback runs inline, before the call returns; interest calls are no-ops (everything is local).
#pragma once

#include <chrono>

#include "router/assign/assignment_table.h"
#include "router/store/store.h"

namespace vrouter::store {

class MemoryStore final : public AssignmentStore {
 public:
  // `resume_grace`: how long a detached assignment waits for its user to come back.
  explicit MemoryStore(std::chrono::nanoseconds resume_grace, std::size_t shards = 64)
      : table_(shards), grace_(resume_grace) {}

  void SetChangeListener(ChangeListener listener) override { listener_ = std::move(listener); }

  std::optional<assign::Assignment> GetLocal(std::string_view user) const override {
    return table_.Get(user);
  }
  void Lookup(std::vector<std::string> users, LookupDone done) const override;
  bool LookupLocal(std::span<const std::string_view> users, Assignments& out) const override {
    table_.LookupInto(users, out);
    return true;
  }
  void Put(assign::Assignment desired, std::uint64_t expected_epoch, std::uint64_t min_epoch,
           PutDone done) override {
    done(Put(std::move(desired), expected_epoch, min_epoch));
  }
  void Attach(std::string_view user, std::string_view /*space*/, std::uint64_t session,
              AttachDone done) override {
    done(table_.Attach(user, session));
  }
  void Detach(std::string_view user, std::uint64_t session, base::SteadyTime now) override {
    table_.Detach(user, session, now);
  }
  void Remove(std::string_view user, std::uint64_t session, RemoveDone done) override {
    done(Remove(user, session));
  }
  std::size_t ExpireDetached(base::SteadyTime now) override;

  void EnterSpace(std::string_view) override {}
  void LeaveSpace(std::string_view) override {}
  void WatchUsers(std::span<const std::string>, ReadyDone ready) override { ready(); }
  void UnwatchUsers(std::span<const std::string>) override {}

  absl::flat_hash_map<std::string, std::int64_t> LoadByServer() const override {
    return table_.LoadByServer();
  }
  void TakeLoadChanges(absl::flat_hash_map<std::string, std::int64_t>& out) override {
    table_.TakeLoadChanges(out);
  }
  absl::flat_hash_map<std::string, std::int64_t> SpaceLoad(std::string_view space) const override {
    return table_.SpaceLoad(space);
  }
  std::vector<assign::Assignment> AssignedTo(std::string_view server,
                                             std::size_t limit) const override {
    return table_.AssignedTo(server, limit);
  }
  std::size_t size() const override { return table_.size(); }

  // Synchronous forms, for tests and tools that hold a MemoryStore.
  std::optional<assign::Assignment> Get(std::string_view user) const { return table_.Get(user); }
  assign::PutResult Put(assign::Assignment desired, std::uint64_t expected_epoch,
                        std::uint64_t min_epoch);
  bool Remove(std::string_view user, std::uint64_t session);

 private:
  void Notify(const assign::AssignmentChange& change) const {
    if (listener_) listener_(change);
  }

  assign::AssignmentTable table_;
  std::chrono::nanoseconds grace_;
  ChangeListener listener_;
};

}  // namespace vrouter::store
