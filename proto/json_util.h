// Internal to vrouter_proto: the JSON reading and writing helpers shared by the client codec
// (codec.cc, vrouter.v1) and the video-server codec (video_server_codec.cc, vrouter.video.v1), so
// that both protocols decode with exactly the same strictness. Not a public header: it exposes
// Boost.JSON types, which codec.h and video_server_codec.h keep out of their users' way.
#pragma once

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/decode_error.h"

namespace vrouter::proto::internal {
namespace json = boost::json;

inline constexpr std::size_t kMaxTokenBytes = 8192;
inline constexpr std::size_t kMaxTextBytes = 1024;   // `error.message`
inline constexpr std::size_t kMaxDetailBytes = 256;  // `report.detail`
// Small messages parse without touching the heap.
inline constexpr std::size_t kParseBufferBytes = 4096;

// True when `text` is 1..max_bytes bytes without control characters (U+0000-U+001F, U+007F): the
// rule for ids, regions and URLs.
bool IsValidText(std::string_view text, std::size_t max_bytes);

std::string Quote(std::string_view key);

// Reads the fields of one JSON object. The first failure is kept in `error`; every accessor
// returns false from then on, so decoders read fields in sequence and check once at the end.
class FieldReader {
 public:
  explicit FieldReader(const json::object& object) : object_(object) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  bool String(std::string_view key, std::string& out, std::size_t max_bytes) {
    const json::value* v = Find(key);
    if (v == nullptr) return Fail("missing field " + Quote(key));
    if (!v->is_string()) return Fail("field " + Quote(key) + " must be a string");
    const json::string& s = v->get_string();
    if (s.size() > max_bytes) {
      return Fail("field " + Quote(key) + " exceeds " + std::to_string(max_bytes) + " bytes");
    }
    out.assign(s.data(), s.size());
    return true;
  }

  bool NonEmptyString(std::string_view key, std::string& out, std::size_t max_bytes) {
    if (!String(key, out, max_bytes)) return false;
    return !out.empty() || Fail("field " + Quote(key) + " must not be empty");
  }

  // A string of 1..max_bytes bytes without control characters (ids, regions, URLs).
  bool Text(std::string_view key, std::string& out, std::size_t max_bytes) {
    if (!String(key, out, max_bytes)) return false;
    if (!IsValidText(out, max_bytes)) {
      return Fail("field " + Quote(key) + " must be 1-" + std::to_string(max_bytes) +
                  " bytes without control characters");
    }
    return true;
  }

  bool Id(std::string_view key, std::string& out) { return Text(key, out, kMaxIdBytes); }

  bool OptionalString(std::string_view key, std::string& out, std::size_t max_bytes) {
    if (Find(key) == nullptr || Find(key)->is_null()) return ok();
    return String(key, out, max_bytes);
  }

  bool UInt(std::string_view key, std::uint64_t& out, bool optional = false) {
    const json::value* v = Find(key);
    if (v == nullptr || (optional && v->is_null())) {
      return optional ? ok() : Fail("missing field " + Quote(key));
    }
    std::optional<std::uint64_t> n = AsSafeUInt(*v);
    if (!n) return Fail("field " + Quote(key) + " must be an integer in [0, 2^53-1]");
    out = *n;
    return true;
  }

  // An optional integer in [0, 2^53-1]: absent or null leaves `out` empty.
  bool OptionalUInt(std::string_view key, std::optional<std::uint64_t>& out) {
    const json::value* v = Find(key);
    if (v == nullptr || v->is_null()) {
      out.reset();
      return ok();
    }
    out = AsSafeUInt(*v);
    return out.has_value() || Fail("field " + Quote(key) + " must be an integer in [0, 2^53-1]");
  }

  // An optional integer literal in [0, 2^32-1]: absent or null leaves `out` empty.
  bool OptionalUInt32(std::string_view key, std::optional<std::uint32_t>& out) {
    const json::value* v = Find(key);
    if (v == nullptr || v->is_null()) {
      out.reset();
      return ok();
    }
    std::uint32_t n = 0;
    if (!UInt32(key, n)) return false;
    out = n;
    return true;
  }

  // An integer literal in [min, max].
  bool UInt32(std::string_view key, std::uint32_t& out, std::uint32_t min = 0,
              std::uint32_t max = std::numeric_limits<std::uint32_t>::max()) {
    const json::value* v = Find(key);
    if (v == nullptr) return Fail("missing field " + Quote(key));
    std::optional<std::uint64_t> n = AsSafeUInt(*v);
    if (!n || *n < min || *n > max) {
      return Fail("field " + Quote(key) + " must be an integer in [" + std::to_string(min) + ", " +
                  std::to_string(max) + "]");
    }
    out = static_cast<std::uint32_t>(*n);
    return true;
  }

