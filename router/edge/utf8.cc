#include "router/edge/utf8.h"

#include <cstdint>
#include <cstring>

namespace vrouter::edge {

bool IsValidUtf8(std::string_view text) {
  Utf8Validator validator;
  return validator.Feed(text) && validator.Complete();
}

bool Utf8Validator::Feed(std::string_view bytes) {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* const end = p + bytes.size();
  while (p != end) {
    if (pending_ > 0) {  // inside a character, possibly begun in an earlier piece
      if (*p < low_ || *p > high_) {
        failed_ = true;
        return false;
      }
      low_ = 0x80;
      high_ = 0xBF;
      --pending_;
      ++p;
      continue;
    }
    // JSON is mostly ASCII: eight bytes at a time while no byte has its top bit set.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if ((word & 0x8080808080808080ULL) != 0) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned char c = *p++;
    if (c < 0x80) continue;
    // The second byte's range depends on the first (Table 3-7 of the Unicode standard): that
    // rules out overlong forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points
    // above U+10FFFF (F4 90..BF, F5..FF).
    if (c >= 0xC2 && c <= 0xDF) {
      pending_ = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      pending_ = 2;
      if (c == 0xE0) low_ = 0xA0;
      if (c == 0xED) high_ = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      pending_ = 3;
      if (c == 0xF0) low_ = 0x90;
      if (c == 0xF4) high_ = 0x8F;
    } else {
      failed_ = true;  // a continuation byte first, C0/C1 (overlong), or F5..FF
      return false;
    }
  }
  return true;
}

std::string_view TruncateUtf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t n = max_bytes;
  // Back off continuation bytes (10xxxxxx) to the start of the character that did not fit.
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return text.substr(0, n);
}

}  // namespace vrouter::edge
