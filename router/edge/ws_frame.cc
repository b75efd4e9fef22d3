#include "router/edge/ws_frame.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "router/edge/utf8.h"

namespace vrouter::edge {

namespace {

constexpr std::size_t kMaxControlPayload = 125;

bool IsControl(WsOpcode opcode) { return (static_cast<std::uint8_t>(opcode) & 0x8) != 0; }

bool IsKnownOpcode(std::uint8_t opcode) {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

// XORs the payload with the client's masking key, eight bytes at a time.
void Unmask(char* data, std::size_t size, const std::uint8_t (&key)[4]) {
  std::uint32_t key32;
  std::memcpy(&key32, key, 4);
  const std::uint64_t key64 = (std::uint64_t{key32} << 32) | key32;
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, data + i, 8);
    word ^= key64;
    std::memcpy(data + i, &word, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[i % 4]);
}

}  // namespace

bool IsValidCloseCode(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

// A frame's header once enough of it is in: `size` bytes of header, then `payload` bytes.
struct WsFrameReader::Header {
  bool complete = false;  // false: `needed` bytes must be in before it can be read
  std::size_t needed = 0;
  bool fin = false;
  std::uint8_t rsv = 0;
  std::uint8_t opcode = 0;
  bool masked = false;
  std::uint64_t payload = 0;
  std::size_t size = 0;
  std::uint8_t mask[4] = {0, 0, 0, 0};
  bool minimal_length = true;  // the length used the shortest encoding (RFC 6455 5.2)

  static Header Parse(const std::uint8_t* p, std::size_t available) {
    Header h;
    if (available < 2) {
      h.needed = 2;
      return h;
    }
    h.fin = (p[0] & 0x80) != 0;
    h.rsv = p[0] & 0x70;
    h.opcode = p[0] & 0x0F;
    h.masked = (p[1] & 0x80) != 0;
    const std::uint8_t length7 = p[1] & 0x7F;
    const std::size_t extended = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
    h.size = 2 + extended + (h.masked ? 4 : 0);
    if (available < h.size) {
      h.needed = h.size;
      return h;
    }
    if (extended == 0) {
      h.payload = length7;
    } else {
      for (std::size_t i = 0; i < extended; ++i) h.payload = (h.payload << 8) | p[2 + i];
      h.minimal_length = extended == 2 ? h.payload >= 126 : h.payload > 0xFFFF;
    }
    if (h.masked) std::memcpy(h.mask, p + 2 + extended, 4);
    h.complete = true;
    return h;
  }
};

std::optional<WsReadError> WsFrameReader::Fail(WsReadError error) {
  done_ = true;
  partial_ = {};
  message_ = {};
  return error;
}

std::optional<WsReadError> WsFrameReader::CheckHeader(const Header& h) const {
  constexpr std::uint16_t kProtocol = ws_close::kProtocolError;
  if (h.rsv != 0) return WsReadError{kProtocol, "reserved bits set (no extension was agreed)"};
  if (!IsKnownOpcode(h.opcode)) return WsReadError{kProtocol, "unknown opcode"};
  if (from_ == WsFramesFrom::kClient && !h.masked) {
    return WsReadError{kProtocol, "client frames must be masked"};
  }
  if (from_ == WsFramesFrom::kServer && h.masked) {
    return WsReadError{kProtocol, "server frames must not be masked"};
  }
  if ((h.payload >> 63) != 0 || !h.minimal_length) {
    return WsReadError{kProtocol, "frame length not in its shortest form"};
  }
  const auto opcode = static_cast<WsOpcode>(h.opcode);
  if (IsControl(opcode)) {
    if (!h.fin) return WsReadError{kProtocol, "fragmented control frame"};
    if (h.payload > kMaxControlPayload) return WsReadError{kProtocol, "control frame too long"};
    if (opcode == WsOpcode::kClose && h.payload == 1) {
      return WsReadError{kProtocol, "close frame with a one-byte payload"};
    }
    return std::nullopt;
  }
  if (opcode == WsOpcode::kContinuation && !in_message_) {
    return WsReadError{kProtocol, "continuation frame outside a fragmented message"};
  }
  if (opcode != WsOpcode::kContinuation && in_message_) {
    return WsReadError{kProtocol, "new message inside a fragmented one"};
  }
  const std::uint64_t so_far = opcode == WsOpcode::kContinuation ? message_.size() : 0;
  if (h.payload > max_message_bytes_ - so_far) {
    return WsReadError{ws_close::kMessageTooBig, "message too big"};
  }
  return std::nullopt;
}

std::optional<WsReadError> WsFrameReader::HandleFrame(const Header& h, char* frame,
                                                      WsFrameSink& sink) {
  char* payload = frame + h.size;
  const auto size = static_cast<std::size_t>(h.payload);
  if (h.masked) Unmask(payload, size, h.mask);
  const std::string_view data(payload, size);
  switch (static_cast<WsOpcode>(h.opcode)) {
    case WsOpcode::kPing:
      sink.OnPing(data);
      return std::nullopt;
    case WsOpcode::kPong:
      sink.OnPong(data);
      return std::nullopt;
    case WsOpcode::kClose: {
      if (size == 0) {
        done_ = true;
        sink.OnClose(ws_close::kNoStatus, {});
        return std::nullopt;
      }
      const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                   static_cast<std::uint8_t>(payload[1]));
      if (!IsValidCloseCode(code)) return Fail({ws_close::kProtocolError, "invalid close code"});
      const std::string_view reason = data.substr(2);
      if (!IsValidUtf8(reason)) return Fail({ws_close::kInvalidPayload, "close reason not UTF-8"});
      done_ = true;
      sink.OnClose(code, reason);
      return std::nullopt;
    }
    case WsOpcode::kText:
    case WsOpcode::kBinary:
      if (!h.fin) {
        in_message_ = true;
        message_kind_ = static_cast<WsOpcode>(h.opcode);
        message_utf8_ = {};
        if (message_kind_ == WsOpcode::kText && !message_utf8_.Feed(data)) {
          return Fail({ws_close::kInvalidPayload, "text message not UTF-8"});
        }
        message_.assign(data);
        return std::nullopt;
      }
      if (static_cast<WsOpcode>(h.opcode) == WsOpcode::kText && !IsValidUtf8(data)) {
        return Fail({ws_close::kInvalidPayload, "text message not UTF-8"});
      }
      sink.OnMessage(static_cast<WsOpcode>(h.opcode), data);
      return std::nullopt;
    case WsOpcode::kContinuation: {
      // Text is checked fragment by fragment: the first that cannot continue valid UTF-8 fails
      // the message at once, and the last must end on a character boundary.
      if (message_kind_ == WsOpcode::kText &&
          (!message_utf8_.Feed(data) || (h.fin && !message_utf8_.Complete()))) {
        return Fail({ws_close::kInvalidPayload, "text message not UTF-8"});
      }
      message_.append(data);
      if (!h.fin) return std::nullopt;
      in_message_ = false;
      const std::string whole = std::move(message_);
      message_ = {};
      sink.OnMessage(message_kind_, whole);
      return std::nullopt;
    }
  }
  return std::nullopt;  // unreachable: CheckHeader refused other opcodes
}

std::optional<WsReadError> WsFrameReader::Consume(char* data, std::size_t size, WsFrameSink& sink) {
  std::size_t pos = 0;
  while (!done_) {
    if (!partial_.empty()) {
      // Finish the frame the previous input cut, copying only the bytes it still lacks.
      auto* held = reinterpret_cast<const std::uint8_t*>(partial_.data());
      const Header h = Header::Parse(held, partial_.size());
      if (h.complete) {
        if (auto error = CheckHeader(h)) return Fail(*error);
      }
      const std::size_t total =
          h.complete ? h.size + static_cast<std::size_t>(h.payload) : h.needed;
      if (partial_.size() < total) {
        const std::size_t take = std::min(total - partial_.size(), size - pos);
        if (take == 0) return std::nullopt;
        partial_.append(data + pos, take);
        pos += take;
        continue;  // re-read the header: it may have been the part missing
      }
      std::string frame = std::move(partial_);
      partial_ = {};
      if (auto error = HandleFrame(h, frame.data(), sink)) return error;
      continue;
    }
    if (pos == size) return std::nullopt;
    const auto* at = reinterpret_cast<const std::uint8_t*>(data + pos);
    const Header h = Header::Parse(at, size - pos);
    if (h.complete) {
      if (auto error = CheckHeader(h)) return Fail(*error);
      const std::size_t total = h.size + static_cast<std::size_t>(h.payload);
      if (total <= size - pos) {
        if (auto error = HandleFrame(h, data + pos, sink)) return error;
        pos += total;
        continue;
      }
    }
    partial_.assign(data + pos, size - pos);
    pos = size;
  }
  return std::nullopt;
}

std::size_t EncodeServerFrameHeader(WsOpcode opcode, std::size_t payload_size,
                                    std::array<char, kMaxServerFrameHeader>& out) {
  out[0] = static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));
  if (payload_size < 126) {
    out[1] = static_cast<char>(payload_size);
    return 2;
  }
  if (payload_size <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<char>(payload_size >> 8);
    out[3] = static_cast<char>(payload_size & 0xFF);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) {
    out[2 + i] =
        static_cast<char>((static_cast<std::uint64_t>(payload_size) >> (56 - 8 * i)) & 0xFF);
  }
  return 10;
}

std::string EncodeClosePayload(std::uint16_t code, std::string_view reason) {
  const std::string_view fits = TruncateUtf8(reason, kMaxControlPayload - 2);
  std::string payload;
  payload.reserve(2 + fits.size());
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(fits);
  return payload;
}

bool IsValidWebSocketKey(std::string_view key) {
  // 16 bytes in base64: 22 characters of the alphabet, then "==".
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  });
}

std::string WebSocketAcceptKey(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(key);
  input.append(kGuid);
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> encoded{};
  const int n = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest.size()));
  return {reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n)};
}

}  // namespace vrouter::edge
