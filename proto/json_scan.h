// Internal to vrouter_proto: finding where a run of characters that need no JSON escaping ends,
// eight bytes at a time. Shared by the in-place reader (client_view.cc) and the frame writer
// (codec.cc): ids, URLs and tokens are long runs of plain ASCII, and a byte-by-byte loop cost
// ~5 instructions per byte on both paths.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace vrouter::proto::internal {

// Bytes that end a plain run: control characters, '"' and '\\'; and with them every byte >= 0x80.
inline constexpr std::array<bool, 256> kStops = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = true;
  t['"'] = t['\\'] = true;
  return t;
}();
inline constexpr std::array<bool, 256> kStopsAndNonAscii = [] {
  std::array<bool, 256> t = kStops;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}();

// The first byte in [p, end) that a JSON string cannot hold as it is: a control character
// (< 0x20), the quote or the backslash; with `stop_at_non_ascii`, also any byte >= 0x80 (the
// reader validates UTF-8 there). `end` when there is none.
inline const char* EndOfPlainRun(const char* p, const char* end, bool stop_at_non_ascii) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  // A word has a byte equal to 0 (any zero byte sets its high bit in the result; the test is
  // exact as a yes/no).
  auto has_zero = [](std::uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  const auto& stops = stop_at_non_ascii ? kStopsAndNonAscii : kStops;
  // Most runs (keys, types, short ids) end within a few bytes: those are looked at one by one.
  for (const char* first = end - p > 16 ? p + 16 : end; p != first; ++p) {
    if (stops[static_cast<unsigned char>(*p)]) return p;
  }
  const std::uint64_t high_mask = stop_at_non_ascii ? kHigh : 0;
  while (end - p >= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, sizeof w);
    // Bytes below 0x20 (exact for a yes/no, as has_zero), '"' (0x22), '\\' (0x5c), high bit.
    const std::uint64_t special = ((w - kOnes * 0x20) & ~w & kHigh) | has_zero(w ^ (kOnes * 0x22)) |
                                  has_zero(w ^ (kOnes * 0x5c)) | (w & high_mask);
    if (special != 0) break;
    p += 8;
  }
  while (p != end && !stops[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

}  // namespace vrouter::proto::internal
