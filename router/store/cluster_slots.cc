#include "router/store/cluster_slots.h"

#include <algorithm>
#include <charconv>

namespace vrouter::store::cluster {
namespace {

constexpr std::array<std::uint16_t, 256> MakeCrcTable() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<std::uint16_t, 256> kCrcTable = MakeCrcTable();

std::uint16_t Crc16(std::string_view bytes) {
  std::uint16_t crc = 0;
  for (const char c : bytes) {
    crc = static_cast<std::uint16_t>(
        (crc << 8) ^ kCrcTable[((crc >> 8) ^ static_cast<unsigned char>(c)) & 0xff]);
  }
  return crc;
}

std::optional<std::uint16_t> ParsePort(std::string_view text) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(port);
}

// "host:port", "[v6]:port" or ":port".
std::optional<Node> ParseEndpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  if (host.find_first_of(" \t\r\n[]") != std::string_view::npos) return std::nullopt;
  const auto port = ParsePort(text.substr(colon + 1));
  if (!port) return std::nullopt;
  return Node{std::string(host), *port};
}

}  // namespace

std::uint16_t KeySlot(std::string_view key) {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<std::uint16_t>(Crc16(key) % kSlots);
}

std::string ToString(const Node& node) {
  return (node.host.find(':') != std::string::npos ? "[" + node.host + "]" : node.host) + ":" +
         std::to_string(node.port);
}

std::optional<Redirect> ParseRedirect(std::string_view error) {
  Redirect r;
  if (error.starts_with("MOVED ")) {
    r.kind = RedirectKind::kMoved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    r.kind = RedirectKind::kAsk;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  const std::string_view slot_text = error.substr(0, space);
  const auto [end, ec] =
      std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || end != slot_text.data() + slot_text.size() || slot >= kSlots) {
    return std::nullopt;
  }
  r.slot = static_cast<std::uint16_t>(slot);
  auto to = ParseEndpoint(error.substr(space + 1));
  if (!to) return std::nullopt;
  r.to = std::move(*to);
  return r;
}

std::size_t SlotMap::unassigned() const {
  return static_cast<std::size_t>(std::count(owner.begin(), owner.end(), kUnassigned));
}

std::string_view SlotMapErrorName(SlotMapError error) {
  switch (error) {
    case SlotMapError::kNotAnArray:
      return "not_an_array";
    case SlotMapError::kBadRange:
      return "bad_range";
    case SlotMapError::kBadNode:
      return "bad_node";
    case SlotMapError::kOverlap:
      return "overlap";
  }
  return "unknown";
}

base::Result<SlotMap, SlotMapError> ParseClusterSlots(const RedisReply& reply,
                                                      const Node& answered) {
  using Type = RedisReply::Type;
  if (reply.type != Type::kArray) return SlotMapError::kNotAnArray;
  SlotMap map;
  map.owner.fill(SlotMap::kUnassigned);
  for (const RedisReply& range : reply.elements) {
    if (range.type != Type::kArray || range.elements.size() < 3) return SlotMapError::kBadRange;
    const RedisReply& start = range.elements[0];
    const RedisReply& end = range.elements[1];
    if (start.type != Type::kInteger || end.type != Type::kInteger || start.integer < 0 ||
        start.integer > end.integer || end.integer >= kSlots) {
      return SlotMapError::kBadRange;
    }
    const RedisReply& primary = range.elements[2];
    if (primary.type != Type::kArray || primary.elements.size() < 2 ||
        primary.elements[0].type != Type::kString || primary.elements[1].type != Type::kInteger ||
        primary.elements[1].integer <= 0 || primary.elements[1].integer > 65535) {
      return SlotMapError::kBadNode;
    }
    Node node{primary.elements[0].str, static_cast<std::uint16_t>(primary.elements[1].integer)};
    if (node.host.empty()) node.host = answered.host;
    auto it = std::find(map.primaries.begin(), map.primaries.end(), node);
    if (it == map.primaries.end()) {
      if (map.primaries.size() >= static_cast<std::size_t>(kSlots)) return SlotMapError::kBadNode;
      map.primaries.push_back(std::move(node));
      it = map.primaries.end() - 1;
    }
    const auto index = static_cast<std::int16_t>(it - map.primaries.begin());
    for (auto slot = start.integer; slot <= end.integer; ++slot) {
      std::int16_t& owner = map.owner[static_cast<std::size_t>(slot)];
      if (owner != SlotMap::kUnassigned) return SlotMapError::kOverlap;
      owner = index;
    }
  }
  return map;
}

}  // namespace vrouter::store::cluster
