// Reading Redis's answers, for the parts of the Redis store (redis_store.cc and the parts it is
// made of): what a failure means to the store's callers, and numbers and flags in replies, each
// checked against the protocol's ranges. Pure: no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proto/messages.h"
#include "router/store/redis_client.h"
#include "router/store/redis_schema.h"
#include "router/store/store.h"

namespace vrouter::store {

inline StoreError ToStoreError(const RedisFailure& f) {
  switch (f.kind) {
    case RedisFailureKind::kTimeout:
      return StoreError::kTimeout;
    case RedisFailureKind::kQueueFull:
      return StoreError::kOverloaded;
    default:
      return StoreError::kUnavailable;
  }
}

inline const RedisReply* ReplyOf(const RedisResult& r) { return std::get_if<RedisReply>(&r); }

inline bool IsArray(const RedisReply* r) {
  return r != nullptr && r->type == RedisReply::Type::kArray;
}

// A number in a reply (an integer, or digits in a string) within 0..2^53-1; nullopt otherwise.
inline std::optional<std::uint64_t> NumberOf(const RedisReply& r) {
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
inline bool Succeeded(const RedisReply* reply) {
  return IsArray(reply) && !reply->elements.empty() && NumberOf(reply->elements[0]) == 1u;
}

inline bool IsError(const RedisReply* r, std::string_view prefix) {
  return r != nullptr && r->type == RedisReply::Type::kError && r->str.starts_with(prefix);
}

// Why a script refused a write, from its reply: its space key is corrupt, or something else.
inline StoreError ScriptRefusal(const RedisReply* reply) {
  return IsError(reply, redis::kCorruptReplyPrefix) ? StoreError::kCorrupt
                                                    : StoreError::kUnavailable;
}

// This machine's wall clock (ms since 1970), to compare with Redis's.
inline std::int64_t SystemMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace vrouter::store
