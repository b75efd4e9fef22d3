// RFC 6455 on the server side, without I/O: parsing the frames clients send (masked, maybe
// fragmented) and encoding the frames the router sends (unmasked, never fragmented), plus the
// opening handshake's accept key. ws_session.cc feeds WsFrameReader the bytes as they arrive; the
// benchmarks' client (bench/common/ws_client.cc) reads the router's frames with it too.
//
// Why not Beast's websocket::stream: it keeps ~4 KB per connection (its 1.5 KiB read buffer and
// the pending read operation) for as long as the connection lives, and every message costs a
// composed operation and a posted completion. Here a connection holds nothing between messages;
// the session reads into a buffer per thread and the reader copies only a frame the read cut.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "router/edge/utf8.h"

namespace vrouter::edge {

enum class WsOpcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// A frame that breaks the protocol: the close code to answer with (1002 protocol error, 1007
// invalid UTF-8, 1009 too big) and why, for logs and the close frame's reason.
struct WsReadError {
  std::uint16_t close_code = 0;
  std::string_view reason;  // a literal
};

// Close codes of RFC 6455 section 7.4 (and the IANA registry) as they may appear on the wire.
namespace ws_close {
inline constexpr std::uint16_t kNoStatus = 1005;  // a close frame without a code; never sent
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kInvalidPayload = 1007;
inline constexpr std::uint16_t kMessageTooBig = 1009;
}  // namespace ws_close

// True for a code a peer may send: 1000-1003, 1007-1014, 3000-4999.
bool IsValidCloseCode(std::uint16_t code);

// Receives what WsFrameReader parses, in order. Payloads point into the reader's input or its
// own buffer, valid until the callback returns.
class WsFrameSink {
 public:
  virtual ~WsFrameSink() = default;
  // A whole data message, reassembled if it came in fragments. Text is valid UTF-8.
  virtual void OnMessage(WsOpcode kind, std::string_view payload) = 0;
  virtual void OnPing(std::string_view payload) = 0;
  virtual void OnPong(std::string_view payload) = 0;
  // The peer's close frame (kNoStatus when it carried no code). Nothing after it is parsed.
  virtual void OnClose(std::uint16_t code, std::string_view reason) = 0;
};

// Who sent the frames a reader parses: a client's must be masked, a server's must not be.
enum class WsFramesFrom : std::uint8_t { kClient, kServer };

class WsFrameReader {
 public:
  // Data messages above `max_message_bytes` are refused (1009) from their frame header, before
  // their payload is read. The router reads clients' frames; the benchmarks' clients read the
  // router's.
  explicit WsFrameReader(std::size_t max_message_bytes, WsFramesFrom from = WsFramesFrom::kClient)
      : max_message_bytes_(max_message_bytes), from_(from) {}

  // Parses `data` and unmasks it in place (client frames), calling `sink` for each whole message
  // and control frame. The bytes of a frame the input cut are kept for the next call. Returns the
  // first protocol error; after an error or the peer's close frame, input is ignored. A fragmented
  // text message fails (1007) at the first fragment after which it cannot be valid UTF-8, not
  // when its last fragment arrives.
  std::optional<WsReadError> Consume(char* data, std::size_t size, WsFrameSink& sink);

  // Changes the limit for the frames still to come: the router keeps it small until the peer has
  // authenticated.
  void set_max_message_bytes(std::size_t max_message_bytes) {
    max_message_bytes_ = max_message_bytes;
  }

  // The reader has stopped: a protocol error, or the peer's close frame.
  bool done() const { return done_; }
  // Bytes held between calls: an unfinished frame, the fragments of an unfinished message.
  std::size_t buffered_bytes() const { return partial_.size() + message_.size(); }

 private:
  struct Header;
  std::optional<WsReadError> CheckHeader(const Header& header) const;
  std::optional<WsReadError> HandleFrame(const Header& header, char* frame, WsFrameSink& sink);
  std::optional<WsReadError> Fail(WsReadError error);

  std::size_t max_message_bytes_;
  WsFramesFrom from_;
  std::string partial_;  // a frame cut by the end of the input, from its first byte
  std::string message_;  // the fragments so far of a fragmented message
  WsOpcode message_kind_ = WsOpcode::kText;
  Utf8Validator message_utf8_;  // of a fragmented text message, across its fragments
  bool in_message_ = false;     // a fragmented message has begun
  bool done_ = false;
};

// The longest server frame header: 2 bytes, plus 8 for a 64-bit length (never masked).
inline constexpr std::size_t kMaxServerFrameHeader = 10;

// Writes the header of an unfragmented, unmasked frame of `payload_size` bytes into `out` and
// returns its length (2, 4 or 10).
std::size_t EncodeServerFrameHeader(WsOpcode opcode, std::size_t payload_size,
                                    std::array<char, kMaxServerFrameHeader>& out);

// A close frame's payload: the code, then the reason cut to fit a control frame (125 bytes).
std::string EncodeClosePayload(std::uint16_t code, std::string_view reason);

// The opening handshake (RFC 6455 4.2): a client's Sec-WebSocket-Key is 16 random bytes in
// base64, and the server proves it read it with Sec-WebSocket-Accept.
bool IsValidWebSocketKey(std::string_view key);
std::string WebSocketAcceptKey(std::string_view key);

}  // namespace vrouter::edge
