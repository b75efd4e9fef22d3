// One user's video-server assignment, and the changes the table reports when assignments move.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "router/base/time.h"

namespace vrouter::assign {

struct Assignment {
  std::string user;
  std::string space;
  std::string server;         // video server id
  std::uint64_t epoch = 0;    // unique, increasing version of this user's assignment (> 0)
  std::string replica;        // replica that wrote it
  std::uint64_t session = 0;  // live session owning the user; 0 = detached (awaiting resume)
  base::SteadyTime since{};   // when written, or when detached (for the resume grace period)
  bool operator==(const Assignment&) const = default;
};

// What a write did, for change notification (moved / left pushes).
struct AssignmentChange {
  enum class Kind { kAssigned, kRemoved };
  Kind kind = Kind::kAssigned;
  Assignment assignment;                   // the new one (kAssigned) or the one that ended
  std::optional<std::string> from_server;  // kAssigned: previous server, if there was one
  std::optional<std::string> from_space;   // kAssigned: previous space, when the store knows it
};

}  // namespace vrouter::assign
