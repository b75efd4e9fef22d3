#include "proto/codec.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cstddef>
#include <cstring>

#include "proto/client_view.h"
#include "proto/json_scan.h"
#include "proto/json_util.h"
#include "proto/json_writer.h"
#include "proto/video_server_messages.h"  // kMaxUrlBytes: the same limit on both protocols

namespace vrouter::proto {
namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, kFailureReasonCount> kFailureReasonNames = {
    "no_media", "ice_failed", "dtls_failed", "connect_failed", "other"};

using internal::Envelope;
using internal::FieldReader;
using internal::Finish;
using internal::Frame;
using internal::IdField;
using internal::kMaxDetailBytes;
using internal::kMaxTokenBytes;
using internal::UnknownType;

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

}  // namespace

std::string_view FailureReasonName(FailureReason reason) {
  return kFailureReasonNames[static_cast<int>(reason)];
}

ClientDecodeResult DecodeClientMessage(std::string_view text) {
  ClientView view;
  if (ReadClientView(text, view)) return ToMessage(view);
  return DecodeClientMessageDom(text);
}

ClientDecodeResult DecodeClientMessageDom(std::string_view text) {
  Frame frame;
  if (auto error = frame.Open(text, IdField::kRequestId)) return std::move(*error);
  const Envelope& env = frame.envelope();
  FieldReader r(*env.object);

  if (env.type == "hello") {
    Hello m{env.id, {}};
    r.NonEmptyString("token", m.token, kMaxTokenBytes);
    return Finish<ClientDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "join") return ClientMessage(Join{env.id});
  if (env.type == "resume") {
    Resume m{env.id, {}, 0};
    r.Id("server", m.server) && r.UInt("epoch", m.epoch);
    return Finish<ClientDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "lookup" || env.type == "watch" || env.type == "unwatch") {
    std::vector<std::string> users;
    r.IdArray("users", users);
    if (env.type == "lookup") {
      return Finish<ClientDecodeResult>(r, env, Lookup{env.id, std::move(users)});
    }
    if (env.type == "watch") {
      return Finish<ClientDecodeResult>(r, env, Watch{env.id, std::move(users)});
    }
    return Finish<ClientDecodeResult>(r, env, Unwatch{env.id, std::move(users)});
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
    return Finish<ClientDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "leave") return ClientMessage(Leave{env.id});
  return UnknownType(env);
}

ServerDecodeResult DecodeServerMessage(std::string_view text) {
  Frame frame;
  if (auto error = frame.Open(text, IdField::kRequestId)) return std::move(*error);
  const Envelope& env = frame.envelope();
  FieldReader r(*env.object);

  const json::object* server = nullptr;
  if (env.type == "welcome") {
    Welcome m;
    m.id = env.id;
    const json::object* limits = nullptr;
    r.String("replica", m.replica, kMaxIdBytes) && r.String("session", m.session, kMaxIdBytes) &&
        r.Id("user", m.user) && r.Id("space", m.space) && r.Object("limits", limits);
    if (r.ok()) {
      FieldReader lr(*limits);
      lr.UInt32("max_message_bytes", m.limits.max_message_bytes) &&
          lr.UInt32("max_batch", m.limits.max_batch) &&
          lr.UInt32("max_watches", m.limits.max_watches);
      if (!lr.ok()) r.Fail("limits: " + lr.error());
    }
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "assigned") {
    Assigned m;
    m.id = env.id;
    r.Object("server", server) && ReadServerRef(r, server, m.server) && r.UInt("epoch", m.epoch) &&
        r.Bool("resumed", m.resumed);
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "lookup_result" || env.type == "watch_result") {
    std::vector<UserLocation> results;
    ReadLocations(r, results);
    if (env.type == "lookup_result") {
      return Finish<ServerDecodeResult>(r, env, LookupResult{env.id, std::move(results)});
    }
    return Finish<ServerDecodeResult>(r, env, WatchResult{env.id, std::move(results)});
  }
  if (env.type == "ack") return ServerMessage(Ack{env.id});
  if (env.type == "moved") {
    Moved m;
    std::string from;
    r.Id("user", m.user) && r.Object("server", server) && ReadServerRef(r, server, m.server) &&
        r.UInt("epoch", m.epoch) && r.OptionalString("from", from, kMaxIdBytes);
    if (!from.empty()) m.from = std::move(from);
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "left") {
    Left m;
    r.Id("user", m.user) && r.UInt("epoch", m.epoch);
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "migrate") {
    Migrate m;
    r.Object("server", server) && ReadServerRef(r, server, m.server) && r.UInt("epoch", m.epoch) &&
        r.String("reason", m.reason, 64);
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "goaway") {
    GoAway m;
    r.String("reason", m.reason, 64) && r.UInt32("reconnect_after_ms", m.reconnect_after_ms);
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "error") {
    Error m;
    m.id = env.id;
    internal::ReadErrorFields(r, m);
    return Finish<ServerDecodeResult>(r, env, std::move(m));
  }
  return UnknownType(env);
}

