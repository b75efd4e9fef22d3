// libFuzzer target: the WebSocket frames a client sends (edge::WsFrameReader). Any peer that
// finished the upgrade can send any bytes, and TCP cuts them anywhere, so the reader must give a
// verdict without crashing and the same verdict however the bytes arrive. Invariants checked on
// every input:
//
//  * the events (messages, pings, pongs, close) and the error are the same when the input comes
//    whole, cut in two at a point taken from the input, and one byte at a time;
//  * a message is at most the limit, and a text message or close reason is valid UTF-8;
//  * an error's close code is 1002, 1007 or 1009, and nothing is reported after an error or a
//    close; the reader holds no more than a message and a frame;
//  * UTF-8 checked in two pieces (how fragments are checked) gets the whole input's verdict, and
//    a failure in the first piece sticks.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target ws_frame_fuzz
//   build/fuzz/tests/ws_frame_fuzz -max_total_time=600 tests/fuzz/corpus/ws_frame
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "router/edge/utf8.h"
#include "router/edge/ws_frame.h"

namespace {

using vrouter::edge::WsFrameReader;
using vrouter::edge::WsFrameSink;
using vrouter::edge::WsOpcode;

constexpr std::size_t kMax = 4096;  // small, so that the fuzzer reaches the limit

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Recorder : WsFrameSink {
  std::vector<std::string> events;
  bool closed = false;
  void OnMessage(WsOpcode kind, std::string_view payload) override {
    Check(!closed && payload.size() <= kMax);
    if (kind == WsOpcode::kText) Check(vrouter::edge::IsValidUtf8(payload));
    Check(kind == WsOpcode::kText || kind == WsOpcode::kBinary);
    events.push_back(std::string(1, static_cast<char>(kind)) + std::string(payload));
  }
  void OnPing(std::string_view payload) override {
    Check(!closed && payload.size() <= 125);
    events.push_back("i" + std::string(payload));
  }
  void OnPong(std::string_view payload) override {
    Check(!closed && payload.size() <= 125);
    events.push_back("o" + std::string(payload));
  }
  void OnClose(std::uint16_t code, std::string_view reason) override {
    Check(!closed && vrouter::edge::IsValidUtf8(reason));
    closed = true;
    events.push_back("c" + std::to_string(code) + std::string(reason));
  }
};

struct Outcome {
  std::vector<std::string> events;
  std::uint16_t error = 0;
  bool operator==(const Outcome&) const = default;
};

// Feeds `input` in the pieces `cuts` marks (positions, ascending).
Outcome Run(std::string_view input, const std::vector<std::size_t>& cuts) {
  std::string bytes(input);  // unmasked in place
  WsFrameReader reader(kMax);
  Recorder sink;
  Outcome out;
  std::size_t from = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? cuts[i] : bytes.size();
    const auto error = reader.Consume(bytes.data() + from, to - from, sink);
    Check(reader.buffered_bytes() <= 2 * kMax + 14);
    if (error) {
      Check(out.error == 0);
      Check(error->close_code == 1002 || error->close_code == 1007 || error->close_code == 1009);
      Check(!error->reason.empty() && reader.done());
      out.error = error->close_code;
    }
    from = to;
  }
  out.events = std::move(sink.events);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const Outcome whole = Run(input, {});
  if (size > 0) {
    const std::size_t cut = data[0] % (size + 1);
    Check(Run(input, {cut}) == whole);
    vrouter::edge::Utf8Validator pieces;
    const bool head = pieces.Feed(input.substr(0, cut));
    const bool tail = pieces.Feed(input.substr(cut));
    const bool valid = vrouter::edge::IsValidUtf8(input);
    Check((tail && pieces.Complete()) == valid && (head || (!tail && !valid)));
  }
  if (size <= 2048) {
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < size; ++i) every.push_back(i);
    Check(Run(input, every) == whole);
  }
  return 0;
}
