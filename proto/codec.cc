#include "proto/codec.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstddef>

namespace vrouter::proto {
namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, kFailureReasonCount> kFailureReasonNames = {
    "no_media", "ice_failed", "dtls_failed", "connect_failed", "other"};
constexpr std::size_t kMaxDetailBytes = 256;
constexpr std::size_t kMaxTokenBytes = 8192;
constexpr std::size_t kMaxUrlBytes = 1024;
constexpr std::size_t kMaxTextBytes = 1024;

std::string Quote(std::string_view key) { return "'" + std::string(key) + "'"; }

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

  bool Id(std::string_view key, std::string& out) {
    if (!String(key, out, kMaxIdBytes)) return false;
    if (!IsValidId(out)) {
      return Fail("field " + Quote(key) + " must be 1-128 bytes without control characters");
    }
    return true;
  }

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

// Parses `text` into `storage` and returns the top-level object with its `type`, or an error.
struct Envelope {
  const json::object* object = nullptr;
  std::string_view type;
  RequestId id;
};

std::variant<Envelope, DecodeError> Open(std::string_view text, json::value& storage) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  storage = json::parse(text, ec, storage.storage(), options);
  if (ec) return DecodeError{ErrorCode::kInvalidJson, "invalid JSON: " + ec.message(), {}};
  if (!storage.is_object()) {
    return DecodeError{ErrorCode::kInvalidMessage, "a message must be a JSON object", {}};
  }
  Envelope env;
  env.object = &storage.get_object();
  // Read the id first so that every later error can be matched to the request.
  if (const json::value* id = env.object->if_contains("id"); id != nullptr && !id->is_null()) {
    env.id = FieldReader::AsSafeUInt(*id);
    if (!env.id) {
      return DecodeError{
          ErrorCode::kInvalidMessage, "field 'id' must be an integer in [0, 2^53-1]", {}};
    }
  }
  const json::value* type = env.object->if_contains("type");
  if (type == nullptr)
    return DecodeError{ErrorCode::kInvalidMessage, "missing field 'type'", env.id};
  if (!type->is_string()) {
    return DecodeError{ErrorCode::kInvalidMessage, "field 'type' must be a string", env.id};
  }
  env.type = type->get_string();
  return env;
}

DecodeError UnknownType(const Envelope& env) {
  std::string shown(env.type.substr(0, 64));
  return DecodeError{ErrorCode::kUnknownType, "unknown message type '" + shown + "'", env.id};
}

bool ReadServerRef(FieldReader& r, const json::object* o, ServerRef& out) {
  if (o == nullptr) return r.ok();
  FieldReader sr(*o);
  sr.Id("id", out.id) && sr.String("url", out.url, kMaxUrlBytes) &&
      sr.String("region", out.region, kMaxIdBytes);
  return sr.ok() ? true : r.Fail("server: " + sr.error());
}

bool ReadLocations(FieldReader& r, std::vector<UserLocation>& out) {
  const json::array* results = nullptr;
  if (!r.Array("results", results)) return false;
  out.reserve(results->size());
  for (const json::value& e : *results) {
    if (!e.is_object()) return r.Fail("results must hold objects");
    FieldReader er(e.get_object());
    UserLocation loc;
    const json::object* server = nullptr;
    er.Id("user", loc.user) && er.Object("server", server, /*optional=*/true) &&
        er.UInt("epoch", loc.epoch);
    if (er.ok() && server != nullptr) {
      loc.server.emplace();
      ReadServerRef(er, server, *loc.server);
    }
    if (!er.ok()) return r.Fail("results: " + er.error());
    out.push_back(std::move(loc));
  }
  return true;
}

template <class Message>
std::variant<Message, DecodeError> Finish(FieldReader& r, const Envelope& env, Message message) {
  if (!r.ok()) {
    return DecodeError{ErrorCode::kInvalidMessage, std::string(env.type) + ": " + r.error(),
                       env.id};
  }
  return message;
}

// Small messages parse without touching the heap.
constexpr std::size_t kParseBufferBytes = 4096;

}  // namespace