// ---- encoding ----

namespace {

using internal::PutId;

void PutUsers(json::object& o, const std::vector<std::string>& users) {
  json::array a;
  a.reserve(users.size());
  for (const auto& u : users) a.emplace_back(u);
  o["users"] = std::move(a);
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

// Router -> client messages are written straight into the frame (no DOM, json_writer.h): they are
// the hot path of every lookup. The output is what json::serialize would print for the same
// fields in the same order (tests compare the two).
using Writer = JsonWriter;

void WriteServerRef(Writer& w, const ServerRefView& s) {
  w.BeginObject();
  w.Key("id").String(s.id);
  w.Key("url").String(s.url);
  w.Key("region").String(s.region);
  w.EndObject();
}
void WriteServerRef(Writer& w, const ServerRef& s) {
  WriteServerRef(w, ServerRefView{s.id, s.url, s.region});
}

// `locations`: UserLocations or UserLocationViews (they have the same members).
template <class Locations>
void WriteLocations(Writer& w, const Locations& locations) {
  w.Key("results").BeginArray();
  for (const auto& loc : locations) {
    w.BeginObject();
    w.Key("user").String(loc.user);
    w.Key("server");
    if (loc.server) {
      WriteServerRef(w, *loc.server);
    } else {
      w.Null();
    }
    w.Key("epoch").Uint(loc.epoch);
    w.EndObject();
  }
  w.EndArray();
}

// The frame's opening: `{"type":...` and the request id when there is one.
void WriteHead(Writer& w, std::string_view type, const RequestId& id) {
  w.BeginObject();
  w.Key("type").String(type);
  if (id) w.Key("id").Uint(*id);
}

struct ServerEncoder {
  Writer& w;
  void operator()(const Welcome& m) {
    w.Key("replica").String(m.replica);
    w.Key("session").String(m.session);
    w.Key("user").String(m.user);
    w.Key("space").String(m.space);
    w.Key("limits").BeginObject();
    w.Key("max_message_bytes").Uint(m.limits.max_message_bytes);
    w.Key("max_batch").Uint(m.limits.max_batch);
    w.Key("max_watches").Uint(m.limits.max_watches);
    w.EndObject();
  }
  void operator()(const Assigned& m) {
    WriteServerRef(w.Key("server"), m.server);
    w.Key("epoch").Uint(m.epoch);
    w.Key("resumed").Bool(m.resumed);
  }
  void operator()(const LookupResult& m) { WriteLocations(w, m.results); }
  void operator()(const WatchResult& m) { WriteLocations(w, m.results); }
  void operator()(const Ack&) {}
  void operator()(const Moved& m) {
    w.Key("user").String(m.user);
    WriteServerRef(w.Key("server"), m.server);
    w.Key("epoch").Uint(m.epoch);
    if (m.from) {
      w.Key("from").String(*m.from);
    } else {
      w.Key("from").Null();
    }
  }
  void operator()(const Left& m) {
    w.Key("user").String(m.user);
    w.Key("epoch").Uint(m.epoch);
  }
  void operator()(const Migrate& m) {
    WriteServerRef(w.Key("server"), m.server);
    w.Key("epoch").Uint(m.epoch);
    w.Key("reason").String(m.reason);
  }
  void operator()(const GoAway& m) {
    w.Key("reason").String(m.reason);
    w.Key("reconnect_after_ms").Uint(m.reconnect_after_ms);
  }
  void operator()(const Error& m) {
    w.Key("code").String(ErrorCodeName(m.code));
    w.Key("message").String(m.message);
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
  std::string out;
  out.reserve(128);
  EncodeTo(message, out);
  return out;
}

void EncodeTo(const ServerMessage& message, std::string& out) {
  Writer w(out);
  WriteHead(w, kServerTypeNames[message.index()],
            std::visit([](const auto& m) { return IdOf(m); }, message));
  std::visit(ServerEncoder{w}, message);
  w.EndObject();
}

void EncodeLocationsTo(LocationsType type, const RequestId& id,
                       std::span<const UserLocationView> results, std::string& out) {
  Writer w(out);
  WriteHead(w,
            kServerTypeNames[type == LocationsType::kLookupResult
                                 ? VariantIndex<LookupResult, ServerMessage>::value
                                 : VariantIndex<WatchResult, ServerMessage>::value],
            id);
  WriteLocations(w, results);
  w.EndObject();
}

}  // namespace vrouter::proto
