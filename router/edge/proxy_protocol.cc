#include "router/edge/proxy_protocol.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

namespace vrouter::edge {
namespace {

// "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", the longest v1 line.
constexpr std::size_t kV1MaxBytes = 107;
constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV2FixedBytes = 16;  // signature, version/command, family, length
constexpr std::size_t kV2Inet4Bytes = 2 * 4 + 2 * 2;
constexpr std::size_t kV2Inet6Bytes = 2 * 16 + 2 * 2;

ProxyParseResult NeedMore() { return {ProxyParseStatus::kNeedMore, {}, {}}; }
ProxyParseResult Error(std::string message) {
  return {ProxyParseStatus::kError, {}, std::move(message)};
}
ProxyParseResult NotProxy() { return Error("not a PROXY protocol header"); }

std::string Hex(std::uint8_t b) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  return std::string("0x") + kDigits[b >> 4] + kDigits[b & 0xf];
}

// ---- version 1 ----

// A port: "0", or 1..5 digits without a leading zero, at most 65535. With `partial`, whether the
// text can still grow into one (empty included).
bool IsPort(std::string_view s, bool partial, std::uint16_t* out) {
  if (s.empty()) return partial;
  if (s.size() > 5 || (s[0] == '0' && s.size() > 1)) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  if (out != nullptr) *out = static_cast<std::uint16_t>(v);
  return true;
}

std::optional<IpAddress> ParseFamily(std::string_view s, bool v6) {
  return v6 ? IpAddress::ParseV6(s) : IpAddress::ParseV4(s);
}

// Whether some completion of `s` is an address of the family. The shortest completions cover
// every case: finish an IPv4 part or the dotted quad ("1." + "0.0.0"), finish a group or close
// with "::" ("1:2" + "::"), fill an empty group ("1:" + "0", ":" + ":", "1:2:3:4:5:6:" + "0::").
// Whatever valid completion exists, one of these is valid too, so this is exact.
bool IsAddressPrefix(std::string_view s, bool v6) {
  static constexpr std::array<std::string_view, 8> kV4 = {"",     "0",     ".0",     "0.0",
                                                          ".0.0", "0.0.0", ".0.0.0", "0.0.0.0"};
  static constexpr std::array<std::string_view, 12> kV6 = {
      "", "0", ":", "::", "0::", ":0", ".0", "0.0", ".0.0", "0.0.0", ".0.0.0", "0.0.0.0"};
  const std::string_view allowed = v6 ? "0123456789abcdefABCDEF:." : "0123456789.";
  if (s.find_first_not_of(allowed) != std::string_view::npos) return false;
  std::string candidate;
  for (std::string_view suffix :
       v6 ? std::span<const std::string_view>(kV6) : std::span<const std::string_view>(kV4)) {
    candidate.assign(s);
    candidate += suffix;
    if (ParseFamily(candidate, v6)) return true;
  }
  return false;
}

// Checks the v1 line (without its CRLF) field by field. With `partial`, the line may stop
// anywhere: every field but the last must be complete and the last must be able to grow into a
// valid one. Without, the line must be a whole header, whose fields are stored in `out`.
std::string CheckV1Line(std::string_view line, bool partial, ProxyHeader& out) {
  constexpr std::string_view kProxy = "PROXY";
  std::vector<std::string_view> fields;
  for (std::size_t start = 0;;) {
    const std::size_t space = line.find(' ', start);
    fields.push_back(line.substr(start, space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
    // "PROXY UNKNOWN": the rest of the line is not ours to check.
    if (fields.size() == 2 && fields[1] == "UNKNOWN") {
      if (line.find('\n', start) != std::string_view::npos) return "PROXY v1: LF before CRLF";
      break;
    }
  }
  const auto last = [&](std::size_t i) { return partial && i + 1 == fields.size(); };

  if (last(0) ? !kProxy.starts_with(fields[0]) : fields[0] != kProxy) {
    return "not a PROXY protocol header";
  }
  if (fields.size() == 1) return partial ? "" : "PROXY v1: no protocol";

  const std::string_view protocol = fields[1];
  if (last(1)) {
    for (std::string_view p : {"TCP4", "TCP6", "UNKNOWN"}) {
      if (p.starts_with(protocol)) return "";
    }
  }
  if (protocol == "UNKNOWN") {
    out.local = true;
    return "";
  }
  if (protocol != "TCP4" && protocol != "TCP6") {
    return "PROXY v1: protocol must be TCP4, TCP6 or UNKNOWN";
  }
  const bool v6 = protocol == "TCP6";
  if (fields.size() > 6) return "PROXY v1: too many fields";
  if (!partial && fields.size() < 6) return "PROXY v1: missing fields";

  constexpr std::array<std::string_view, 6> kNames = {
      "", "", "source address", "destination address", "source port", "destination port"};
  for (std::size_t i = 2; i < fields.size(); ++i) {
    bool ok = false;
    if (i < 4) {
      if (last(i)) {
        ok = IsAddressPrefix(fields[i], v6);
      } else {
        auto& address = i == 2 ? out.source : out.destination;
        address = ParseFamily(fields[i], v6);
        ok = address.has_value();
      }
    } else {
      ok = IsPort(fields[i], last(i), i == 4 ? &out.source_port : &out.destination_port);
    }
    if (!ok) {
      return std::string("PROXY v1: bad ") + std::string(kNames[i]) + " for " +
             std::string(protocol);
    }
  }
  return "";
}

ProxyParseResult ParseV1(std::string_view in) {
  // The line ends at its first CR, which must be followed by LF; the CRLF included, it fits in
  // kV1MaxBytes, so the CR is at most at index kV1MaxBytes - 2.
  const std::size_t cr = in.substr(0, kV1MaxBytes - 1).find('\r');
  if (cr == std::string_view::npos && in.size() >= kV1MaxBytes - 1) {
    return Error("PROXY v1: header longer than 107 bytes");
  }
  const bool complete = cr != std::string_view::npos && cr + 1 < in.size();
  if (complete && in[cr + 1] != '\n') return Error("PROXY v1: CR not followed by LF");
  // Seeing the CR means the line itself is whole, even while the LF is still to come.
  const bool line_whole = cr != std::string_view::npos;
  ProxyParseResult r = NeedMore();
  std::string error = CheckV1Line(in.substr(0, cr), !line_whole, r.header);
  if (!error.empty()) return Error(std::move(error));
  if (!complete) return NeedMore();
  r.status = ProxyParseStatus::kOk;
  r.header.length = cr + 2;
  r.header.version = 1;
  return r;
}

// ---- version 2 ----

enum : std::uint8_t { kLocal = 0x0, kProxy = 0x1 };
enum : std::uint8_t {
  kUnspec = 0x00,
  kTcp4 = 0x11,
  kUdp4 = 0x12,
  kTcp6 = 0x21,
  kUdp6 = 0x22,
  kUnixStream = 0x31,
  kUnixDgram = 0x32,
};

ProxyParseResult ParseV2(std::span<const std::uint8_t> in) {
  const std::size_t seen = std::min(in.size(), kV2Signature.size());
  if (!std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(seen),
                  kV2Signature.begin())) {
    return NotProxy();
  }
  if (in.size() < 13) return NeedMore();
  const std::uint8_t version = in[12] >> 4;
  const std::uint8_t command = in[12] & 0xf;
  if (version != 2) return Error("PROXY v2: unsupported version " + std::to_string(version));
  if (command != kLocal && command != kProxy) {
    return Error("PROXY v2: unknown command " + std::to_string(command));
  }
  if (in.size() < 14) return NeedMore();
  const std::uint8_t family = in[13];
  // Each nibble must be a defined value even for LOCAL, whose family is otherwise ignored.
  if ((family >> 4) > 3 || (family & 0xf) > 2) {
    return Error("PROXY v2: invalid address family/protocol " + Hex(family));
  }
  std::size_t needs = 0;  // address bytes the family takes
  if (command == kProxy) {
    switch (family) {
      case kUnspec:
        break;
      case kTcp4:
        needs = kV2Inet4Bytes;
        break;
      case kTcp6:
        needs = kV2Inet6Bytes;
        break;
      case kUdp4:
      case kUdp6:
        return Error("PROXY v2: UDP is not supported");
      case kUnixStream:
      case kUnixDgram:
        return Error("PROXY v2: AF_UNIX is not supported");
      default:
        return Error("PROXY v2: invalid address family/protocol " + Hex(family));
    }
  }
  if (in.size() < kV2FixedBytes) return NeedMore();
  const std::size_t length = kV2FixedBytes + (std::size_t{in[14]} << 8 | in[15]);
  if (length > kMaxProxyHeaderBytes) {
    return Error("PROXY v2: header of " + std::to_string(length) + " bytes is over the limit of " +
                 std::to_string(kMaxProxyHeaderBytes));
  }
  if (length - kV2FixedBytes < needs) {
    return Error("PROXY v2: address block of " + std::to_string(length - kV2FixedBytes) +
                 " bytes, the family needs " + std::to_string(needs));
  }
  if (in.size() < length) return NeedMore();

  ProxyParseResult r{ProxyParseStatus::kOk, {}, {}};
  r.header.length = length;
  r.header.version = 2;
  const std::uint8_t* a = in.data() + kV2FixedBytes;
  auto port = [](const std::uint8_t* p) {
    return static_cast<std::uint16_t>(std::uint16_t{p[0]} << 8 | p[1]);
  };
  if (command == kLocal || family == kUnspec) {
    r.header.local = true;
  } else if (family == kTcp4) {
    r.header.source = IpAddress::FromV4Bytes(std::span<const std::uint8_t, 4>(a, 4));
    r.header.destination = IpAddress::FromV4Bytes(std::span<const std::uint8_t, 4>(a + 4, 4));
    r.header.source_port = port(a + 8);
    r.header.destination_port = port(a + 10);
  } else {
    r.header.source = IpAddress::FromV6Bytes(std::span<const std::uint8_t, 16>(a, 16));
    r.header.destination = IpAddress::FromV6Bytes(std::span<const std::uint8_t, 16>(a + 16, 16));
    r.header.source_port = port(a + 32);
    r.header.destination_port = port(a + 34);
  }
  return r;
}

}  // namespace

ProxyParseResult ParseProxyHeader(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return NeedMore();
  // The first byte tells the versions apart: 'P' for v1, CR for v2's signature. Anything else
  // (a TLS record, an HTTP method) is refused right away.
  if (bytes[0] == 'P') {
    return ParseV1(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  if (bytes[0] == kV2Signature[0]) return ParseV2(bytes);
  return NotProxy();
}

}  // namespace vrouter::edge
