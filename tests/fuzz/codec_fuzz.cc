// libFuzzer target: every decoder of bytes from the network in proto/ (both directions of
// vrouter.v1, proto/codec.h, and of vrouter.video.v1, proto/video_server_codec.h). Clients, video
// servers and anything that reaches the ports send arbitrary frames, so a decoder must refuse
// them cleanly, never crash or misparse. Invariants checked on every input:
//
//  * a DecodeError has a non-empty message, a code a decoder may produce (invalid_json,
//    invalid_message or unknown_type), and an id, when set, within 2^53-1;
//  * a decoded message m re-encodes to text that decodes again, to the same type, and
//    Encode(decode(Encode(m))) == Encode(m) (for `stats`: equal fields, `cpu` within 4 ulps, as
//    Boost.JSON 1.81 parses doubles up to 2 ulps off; see SameStats);
//  * router -> client frames, written by hand (no DOM) for speed, are exactly what
//    boost::json::serialize prints for the same JSON (codec.cc promises it);
//  * DecodeClientMessage (the in-place reader of proto/client_view.h, else the DOM) returns
//    exactly what the DOM decoder DecodeClientMessageDom returns: the same message, or the same
//    error code, message and id; and whenever the reader answers, the DOM decoder agrees;
//  * an `error` frame decodes the same on both protocols and is written identically by both
//    encoders (video_server_codec.h promises it).
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target codec_fuzz
//   build/fuzz/tests/codec_fuzz -max_len=65536 -max_total_time=600 tests/fuzz/corpus/codec
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "proto/client_view.h"
#include "proto/codec.h"
#include "proto/error_code.h"
#include "proto/messages.h"
#include "proto/video_server_codec.h"
#include "proto/video_server_messages.h"

namespace {

using vrouter::proto::DecodeError;
using vrouter::proto::ErrorCode;

// Frames above limits.max_message_bytes (at most 16 MiB, 128 KiB by default) never reach a
// decoder; 256 KiB covers the default with room and keeps each run fast.
constexpr std::size_t kMaxInputBytes = 256 * 1024;

[[noreturn]] void Fail(const char* decoder, const char* what, std::string_view detail) {
  std::fprintf(stderr, "codec_fuzz: %s: %s\n  %.*s\n", decoder, what,
               static_cast<int>(std::min<std::size_t>(detail.size(), 2000)), detail.data());
  std::abort();
}

void CheckError(const char* decoder, const DecodeError& e) {
  if (e.message.empty()) Fail(decoder, "DecodeError with an empty message", "");
  if (static_cast<int>(e.code) >= vrouter::proto::kErrorCodeCount) {
    Fail(decoder, "DecodeError with an unknown code", e.message);
  }
  if (e.code != ErrorCode::kInvalidJson && e.code != ErrorCode::kInvalidMessage &&
      e.code != ErrorCode::kUnknownType) {
    Fail(decoder, "DecodeError with a code no decoder should produce", e.message);
  }
  if (e.id && *e.id > vrouter::proto::kMaxSafeInteger) {
    Fail(decoder, "DecodeError id above 2^53-1", e.message);
  }
}

// Boost.JSON 1.81 does not round numbers correctly when it parses them: about a quarter of the
// doubles printed with 17 significant digits read back 1 or 2 ulps off (1.83 added
// parse_options::numbers = precise). So `stats.cpu` may move by a few ulps per round trip, and
// Encode then prints a different shortest form; every other field must be exact.
bool SameStats(const vrouter::proto::Stats& a, const vrouter::proto::Stats& b) {
  constexpr int kMaxUlps = 4;
  double lo = a.cpu, hi = a.cpu;
  for (int i = 0; i < kMaxUlps; ++i) {
    lo = std::nextafter(lo, -1.0);
    hi = std::nextafter(hi, 2.0);
  }
  return a.seq == b.seq && a.peers == b.peers && a.media_peers == b.media_peers &&
         a.packets_in == b.packets_in && a.packets_out == b.packets_out &&
         a.bytes_in == b.bytes_in && a.bytes_out == b.bytes_out && b.cpu >= lo && b.cpu <= hi;
}

// `decode` is one of the four decoders; `message` is what it returned for some input.
template <class Message, class Decode>
void CheckRoundTrip(const char* decoder, const Message& message, Decode decode) {
  using vrouter::proto::Encode;
  const std::string once = Encode(message);
  auto again = decode(once);
  if (const auto* e = std::get_if<DecodeError>(&again)) {
    Fail(decoder, "the encoding of a decoded message does not decode", once + "\n  " + e->message);
  }
  const Message& m2 = std::get<0>(again);
  if (m2.index() != message.index()) Fail(decoder, "re-decoded to another message type", once);
  const std::string twice = Encode(m2);
  if constexpr (std::is_same_v<Message, vrouter::proto::VideoServerMessage>) {
    const auto* a = std::get_if<vrouter::proto::Stats>(&message);
    const auto* b = std::get_if<vrouter::proto::Stats>(&m2);
    if (a != nullptr && b != nullptr) {
      if (!SameStats(*a, *b)) Fail(decoder, "stats changed by a round trip", once + "\n  " + twice);
      return;
    }
  }
  if (twice != once) Fail(decoder, "Encode(decode(Encode(m))) != Encode(m)", once + "\n  " + twice);
}

// The hand-written writer of router -> client frames must print what Boost.JSON prints.
void CheckCanonical(const std::string& encoded) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(encoded, ec);
  if (ec) Fail("Encode(ServerMessage)", "wrote invalid JSON", encoded);
  const std::string canonical = boost::json::serialize(v);
  if (canonical != encoded) {
    Fail("Encode(ServerMessage)", "differs from boost::json::serialize",
         encoded + "\n  " + canonical);
  }
}

