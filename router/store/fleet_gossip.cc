#include "router/store/fleet_gossip.h"

#include <array>
#include <optional>

#include "proto/codec.h"
#include "proto/video_server_codec.h"

namespace vrouter::store {
namespace {

// A registration as shared between replicas: the register frame without its credential (the
// replica that accepted the connection checked it).
constexpr std::string_view kPeerVerified = "verified-by-peer-replica";

constexpr std::array<std::string_view, 6> kKinds = {"reg",    "stats", "gone",
                                                    "report", "drain", "undrain"};

std::string RegistrationJson(const fleet::VideoServer& s) {
  return proto::Encode(proto::VideoServerMessage(
      proto::Register{std::string(kPeerVerified), s.id, s.url, s.region, s.capacity}));
}

// The registration of `server`, strictly decoded; nullopt when it is not one.
std::optional<fleet::VideoServer> DecodeRegistration(std::string_view json,
                                                     std::string_view server) {
  auto decoded = proto::DecodeVideoServerMessage(json);
  const auto* m = std::get_if<proto::VideoServerMessage>(&decoded);
  const auto* r = m ? std::get_if<proto::Register>(m) : nullptr;
  if (r == nullptr || r->id != server) return std::nullopt;
  return fleet::VideoServer{r->id, r->url, r->region, r->capacity, /*monitored=*/true};
}

std::optional<proto::Stats> DecodeStats(std::string_view json) {
  auto decoded = proto::DecodeVideoServerMessage(json);
  const auto* m = std::get_if<proto::VideoServerMessage>(&decoded);
  const auto* s = m ? std::get_if<proto::Stats>(m) : nullptr;
  if (s == nullptr) return std::nullopt;
  return *s;
}

struct Encoder {
  std::string& out;
  void Kind(std::string_view kind, const std::string& server) {
    out.append("\t").append(kind).append("\t").append(server);
  }
  void operator()(const GossipRegistered& e) {
    Kind("reg", e.server.id);
    out.append("\t").append(RegistrationJson(e.server));
  }
  void operator()(const GossipStats& e) {
    Kind("stats", e.server.id);
    out.append("\t").append(RegistrationJson(e.server));
    out.append("\t").append(proto::Encode(proto::VideoServerMessage(e.stats)));
  }
  void operator()(const GossipGone& e) { Kind("gone", e.server); }
  void operator()(const GossipFailureReport& e) {
    Kind("report", e.server);
    out.append("\t").append(e.user);
    if (!e.address.empty()) out.append("\t").append(e.address);
  }
  void operator()(const GossipDrain& e) { Kind(e.drained ? "drain" : "undrain", e.server); }
};

}  // namespace

std::string_view GossipErrorName(GossipError error) {
  static constexpr std::string_view kNames[] = {"malformed", "unknown_kind", "missing_field",
                                                "bad_registration", "bad_stats"};
  return kNames[static_cast<std::size_t>(error)];
}

std::string EncodeGossip(const FleetGossip& gossip) {
  std::string out = gossip.replica;
  std::visit(Encoder{out}, gossip.event);
  return out;
}

base::Result<FleetGossip, GossipError> DecodeGossip(std::string_view text) {
  // replica, kind, server and up to two payload fields; anything after them is ignored.
  std::array<std::string_view, 5> f;
  std::size_t n = 0;
  while (n < f.size()) {
    const auto tab = text.find('\t');
    f[n++] = text.substr(0, tab);
    if (tab == std::string_view::npos) break;
    text.remove_prefix(tab + 1);
  }
  if (n < 3 || !proto::IsValidId(f[0]) || !proto::IsValidId(f[2])) return GossipError::kMalformed;
  FleetGossip out{std::string(f[0]), {}};
  const std::string_view kind = f[1], server = f[2];
  std::size_t k = 0;
  while (k < kKinds.size() && kKinds[k] != kind) ++k;
  static constexpr std::array<std::size_t, kKinds.size()> kFields = {4, 5, 3, 4, 3, 3};
  if (k == kKinds.size()) return GossipError::kUnknownKind;
  if (n < kFields[k]) return GossipError::kMissingField;
  switch (k) {
    case 0:
    case 1: {
      auto registration = DecodeRegistration(f[3], server);
      if (!registration) return GossipError::kBadRegistration;
      if (k == 0) {
        out.event = GossipRegistered{std::move(*registration)};
        break;
      }
      auto stats = DecodeStats(f[4]);
      if (!stats) return GossipError::kBadStats;
      out.event = GossipStats{std::move(*registration), *stats};
      break;
    }
    case 2:
      out.event = GossipGone{std::string(server)};
      break;
    case 3:
      // The address is optional (replicas that predate it send none); an address is an id-like
      // token (an IP address in text), and anything else is refused.
      if (!proto::IsValidId(f[3]) || (n > 4 && !f[4].empty() && !proto::IsValidId(f[4]))) {
        return GossipError::kMalformed;
      }
      out.event = GossipFailureReport{std::string(server), std::string(f[3]),
                                      n > 4 ? std::string(f[4]) : std::string()};
      break;
    default:
      out.event = GossipDrain{std::string(server), kind == "drain"};
      break;
  }
  return out;
}

}  // namespace vrouter::store
