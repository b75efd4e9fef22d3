#include "router/store/memory_store.h"

namespace vrouter::store {

std::string_view StoreErrorMessage(StoreError error) {
  switch (error) {
    case StoreError::kUnavailable:
      return "the shared store is unreachable; retry";
    case StoreError::kOverloaded:
      return "too many writes are waiting for the shared store; retry";
    case StoreError::kTimeout:
      return "the shared store did not answer in time; retry";
    case StoreError::kCorrupt:
      return "the shared store holds data for this space that the router cannot use; the "
             "operator has been alerted; retry later";
  }
  return "store error";
}

void MemoryStore::Lookup(std::vector<std::string> users, LookupDone done) const {
  Assignments out;
  table_.Lookup(users, out);
  done(std::move(out));
}

assign::PutResult MemoryStore::Put(assign::Assignment desired, std::uint64_t expected_epoch,
                                   std::uint64_t min_epoch) {
  assign::PutResult result = table_.Put(std::move(desired), expected_epoch, min_epoch);
  if (result.change) Notify(*result.change);
  return result;
}

bool MemoryStore::Remove(std::string_view user, std::uint64_t session) {
  auto change = table_.Remove(user, session);
  if (change) Notify(*change);
  return change.has_value();
}

std::size_t MemoryStore::ExpireDetached(base::SteadyTime now) {
  auto removed = table_.ExpireDetached(now, grace_);
  for (const auto& change : removed) Notify(change);
  return removed.size();
}

}  // namespace vrouter::store