std::string_view FailureReasonName(FailureReason reason) {
  return kFailureReasonNames[static_cast<int>(reason)];
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

ClientDecodeResult DecodeClientMessage(std::string_view text) {
  unsigned char buffer[kParseBufferBytes];
  json::monotonic_resource mr(buffer, sizeof(buffer));
  json::value storage(&mr);  // same resource: parse results move in, no copy
  auto opened = Open(text, storage);
  if (auto* err = std::get_if<DecodeError>(&opened)) return std::move(*err);
  const Envelope& env = std::get<Envelope>(opened);
  FieldReader r(*env.object);

  auto wrap = [](auto result) -> ClientDecodeResult {
    if (auto* err = std::get_if<DecodeError>(&result)) return std::move(*err);
    return ClientMessage(std::move(std::get<0>(result)));
  };
  if (env.type == "hello") {
    Hello m{env.id, {}};
    r.String("token", m.token, kMaxTokenBytes);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "join") return ClientMessage(Join{env.id});
  if (env.type == "resume") {
    Resume m{env.id, {}, 0};
    r.Id("server", m.server) && r.UInt("epoch", m.epoch);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "lookup" || env.type == "watch" || env.type == "unwatch") {
    std::vector<std::string> users;
    r.IdArray("users", users);
    if (env.type == "lookup") return wrap(Finish(r, env, Lookup{env.id, std::move(users)}));
    if (env.type == "watch") return wrap(Finish(r, env, Watch{env.id, std::move(users)}));
    return wrap(Finish(r, env, Unwatch{env.id, std::move(users)}));
  }
  if (env.type == "report") {
    Report m{env.id, {}, FailureReason::kOther, {}};
    std::string reason;
    if (r.Id("server", m.server) && r.String("reason", reason, 64)) {
      auto it = std::find(kFailureReasonNames.begin(), kFailureReasonNames.end(), reason);
      if (it == kFailureReasonNames.end()) {
        r.Fail(
            "field 'reason' must be one of no_media, ice_failed, dtls_failed, connect_failed, "
            "other");
      } else {
        m.reason = static_cast<FailureReason>(it - kFailureReasonNames.begin());
      }
    }
    r.OptionalString("detail", m.detail, kMaxDetailBytes);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "leave") return ClientMessage(Leave{env.id});
  return UnknownType(env);
}

ServerDecodeResult DecodeServerMessage(std::string_view text) {
  unsigned char buffer[kParseBufferBytes];
  json::monotonic_resource mr(buffer, sizeof(buffer));
  json::value storage(&mr);  // same resource: parse results move in, no copy
  auto opened = Open(text, storage);
  if (auto* err = std::get_if<DecodeError>(&opened)) return std::move(*err);
  const Envelope& env = std::get<Envelope>(opened);
  FieldReader r(*env.object);

  auto wrap = [](auto result) -> ServerDecodeResult {
    if (auto* err = std::get_if<DecodeError>(&result)) return std::move(*err);
    return ServerMessage(std::move(std::get<0>(result)));
  };
  const json::object* server = nullptr;
  if (env.type == "welcome") {
    Welcome m;
    m.id = env.id;
    const json::object* limits = nullptr;
    std::uint64_t max_message = 0, max_batch = 0, max_watches = 0;
    r.String("replica", m.replica, kMaxIdBytes) && r.String("session", m.session, kMaxIdBytes) &&
        r.Id("user", m.user) && r.Id("space", m.space) && r.Object("limits", limits);
    if (r.ok()) {
      FieldReader lr(*limits);
      lr.UInt("max_message_bytes", max_message) && lr.UInt("max_batch", max_batch) &&
          lr.UInt("max_watches", max_watches);
      if (!lr.ok()) r.Fail("limits: " + lr.error());
      m.limits = {static_cast<std::uint32_t>(max_message), static_cast<std::uint32_t>(max_batch),
                  static_cast<std::uint32_t>(max_watches)};
    }
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "assigned") {
    Assigned m;
    m.id = env.id;
    r.Object("server", server) && ReadServerRef(r, server, m.server) && r.UInt("epoch", m.epoch) &&
        r.Bool("resumed", m.resumed);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "lookup_result" || env.type == "watch_result") {
    std::vector<UserLocation> results;
    ReadLocations(r, results);
    if (env.type == "lookup_result") {
      return wrap(Finish(r, env, LookupResult{env.id, std::move(results)}));
    }
    return wrap(Finish(r, env, WatchResult{env.id, std::move(results)}));
  }
  if (env.type == "ack") return ServerMessage(Ack{env.id});
  if (env.type == "moved") {
    Moved m;
    std::string from;
    r.Id("user", m.user) && r.Object("server", server) && ReadServerRef(r, server, m.server) &&
        r.UInt("epoch", m.epoch) && r.OptionalString("from", from, kMaxIdBytes);
    if (!from.empty()) m.from = std::move(from);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "left") {
    Left m;
    r.Id("user", m.user) && r.UInt("epoch", m.epoch);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "migrate") {
    Migrate m;
    r.Object("server", server) && ReadServerRef(r, server, m.server) && r.UInt("epoch", m.epoch) &&
        r.String("reason", m.reason, 64);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "goaway") {
    GoAway m;
    std::uint64_t after = 0;
    r.String("reason", m.reason, 64) && r.UInt("reconnect_after_ms", after);
    m.reconnect_after_ms = static_cast<std::uint32_t>(after);
    return wrap(Finish(r, env, std::move(m)));
  }
  if (env.type == "error") {
    Error m;
    m.id = env.id;
    std::string code;
    if (r.String("code", code, 64)) {
      if (auto c = ErrorCodeFromName(code)) {
        m.code = *c;
      } else {
        r.Fail("unknown error code '" + code + "'");
      }
    }
    r.String("message", m.message, kMaxTextBytes);
    return wrap(Finish(r, env, std::move(m)));
  }
  return UnknownType(env);
}

// ---- encoding ----

namespace {

void PutId(json::object& o, const RequestId& id) {
  if (id) o["id"] = *id;
}

void PutUsers(json::object& o, const std::vector<std::string>& users) {
  json::array a;
  a.reserve(users.size());
  for (const auto& u : users) a.emplace_back(u);
  o["users"] = std::move(a);
}

json::object ServerRefJson(const ServerRef& s) {
  return json::object{{"id", s.id}, {"url", s.url}, {"region", s.region}};
}

json::array LocationsJson(const std::vector<UserLocation>& locations) {
  json::array a;
  a.reserve(locations.size());
  for (const auto& loc : locations) {
    json::object e{{"user", loc.user}};
    if (loc.server) {
      e["server"] = ServerRefJson(*loc.server);
    } else {
      e["server"] = nullptr;
    }
    e["epoch"] = loc.epoch;
    a.emplace_back(std::move(e));
  }
  return a;
}

struct ClientEncoder {
  json::object& o;
  void operator()(const Hello& m) { o["token"] = m.token; }
  void operator()(const Join&) {}
  void operator()(const Resume& m) {
    o["server"] = m.server;
    o["epoch"] = m.epoch;
  }
  void operator()(const Lookup& m) { PutUsers(o, m.users); }
  void operator()(const Watch& m) { PutUsers(o, m.users); }
  void operator()(const Unwatch& m) { PutUsers(o, m.users); }
  void operator()(const Report& m) {
    o["server"] = m.server;
    o["reason"] = FailureReasonName(m.reason);
    if (!m.detail.empty()) o["detail"] = m.detail;
  }
  void operator()(const Leave&) {}
};

struct ServerEncoder {
  json::object& o;
  void operator()(const Welcome& m) {
    o["replica"] = m.replica;
    o["session"] = m.session;
    o["user"] = m.user;
    o["space"] = m.space;
    o["limits"] = json::object{{"max_message_bytes", m.limits.max_message_bytes},
                               {"max_batch", m.limits.max_batch},
                               {"max_watches", m.limits.max_watches}};
  }
  void operator()(const Assigned& m) {
    o["server"] = ServerRefJson(m.server);
    o["epoch"] = m.epoch;
    o["resumed"] = m.resumed;
  }
  void operator()(const LookupResult& m) { o["results"] = LocationsJson(m.results); }
  void operator()(const WatchResult& m) { o["results"] = LocationsJson(m.results); }
  void operator()(const Ack&) {}
  void operator()(const Moved& m) {
    o["user"] = m.user;
    o["server"] = ServerRefJson(m.server);
    o["epoch"] = m.epoch;
    if (m.from) {
      o["from"] = *m.from;
    } else {
      o["from"] = nullptr;
    }
  }
  void operator()(const Left& m) {
    o["user"] = m.user;
    o["epoch"] = m.epoch;
  }
  void operator()(const Migrate& m) {
    o["server"] = ServerRefJson(m.server);
    o["epoch"] = m.epoch;
    o["reason"] = m.reason;
  }
  void operator()(const GoAway& m) {
    o["reason"] = m.reason;
    o["reconnect_after_ms"] = m.reconnect_after_ms;
  }
  void operator()(const Error& m) {
    o["code"] = ErrorCodeName(m.code);
    o["message"] = m.message;
  }
};

template <class Message>
RequestId IdOf(const Message& m) {
  if constexpr (requires { m.id; }) {
    return m.id;
  } else {
    return std::nullopt;
  }
}

}  // namespace

std::string Encode(const ClientMessage& message) {
  json::object o;
  o["type"] = kClientTypeNames[message.index()];
  std::visit([&](const auto& m) { PutId(o, IdOf(m)); }, message);
  std::visit(ClientEncoder{o}, message);
  return json::serialize(o);
}

std::string Encode(const ServerMessage& message) {
  json::object o;
  o["type"] = kServerTypeNames[message.index()];
  std::visit([&](const auto& m) { PutId(o, IdOf(m)); }, message);
  std::visit(ServerEncoder{o}, message);
  return json::serialize(o);
}

}  // namespace vrouter::proto
