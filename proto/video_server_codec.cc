#include "proto/video_server_codec.h"

#include <boost/json.hpp>
#include <cstddef>

#include "proto/json_util.h"

namespace vrouter::proto {
namespace json = boost::json;

namespace {

using internal::Envelope;
using internal::FieldReader;
using internal::Finish;
using internal::Frame;
using internal::IdField;
using internal::UnknownType;

// `state` and `reason` are short snake_case words; this bounds what a decoder copies.
constexpr std::size_t kMaxWordBytes = 64;

}  // namespace

VideoServerDecodeResult DecodeVideoServerMessage(std::string_view text) {
  Frame frame;
  if (auto error = frame.Open(text, IdField::kOrdinary)) return std::move(*error);
  Envelope env = frame.envelope();
  FieldReader r(*env.object);

  if (env.type == "register") {
    Register m;
    r.NonEmptyString("token", m.token, internal::kMaxTokenBytes) && r.Id("id", m.id) &&
        r.Text("url", m.url, kMaxUrlBytes) && r.Text("region", m.region, kMaxRegionBytes) &&
        r.UInt32("capacity", m.capacity, 1, kMaxCapacity);
    return Finish<VideoServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "stats") {
    Stats m;
    // `seq` first: once read, every later error names the report it refuses.
    if (r.UInt("seq", m.seq)) {
      env.id = m.seq;
      r.UInt32("peers", m.peers) && r.UInt32("media_peers", m.media_peers) &&
          r.UInt("packets_in", m.packets_in) && r.UInt("packets_out", m.packets_out) &&
          r.UInt("bytes_in", m.bytes_in) && r.UInt("bytes_out", m.bytes_out) &&
          r.Fraction("cpu", m.cpu) && r.OptionalUInt32("streams_in", m.streams_in) &&
          r.OptionalUInt32("streams_out", m.streams_out);
    }
    return Finish<VideoServerDecodeResult>(r, env, m);
  }
  return UnknownType(env);
}

RouterToVideoServerDecodeResult DecodeRouterToVideoServerMessage(std::string_view text) {
  Frame frame;
  if (auto error = frame.Open(text, IdField::kOrdinary)) return std::move(*error);
  Envelope env = frame.envelope();
  FieldReader r(*env.object);

  if (env.type == "registered") {
    Registered m;
    r.Id("id", m.id) && r.String("replica", m.replica, kMaxIdBytes) &&
        r.UInt32("report_interval_ms", m.report_interval_ms, 1) &&
        r.Text("state", m.state, kMaxWordBytes);
    return Finish<RouterToVideoServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "state") {
    StateChange m;
    r.Text("state", m.state, kMaxWordBytes) && r.Text("reason", m.reason, kMaxWordBytes);
    return Finish<RouterToVideoServerDecodeResult>(r, env, std::move(m));
  }
  if (env.type == "error") {
    // As on the client protocol, where `id` is the request id; here it is the refused `seq`.
    Error m;
    if (r.OptionalUInt("id", m.id)) {
      env.id = m.id;
      internal::ReadErrorFields(r, m);
    }
    return Finish<RouterToVideoServerDecodeResult>(r, env, std::move(m));
  }
  return UnknownType(env);
}

// ---- encoding ----

namespace {

// Fields in the order of the spec's tables (PROTOCOL.md, section 14), after `type`.
struct VideoServerEncoder {
  json::object& o;
  void operator()(const Register& m) {
    o.insert({{"token", m.token},
              {"id", m.id},
              {"url", m.url},
              {"region", m.region},
              {"capacity", m.capacity}});
  }
  void operator()(const Stats& m) {
    o.insert({{"seq", m.seq},
              {"peers", m.peers},
              {"media_peers", m.media_peers},
              {"packets_in", m.packets_in},
              {"packets_out", m.packets_out},
              {"bytes_in", m.bytes_in},
              {"bytes_out", m.bytes_out},
              {"cpu", m.cpu}});
    if (m.streams_in) o.insert({{"streams_in", *m.streams_in}});
    if (m.streams_out) o.insert({{"streams_out", *m.streams_out}});
  }
};

struct RouterToVideoServerEncoder {
  json::object& o;
  void operator()(const Registered& m) {
    o.insert({{"id", m.id},
              {"replica", m.replica},
              {"report_interval_ms", m.report_interval_ms},
              {"state", m.state}});
  }
  void operator()(const StateChange& m) { o.insert({{"state", m.state}, {"reason", m.reason}}); }
  void operator()(const Error& m) {
    internal::PutId(o, m.id);
    internal::PutErrorFields(o, m);
  }
};

}  // namespace

std::string Encode(const VideoServerMessage& message) {
  json::object o;
  o["type"] = kVideoServerTypeNames[message.index()];
  std::visit(VideoServerEncoder{o}, message);
  return json::serialize(o);
}

std::string Encode(const RouterToVideoServerMessage& message) {
  json::object o;
  o["type"] = kRouterToVideoServerTypeNames[message.index()];
  std::visit(RouterToVideoServerEncoder{o}, message);
  return json::serialize(o);
}

}  // namespace vrouter::proto