// What a client decode result says, as one string: equal strings, equal results.
std::string Describe(const vrouter::proto::ClientDecodeResult& r) {
  if (const auto* e = std::get_if<DecodeError>(&r)) {
    return "error " + std::string(vrouter::proto::ErrorCodeName(e->code)) + " '" + e->message +
           "' id " + (e->id ? std::to_string(*e->id) : "none");
  }
  const auto& m = std::get<vrouter::proto::ClientMessage>(r);
  return "message " + std::to_string(m.index()) + " " + vrouter::proto::Encode(m);
}

// The in-place reader never answers differently from the DOM decoder.
void CheckAgainstDom(std::string_view text, const vrouter::proto::ClientDecodeResult& decoded) {
  namespace proto = vrouter::proto;
  const std::string dom = Describe(proto::DecodeClientMessageDom(text));
  const std::string fast = Describe(decoded);
  if (fast != dom) Fail("DecodeClientMessage", "differs from the DOM decoder", fast + "\n  " + dom);
  proto::ClientView view;
  if (proto::ReadClientView(text, view)) {
    const std::string read = Describe(proto::ToMessage(view));
    if (read != dom) Fail("ReadClientView", "differs from the DOM decoder", read + "\n  " + dom);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInputBytes) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace proto = vrouter::proto;

  const auto client = proto::DecodeClientMessage(text);
  CheckAgainstDom(text, client);
  if (const auto* e = std::get_if<DecodeError>(&client)) {
    CheckError("DecodeClientMessage", *e);
  } else {
    CheckRoundTrip("DecodeClientMessage", std::get<0>(client), proto::DecodeClientMessage);
  }

  const auto server = proto::DecodeServerMessage(text);
  if (const auto* e = std::get_if<DecodeError>(&server)) {
    CheckError("DecodeServerMessage", *e);
  } else {
    CheckRoundTrip("DecodeServerMessage", std::get<0>(server), proto::DecodeServerMessage);
    CheckCanonical(proto::Encode(std::get<0>(server)));
  }

  const auto video = proto::DecodeVideoServerMessage(text);
  if (const auto* e = std::get_if<DecodeError>(&video)) {
    CheckError("DecodeVideoServerMessage", *e);
  } else {
    CheckRoundTrip("DecodeVideoServerMessage", std::get<0>(video), proto::DecodeVideoServerMessage);
  }

  const auto to_video = proto::DecodeRouterToVideoServerMessage(text);
  if (const auto* e = std::get_if<DecodeError>(&to_video)) {
    CheckError("DecodeRouterToVideoServerMessage", *e);
  } else {
    CheckRoundTrip("DecodeRouterToVideoServerMessage", std::get<0>(to_video),
                   proto::DecodeRouterToVideoServerMessage);
  }

  // `error` is one message shared by both protocols.
  const auto* client_error = std::get_if<proto::ServerMessage>(&server);
  const auto* video_error = std::get_if<proto::RouterToVideoServerMessage>(&to_video);
  const proto::Error* a = client_error ? std::get_if<proto::Error>(client_error) : nullptr;
  const proto::Error* b = video_error ? std::get_if<proto::Error>(video_error) : nullptr;
  if ((a == nullptr) != (b == nullptr)) {
    Fail("error", "decoded by one protocol's decoder but not the other's", text);
  }
  if (a != nullptr) {
    const std::string by_client = proto::Encode(proto::ServerMessage(*a));
    const std::string by_video = proto::Encode(proto::RouterToVideoServerMessage(*b));
    if (by_client != by_video) {
      Fail("error", "encoded differently by the two protocols", by_client + "\n  " + by_video);
    }
  }
  return 0;
}