  // A finite number in [0, 1], integer or not (0 and 1 are fine as integer literals).
  bool Fraction(std::string_view key, double& out) {
    const json::value* v = Find(key);
    if (v == nullptr) return Fail("missing field " + Quote(key));
    std::optional<double> d;
    if (v->is_double()) d = v->get_double();
    if (v->is_int64()) d = static_cast<double>(v->get_int64());
    if (v->is_uint64()) d = static_cast<double>(v->get_uint64());
    // Written so that NaN fails too (1e999 parses as infinity; NaN cannot be written in JSON).
    if (!d || !(*d >= 0 && *d <= 1)) {
      return Fail("field " + Quote(key) + " must be a number in [0, 1]");
    }
    out = *d;
    return true;
  }

  bool Bool(std::string_view key, bool& out) {
    const json::value* v = Find(key);
    if (v == nullptr) return Fail("missing field " + Quote(key));
    if (!v->is_bool()) return Fail("field " + Quote(key) + " must be a boolean");
    out = v->get_bool();
    return true;
  }

  bool IdArray(std::string_view key, std::vector<std::string>& out) {
    const json::value* v = Find(key);
    if (v == nullptr) return Fail("missing field " + Quote(key));
    if (!v->is_array()) return Fail("field " + Quote(key) + " must be an array of ids");
    const json::array& a = v->get_array();
    out.reserve(a.size());
    for (const json::value& e : a) {
      if (!e.is_string() || !IsValidId(e.get_string())) {
        return Fail("field " + Quote(key) +
                    " must hold ids (strings of 1-128 bytes without control characters)");
      }
      out.emplace_back(e.get_string().data(), e.get_string().size());
    }
    return true;
  }

  bool Object(std::string_view key, const json::object*& out, bool optional = false) {
    const json::value* v = Find(key);
    if (v == nullptr || (optional && v->is_null())) {
      out = nullptr;
      return optional ? ok() : Fail("missing field " + Quote(key));
    }
    if (!v->is_object()) return Fail("field " + Quote(key) + " must be an object");
    out = &v->get_object();
    return true;
  }

  bool Array(std::string_view key, const json::array*& out) {
    const json::value* v = Find(key);
    if (v == nullptr) return Fail("missing field " + Quote(key));
    if (!v->is_array()) return Fail("field " + Quote(key) + " must be an array");
    out = &v->get_array();
    return true;
  }

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  static std::optional<std::uint64_t> AsSafeUInt(const json::value& v) {
    if (v.is_uint64() && v.get_uint64() <= kMaxSafeInteger) return v.get_uint64();
    if (v.is_int64() && v.get_int64() >= 0 &&
        static_cast<std::uint64_t>(v.get_int64()) <= kMaxSafeInteger) {
      return static_cast<std::uint64_t>(v.get_int64());
    }
    return std::nullopt;
  }

 private:
  const json::value* Find(std::string_view key) const { return object_.if_contains(key); }

  const json::object& object_;
  std::string error_;
};

// The top-level object of a frame with its `type`, and the id errors about it carry.
struct Envelope {
  const json::object* object = nullptr;
  std::string_view type;
  RequestId id;
};

// Whether the top-level `id` is a request id (vrouter.v1: read before anything else, so every
// later error can echo it) or an ordinary field of some messages (vrouter.video.v1, where
// `register.id` is the server's id).
enum class IdField { kRequestId, kOrdinary };

// Owns the parsed JSON of one frame, in a stack buffer for small messages. The envelope points
// into it: keep the Frame alive while the envelope is used.
class Frame {
 public:
  Frame() = default;
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;

  // Parses `text` (at most kMaxJsonDepth deep) and fills envelope() with its top-level object and
  // `type`. Returns the error otherwise: invalid_json, or invalid_message when the frame is not an
  // object, its request id is invalid, or `type` is missing or not a string.
  std::optional<DecodeError> Open(std::string_view text, IdField id_field);
  const Envelope& envelope() const { return envelope_; }

 private:
  unsigned char buffer_[kParseBufferBytes];
  json::monotonic_resource resource_{buffer_, sizeof(buffer_)};
  json::value storage_ = json::value(&resource_);  // same resource: results move in, no copy
  Envelope envelope_;
};

DecodeError UnknownType(const Envelope& env);

// `message` as a decode result (std::variant<SomeMessage, DecodeError>), or the reader's first
// error, tagged with the message type and the envelope's id.
template <class Result, class Message>
Result Finish(const FieldReader& r, const Envelope& env, Message message) {
  if (!r.ok()) {
    return DecodeError{ErrorCode::kInvalidMessage, std::string(env.type) + ": " + r.error(),
                       env.id};
  }
  return Result(std::in_place_index<0>, std::move(message));
}

// `error` is the same message on both protocols: these read and write its `code` and `message`
// (the caller handles `type` and `id`).
bool ReadErrorFields(FieldReader& r, Error& out);
void PutErrorFields(json::object& o, const Error& m);

void PutId(json::object& o, const RequestId& id);

}  // namespace vrouter::proto::internal
