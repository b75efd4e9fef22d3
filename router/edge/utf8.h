// UTF-8 validation (RFC 3629): what a WebSocket text message and a close reason must be
// (RFC 6455 8.1). No overlong forms, no surrogates, nothing above U+10FFFF.
#pragma once

#include <cstdint>
#include <string_view>

namespace vrouter::edge {

bool IsValidUtf8(std::string_view text);

// The same check on text that arrives in pieces (the fragments of a WebSocket message), where a
// character may be split between pieces. It fails at the first piece after which the text can no
// longer be the start of valid UTF-8, so the reader need not wait for the message's last
// fragment (RFC 6455 8.1 lets an endpoint fail the connection as soon as it knows).
class Utf8Validator {
 public:
  // Takes the next bytes. False when the text so far cannot begin valid UTF-8, and from then on.
  bool Feed(std::string_view bytes);
  // The text so far is valid UTF-8 that ends on a character boundary.
  bool Complete() const { return !failed_ && pending_ == 0; }

 private:
  std::uint8_t pending_ = 0;  // continuation bytes the character begun still needs
  std::uint8_t low_ = 0x80;   // the range of the next one (Table 3-7 of the Unicode standard)
  std::uint8_t high_ = 0xBF;
  bool failed_ = false;
};

// The longest prefix of `text` no longer than `max_bytes` that does not split a character of
// valid UTF-8 (a close reason cut to fit a control frame).
std::string_view TruncateUtf8(std::string_view text, std::size_t max_bytes);

}  // namespace vrouter::edge
