#include "router/edge/ws_upgrade.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "proto/messages.h"
#include "proto/video_server_messages.h"
#include "router/edge/ws_frame.h"

namespace vrouter::edge {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

struct RefusalInfo {
  int status;
  std::string_view reason;  // the status line's reason phrase
  std::string_view body;
};

constexpr std::array<RefusalInfo, 10> kRefusals = {{
    {404, "Not Found",
     "unknown path; clients connect to /v1/client, video servers to /v1/video-server\n"},
    {426, "Upgrade Required", "this endpoint speaks WebSocket only\n"},
    {400, "Bad Request", "missing Host\n"},
    {426, "Upgrade Required", "Sec-WebSocket-Version 13 required\n"},
    {400, "Bad Request", "missing or malformed Sec-WebSocket-Key\n"},
    {400, "Bad Request", "subprotocol vrouter.v1 required\n"},
    {400, "Bad Request", "subprotocol vrouter.video.v1 required\n"},
    {403, "Forbidden", "origin not allowed\n"},
    {503, "Service Unavailable", "replica full or draining; retry later\n"},
    {429, "Too Many Requests", "too many connections from this address\n"},
}};
static_assert(kRefusals.size() ==
              static_cast<std::size_t>(UpgradeRefusal::kTooManyFromAddress) + 1);

const RefusalInfo& Info(UpgradeRefusal refusal) {
  return kRefusals[static_cast<std::size_t>(refusal)];
}

// The path's peer: /v1/client or /v1/video-server, a query string allowed; nothing otherwise.
std::optional<WsPeer> PeerOfTarget(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == proto::kClientPath) return WsPeer::kClient;
  if (path == proto::kVideoServerPath) return WsPeer::kVideoServer;
  return std::nullopt;
}

}  // namespace

bool HasToken(std::string_view list, std::string_view token, bool case_insensitive) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = Trim(list.substr(0, comma));
    if (case_insensitive ? EqualsIgnoringCase(item, token) : item == token) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

UpgradeCheck CheckUpgrade(const UpgradeRequest& request, const UpgradeAdmission& admission) {
  const std::optional<WsPeer> peer = PeerOfTarget(request.target);
  if (!peer) return UpgradeRefusal::kUnknownPath;
  if (request.http_version < 11 || request.method != "GET" ||
      !HasToken(request.connection, "upgrade", true) ||
      !HasToken(request.upgrade, "websocket", true)) {
    return UpgradeRefusal::kNotWebSocket;
  }
  // RFC 6455 4.2.1: a Host, version 13 only (426 names it), and a well-formed key.
  if (request.host.empty()) return UpgradeRefusal::kMissingHost;
  if (request.version != "13") return UpgradeRefusal::kUnsupportedVersion;
  if (!IsValidWebSocketKey(request.key)) return UpgradeRefusal::kBadKey;
  const bool client = *peer == WsPeer::kClient;
  const std::string_view wanted = client ? proto::kSubprotocol : proto::kVideoSubprotocol;
  // RFC 6455 4.1: the header, when sent, lists at least one protocol; an empty one lists none.
  const bool offered = request.subprotocols.has_value();
  if (offered && !HasToken(*request.subprotocols, wanted, false)) {
    return client ? UpgradeRefusal::kNoClientSubprotocol : UpgradeRefusal::kNoVideoSubprotocol;
  }
  // On both paths: a video server is anyone until it registers.
  if (!request.origin.empty() && !admission.allowed_origins.empty() &&
      std::find(admission.allowed_origins.begin(), admission.allowed_origins.end(),
                request.origin) == admission.allowed_origins.end()) {
    // A page on another site trying to use this user's browser (cross-site WebSocket
    // hijacking); non-browser clients send no Origin.
    return UpgradeRefusal::kOriginNotAllowed;
  }
  if (admission.full_or_draining) return UpgradeRefusal::kFullOrDraining;
  if (admission.take_address_slot && !admission.take_address_slot()) {
    return UpgradeRefusal::kTooManyFromAddress;
  }
  return UpgradeAccepted{*peer, WebSocketAcceptKey(request.key),
                         offered ? wanted : std::string_view()};
}

int HttpStatus(UpgradeRefusal refusal) { return Info(refusal).status; }

std::string_view RefusalBody(UpgradeRefusal refusal) { return Info(refusal).body; }

bool IsRetryLater(UpgradeRefusal refusal) {
  return refusal == UpgradeRefusal::kFullOrDraining ||
         refusal == UpgradeRefusal::kTooManyFromAddress;
}

std::string EncodeAccepted(const UpgradeAccepted& accepted) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Server: vrouter\r\n"
      "Sec-WebSocket-Accept: ";
  out.append(accepted.accept_key);
  if (!accepted.subprotocol.empty()) {
    out.append("\r\nSec-WebSocket-Protocol: ").append(accepted.subprotocol);
  }
  out.append("\r\n\r\n");
  return out;
}

std::string EncodeRefusal(UpgradeRefusal refusal, int retry_after_seconds) {
  const RefusalInfo& info = Info(refusal);
  const std::string_view body = info.body;
  std::string out = "HTTP/1.1 " + std::to_string(info.status) + " " + std::string(info.reason) +
                    "\r\nServer: vrouter\r\nContent-Type: text/plain\r\n";
  if (IsRetryLater(refusal)) out += "Retry-After: " + std::to_string(retry_after_seconds) + "\r\n";
  if (info.status == 426) out += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
  out += "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out.append(body);
  return out;
}

}  // namespace vrouter::edge
