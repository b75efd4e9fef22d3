#include "proto/client_view.h"

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "proto/decode_error.h"
#include "proto/json_scan.h"
#include "proto/json_util.h"

namespace vrouter::proto {
namespace {

// The top-level fields some client message reads. Every other key is skipped (validated only).
enum class Key : std::uint8_t { kId, kType, kToken, kServer, kEpoch, kUsers, kReason, kDetail };
constexpr std::array<std::string_view, 8> kKeyNames = {"id",    "type",  "token",  "server",
                                                       "epoch", "users", "reason", "detail"};
constexpr std::size_t kNoKey = kKeyNames.size();

enum class Kind : std::uint8_t { kString, kNumber, kNull, kBool, kObject, kArray };

struct Field {
  bool seen = false;
  Kind kind = Kind::kNull;
  std::string_view text;  // a string's raw contents, a number's literal
  bool escaped = false;   // the string holds an escape sequence: `text` is not its value
};

// Numbers longer than this, or with more exponent digits than kMaxExponentDigits, are left to
// the DOM: Boost.JSON refuses some of them (exponent_overflow) and this reader does not model
// where exactly.
constexpr std::ptrdiff_t kMaxNumberChars = 24;
constexpr int kMaxExponentDigits = 4;
// 2^53-1 has 16 digits.
constexpr std::size_t kMaxSafeIntegerDigits = 16;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// One pass over the frame. Every method returns false to decline: the input is invalid, or valid
// in a way this reader does not handle.
class Reader {
 public:
  explicit Reader(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool Message(std::array<Field, kKeyNames.size()>& fields,
               absl::InlinedVector<std::string_view, 8>& users, bool& users_ok) {
    SkipSpace();
    if (!Consume('{')) return false;
    SkipSpace();
    if (Peek() != '}') {
      while (true) {
        std::string_view key;
        bool escaped = false;
        if (Peek() != '"' || !String(key, escaped) || escaped) return false;
        SkipSpace();
        if (!Consume(':')) return false;
        SkipSpace();
        const std::size_t k = KeyIndex(key);
        if (k == kNoKey) {
          if (!Value(1)) return false;
        } else {
          Field& f = fields[k];
          if (f.seen) return false;  // which of two values the DOM keeps is not ours to guess
          f.seen = true;
          if (!KeptValue(f, static_cast<Key>(k) == Key::kUsers ? &users : nullptr, users_ok)) {
            return false;
          }
        }
        SkipSpace();
        if (Peek() == ',') {
          ++p_;
          SkipSpace();
          continue;
        }
        break;
      }
    }
    if (!Consume('}')) return false;
    SkipSpace();
    return p_ == end_;
  }

 private:
  char Peek() const { return p_ < end_ ? *p_ : '\0'; }
  bool Consume(char c) {
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  void SkipSpace() {
    const char* p = p_;
    while (p != end_ && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    p_ = p;
  }

  static std::size_t KeyIndex(std::string_view key) {
    for (std::size_t i = 0; i < kKeyNames.size(); ++i) {
      if (kKeyNames[i] == key) return i;
    }
    return kNoKey;
  }

  // The value of a known top-level key: its kind and text are kept; `users` (for "users") gets
  // the array's strings, and `users_ok` whether they all were plain strings.
  bool KeptValue(Field& f, absl::InlinedVector<std::string_view, 8>* users, bool& users_ok) {
    switch (Peek()) {
      case '"':
        f.kind = Kind::kString;
        return String(f.text, f.escaped);
      case '{':
        f.kind = Kind::kObject;
        return Value(1);
      case '[':
        f.kind = Kind::kArray;
        return users != nullptr ? Users(*users, users_ok) : Value(1);
      case 'n':
        f.kind = Kind::kNull;
        return Value(1);
      case 't':
      case 'f':
        f.kind = Kind::kBool;
        return Value(1);
      default:
        f.kind = Kind::kNumber;
        return Number(f.text);
    }
  }

  // An array at depth 2 whose elements should be plain strings.
  bool Users(absl::InlinedVector<std::string_view, 8>& out, bool& ok) {
    ++p_;  // '['
    SkipSpace();
    if (Peek() == ']') {
      ++p_;
      return true;
    }
    while (true) {
      if (Peek() == '"') {
        std::string_view s;
        bool escaped = false;
        if (!String(s, escaped)) return false;
        ok = ok && !escaped;
        out.push_back(s);
      } else {
        ok = false;
        if (!Value(2)) return false;
      }
      SkipSpace();
      if (Peek() == ',') {
        ++p_;
        SkipSpace();
        continue;
      }
      return Consume(']');
    }
  }

  // Any JSON value, validated and skipped. `depth`: containers enclosing it.
  bool Value(std::size_t depth) {
    switch (Peek()) {
      case '"': {
        std::string_view s;
        bool escaped = false;
        return String(s, escaped);
      }
      case '{':
      case '[':
        return Container(depth);
      case 't':
        return Word("true");
      case 'f':
        return Word("false");
      case 'n':
        return Word("null");
      default: {
        std::string_view n;
        return Number(n);
      }
    }
  }

  bool Word(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // An object or array inside the message (depth >= 1), skipped.
  bool Container(std::size_t depth) {
    if (depth + 1 > kMaxJsonDepth) return false;
    const bool object = *p_ == '{';
    const char close = object ? '}' : ']';
    ++p_;
    SkipSpace();
    if (Peek() == close) {
      ++p_;
      return true;
    }
    while (true) {
      if (object) {
        std::string_view key;
        bool escaped = false;
        if (Peek() != '"' || !String(key, escaped)) return false;
        SkipSpace();
        if (!Consume(':')) return false;
        SkipSpace();
      }
      if (!Value(depth + 1)) return false;
      SkipSpace();
      if (Peek() == ',') {
        ++p_;
        SkipSpace();
        continue;
      }
      return Consume(close);
    }
  }

  // A string (p_ at its opening quote): `raw` gets what lies between the quotes. Validates
  // escapes and UTF-8 as Boost.JSON does (well-formed UTF-8 only: no overlong forms, no
  // surrogates, nothing above U+10FFFF); escaped surrogates (\uD800-\uDFFF) are declined.
  bool String(std::string_view& raw, bool& escaped) {
    ++p_;
    const char* begin = p_;
    escaped = false;
    while (true) {
      p_ = internal::EndOfPlainRun(p_, end_, /*stop_at_non_ascii=*/true);
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        raw = std::string_view(begin, static_cast<std::size_t>(p_ - begin));
        ++p_;
        return true;
      }
      if (c == '\\') {
        escaped = true;
        if (!Escape()) return false;
      } else if (c < 0x80 || !Utf8()) {
        return false;  // a control character, or malformed UTF-8
      }
    }
  }

  bool Escape() {
    if (end_ - p_ < 2) return false;
    switch (p_[1]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        p_ += 2;
        return true;
      case 'u': {
        if (end_ - p_ < 6) return false;
        unsigned code = 0;
        for (int i = 2; i < 6; ++i) {
          const char h = p_[i];
          if (!IsHex(h)) return false;
          code = code * 16 + static_cast<unsigned>(IsDigit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        if (code >= 0xD800 && code <= 0xDFFF) return false;  // pairs: left to the DOM
        p_ += 6;
        return true;
      }
      default:
        return false;
    }
  }

  // One multi-byte UTF-8 sequence (p_ at its lead byte).
  bool Utf8() {
    const auto lead = static_cast<unsigned char>(*p_);
    int length = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) lo = 0xA0;  // overlong
      if (lead == 0xED) hi = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) lo = 0x90;  // overlong
      if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (end_ - p_ < length) return false;
    const auto second = static_cast<unsigned char>(p_[1]);
    if (second < lo || second > hi) return false;
    for (int i = 2; i < length; ++i) {
      if ((static_cast<unsigned char>(p_[i]) & 0xC0) != 0x80) return false;
    }
    p_ += length;
    return true;
  }

  // A number literal (RFC 8259 grammar), within the bounds above.
  bool Number(std::string_view& literal) {
    const char* begin = p_;
    if (Peek() == '-') ++p_;
    if (Peek() == '0') {
      ++p_;
    } else if (IsDigit(Peek())) {
      while (IsDigit(Peek())) ++p_;
    } else {
      return false;
    }
    if (Peek() == '.') {
      ++p_;
      if (!IsDigit(Peek())) return false;
      while (IsDigit(Peek())) ++p_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++p_;
      if (Peek() == '+' || Peek() == '-') ++p_;
      int digits = 0;
      while (IsDigit(Peek())) {
        ++p_;
        ++digits;
      }
      if (digits == 0 || digits > kMaxExponentDigits) return false;
    }
    if (p_ - begin > kMaxNumberChars) return false;
    literal = std::string_view(begin, static_cast<std::size_t>(p_ - begin));
    return true;
  }

  const char* p_;
  const char* end_;
};

// A plain string field: present, a string, without escapes.
bool PlainString(const Field& f, std::string_view& out) {
  if (!f.seen || f.kind != Kind::kString || f.escaped) return false;
  out = f.text;
  return true;
}

// An integer literal in [0, 2^53-1] (what FieldReader::AsSafeUInt accepts of a number Boost.JSON
// parsed as an integer). Negative zero, fractions and exponents are left to the DOM.
bool SafeUInt(const Field& f, std::uint64_t& out) {
  if (!f.seen || f.kind != Kind::kNumber || f.text.empty() ||
      f.text.size() > kMaxSafeIntegerDigits) {
    return false;
  }
  std::uint64_t n = 0;
  for (char c : f.text) {
    if (!IsDigit(c)) return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n > kMaxSafeInteger) return false;
  out = n;
  return true;
}

// An id as FieldReader::Id accepts it.
bool PlainId(const Field& f, std::string_view& out) {
  return PlainString(f, out) && IsValidId(out);
}

}  // namespace

bool ReadClientView(std::string_view text, ClientView& out) {
  std::array<Field, kKeyNames.size()> fields{};
  bool users_ok = true;
  out.users.clear();
  if (!Reader(text).Message(fields, out.users, users_ok)) return false;
  auto field = [&](Key k) -> const Field& { return fields[static_cast<std::size_t>(k)]; };

  const Field& id = field(Key::kId);
  out.id.reset();
  if (id.seen && id.kind != Kind::kNull) {
    std::uint64_t n = 0;
    if (!SafeUInt(id, n)) return false;
    out.id = n;
  }
  std::string_view type;
  if (!PlainString(field(Key::kType), type)) return false;
  out.type = kNoKey;
  for (std::size_t i = 0; i < std::size(kClientTypeNames); ++i) {
    if (kClientTypeNames[i] == type) out.type = i;
  }
  switch (out.type) {
    case kClientTypeIndex<Hello>:
      return PlainString(field(Key::kToken), out.token) && !out.token.empty() &&
             out.token.size() <= internal::kMaxTokenBytes;
    case kClientTypeIndex<Join>:
    case kClientTypeIndex<Leave>:
      return true;
    case kClientTypeIndex<Resume>:
      return PlainId(field(Key::kServer), out.server) && SafeUInt(field(Key::kEpoch), out.epoch);
    case kClientTypeIndex<Lookup>:
    case kClientTypeIndex<Watch>:
    case kClientTypeIndex<Unwatch>: {
      const Field& users = field(Key::kUsers);
      if (!users.seen || users.kind != Kind::kArray || !users_ok) return false;
      for (std::string_view u : out.users) {
        if (!IsValidId(u)) return false;
      }
      return true;
    }
    case kClientTypeIndex<Report>: {
      std::string_view reason;
      if (!PlainId(field(Key::kServer), out.server) || !PlainString(field(Key::kReason), reason)) {
        return false;
      }
      bool known = false;
      for (int i = 0; i < kFailureReasonCount; ++i) {
        if (FailureReasonName(static_cast<FailureReason>(i)) == reason) {
          out.reason = static_cast<FailureReason>(i);
          known = true;
        }
      }
      if (!known) return false;
      const Field& detail = field(Key::kDetail);
      out.detail = {};
      if (!detail.seen || detail.kind == Kind::kNull) return true;
      return PlainString(detail, out.detail) && out.detail.size() <= internal::kMaxDetailBytes;
    }
    default:
      return false;  // unknown type: the DOM decoder words the error
  }
}

ClientMessage ToMessage(const ClientView& view) {
  auto strings = [](const auto& views) {
    return std::vector<std::string>(views.begin(), views.end());
  };
  switch (view.type) {
    case kClientTypeIndex<Hello>:
      return Hello{view.id, std::string(view.token)};
    case kClientTypeIndex<Join>:
      return Join{view.id};
    case kClientTypeIndex<Resume>:
      return Resume{view.id, std::string(view.server), view.epoch};
    case kClientTypeIndex<Lookup>:
      return Lookup{view.id, strings(view.users)};
    case kClientTypeIndex<Watch>:
      return Watch{view.id, strings(view.users)};
    case kClientTypeIndex<Unwatch>:
      return Unwatch{view.id, strings(view.users)};
    case kClientTypeIndex<Report>:
      return Report{view.id, std::string(view.server), view.reason, std::string(view.detail)};
    default:
      return Leave{view.id};
  }
}

}  // namespace vrouter::proto
