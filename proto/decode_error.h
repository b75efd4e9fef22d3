// What both codecs (vrouter.v1 and vrouter.video.v1) return for a frame that is not exactly a
// message of their protocol, and the input rules they share.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "proto/messages.h"

namespace vrouter::proto {

struct DecodeError {
  ErrorCode code = ErrorCode::kInvalidMessage;
  std::string message;
  RequestId id;  // set when the frame carried a valid `id`, so the error can be matched to it
};

// Maximum JSON nesting accepted; v1 messages nest at most 4 deep.
inline constexpr std::size_t kMaxJsonDepth = 8;

// True when `id` is a valid user, space or server id (1..kMaxIdBytes, no control characters).
bool IsValidId(std::string_view id);

}  // namespace vrouter::proto
