// UTF-8 validation (RFC 3629): what a WebSocket text message and a close reason must be
// (RFC 6455 8.1). No overlong forms, no surrogates, nothing above U+10FFFF.
#pragma once

#include <string_view>

namespace vrouter::edge {

bool IsValidUtf8(std::string_view text);

// The longest prefix of `text` no longer than `max_bytes` that does not split a character of
// valid UTF-8 (a close reason cut to fit a control frame).
std::string_view TruncateUtf8(std::string_view text, std::size_t max_bytes);

}  // namespace vrouter::edge
