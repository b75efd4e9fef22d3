// JSON written straight into a string, without a DOM: the router's answers to clients (the hot
// path of every lookup) and the admin answers the dashboard polls.
//
// The bytes are staged in a buffer on the stack and appended to `out` a few hundred at a time:
// a std::string append or push_back is a call and a capacity check (GCC does not inline them
// here), and a field was four of them (comma, quote, key, quote and colon), a string value three
// more. Strings are copied in runs of plain characters, escapes only where needed. The writer
// appends what is staged when it goes out of scope. Keys are the caller's own literals and are
// not escaped.
#pragma once

#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "proto/json_scan.h"

namespace vrouter::proto {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;
  ~JsonWriter() { Drain(); }

  // A key that is a literal: its bytes, the quotes, the colon and any comma are staged with
  // copies of sizes known when compiling, a few moves (Key(string_view) makes four calls, ~100
  // instructions a key under callgrind, and an answer has nine keys per user).
  template <std::size_t N>
  JsonWriter& Key(const char (&key)[N]) {
    constexpr std::size_t kLength = N - 1;
    static_assert(kLength + 4 <= kStageBytes, "a key longer than the stage");
    assert(std::char_traits<char>::length(key) == kLength);  // a literal, not a char buffer
    if (kStageBytes - staged_ < kLength + 4) Drain();
    char* p = stage_ + staged_;
    if (need_comma_) *p++ = ',';
    *p++ = '"';
    std::memcpy(p, key, kLength);
    p += kLength;
    *p++ = '"';
    *p++ = ':';
    staged_ = static_cast<std::size_t>(p - stage_);
    need_comma_ = false;
    return *this;
  }
  JsonWriter& Key(std::string_view key) {
    if (need_comma_) Put(',');
    Put('"');
    Put(key);  // keys are our own literals: nothing to escape
    Put("\":");
    need_comma_ = false;
    return *this;
  }
  void String(std::string_view s) {
    Separate();
    Put('"');
    const char* const end = s.data() + s.size();
    const char* clean = s.data();  // [clean, p) needs no escaping
    for (const char* p = s.data();; ++p) {
      p = internal::EndOfPlainRun(p, end, /*stop_at_non_ascii=*/false);
      Put(std::string_view(clean, static_cast<std::size_t>(p - clean)));
      if (p == end) break;
      clean = p + 1;
      const auto c = static_cast<unsigned char>(*p);
      switch (c) {
        case '"':
          Put("\\\"");
          break;
        case '\\':
          Put("\\\\");
          break;
        case '\b':
          Put("\\b");
          break;
        case '\f':
          Put("\\f");
          break;
        case '\n':
          Put("\\n");
          break;
        case '\r':
          Put("\\r");
          break;
        case '\t':
          Put("\\t");
          break;
        default: {
          constexpr char kHex[] = "0123456789abcdef";
          Put("\\u00");
          Put(kHex[c >> 4]);
          Put(kHex[c & 0xF]);
        }
      }
    }
    Put('"');
    need_comma_ = true;
  }
  void Uint(std::uint64_t v) {
    Separate();
    if (kStageBytes - staged_ < kMaxUintChars) Drain();
    auto [end, ec] = std::to_chars(stage_ + staged_, stage_ + kStageBytes, v);
    (void)ec;  // kMaxUintChars hold any uint64
    staged_ = static_cast<std::size_t>(end - stage_);
    need_comma_ = true;
  }
  void Int(std::int64_t v) {
    Separate();
    if (kStageBytes - staged_ < kMaxUintChars + 1) Drain();
    auto [end, ec] = std::to_chars(stage_ + staged_, stage_ + kStageBytes, v);
    (void)ec;  // a sign and kMaxUintChars hold any int64
    staged_ = static_cast<std::size_t>(end - stage_);
    need_comma_ = true;
  }
  // The shortest text that reads back as the same double; NaN and the infinities, which JSON
  // cannot hold, as null.
  void Double(double v) {
    if (!std::isfinite(v)) return Null();
    Separate();
    if (kStageBytes - staged_ < kMaxDoubleChars) Drain();
    auto [end, ec] = std::to_chars(stage_ + staged_, stage_ + kStageBytes, v);
    (void)ec;  // kMaxDoubleChars hold any finite double
    staged_ = static_cast<std::size_t>(end - stage_);
    need_comma_ = true;
  }
  void Bool(bool v) {
    Separate();
    Put(v ? std::string_view("true") : std::string_view("false"));
    need_comma_ = true;
  }
  void Null() {
    Separate();
    Put("null");
    need_comma_ = true;
  }
  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }

 private:
  static constexpr std::size_t kStageBytes = 512;
  static constexpr std::size_t kMaxUintChars = 20;
  static constexpr std::size_t kMaxDoubleChars = 32;  // -1.2345678901234567e-308 is 24

  // A value after another in an array takes a comma (after a key, need_comma_ is false).
  void Separate() {
    if (need_comma_) Put(',');
  }

  void Put(char c) {
    if (staged_ == kStageBytes) Drain();
    stage_[staged_++] = c;
  }
  void Put(std::string_view s) {
    if (s.empty()) return;  // memcpy from a null data() would be undefined, even of 0 bytes
    if (kStageBytes - staged_ < s.size()) {
      Drain();
      if (s.size() > kStageBytes) {
        out_.append(s);
        return;
      }
    }
    std::memcpy(stage_ + staged_, s.data(), s.size());
    staged_ += s.size();
  }
  void Drain() {
    out_.append(stage_, staged_);
    staged_ = 0;
  }
  void Open(char c) {
    Separate();
    Put(c);
    need_comma_ = false;
  }
  void Close(char c) {
    Put(c);
    need_comma_ = true;
  }

  std::string& out_;
  char stage_[kStageBytes];
  std::size_t staged_ = 0;
  bool need_comma_ = false;
};

}  // namespace vrouter::proto
