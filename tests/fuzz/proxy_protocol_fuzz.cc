// libFuzzer target: what a client or a load balancer says about the client's address. The PROXY
// protocol header is the first thing read from a connection, before anything identifies the
// peer, so any byte string must get a verdict without crashing, and the verdict must be one the
// network layer can act on: an accepted header lies within the bytes and the bound, every proper
// prefix of it asks for more (so a header split across reads is never refused), "need more" never
// follows a refusal, and trailing bytes never change the verdict. The same bytes also go through
// the address, range list, region table and X-Forwarded-For parsers (operator files and a header
// any client sets).
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target proxy_protocol_fuzz
//   build/fuzz/tests/proxy_protocol_fuzz -max_total_time=600 tests/fuzz/corpus/proxy_protocol
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "router/edge/cidr.h"
#include "router/edge/forwarded_for.h"
#include "router/edge/ip_address.h"
#include "router/edge/proxy_protocol.h"

namespace {

using vrouter::edge::Cidr;
using vrouter::edge::CidrSet;
using vrouter::edge::ClientFromForwardedFor;
using vrouter::edge::IpAddress;
using vrouter::edge::kMaxProxyHeaderBytes;
using vrouter::edge::ParseProxyHeader;
using vrouter::edge::ProxyHeader;
using vrouter::edge::ProxyParseResult;
using vrouter::edge::ProxyParseStatus;
using vrouter::edge::RegionTable;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool SameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  return a.length == b.length && a.local == b.local && a.source == b.source &&
         a.source_port == b.source_port && a.destination == b.destination &&
         a.destination_port == b.destination_port && a.version == b.version;
}

bool Same(const ProxyParseResult& a, const ProxyParseResult& b) {
  return a.status == b.status && a.error == b.error && SameHeader(a.header, b.header);
}

void CheckProxyHeader(std::span<const std::uint8_t> bytes) {
  const ProxyParseResult r = ParseProxyHeader(bytes);
  Check(Same(r, ParseProxyHeader(bytes)));  // deterministic
  std::vector<std::uint8_t> longer(bytes.begin(), bytes.end());
  longer.push_back(bytes.empty() ? 0 : static_cast<std::uint8_t>(bytes[0] ^ 0x5a));
  const ProxyParseResult extended = ParseProxyHeader(longer);

  switch (r.status) {
    case ProxyParseStatus::kOk: {
      const ProxyHeader& h = r.header;
      Check(h.length > 0 && h.length <= bytes.size() && h.length <= kMaxProxyHeaderBytes);
      Check(h.version == 1 || h.version == 2);
      Check(r.error.empty());
      // Addresses exactly when not local, and canonical.
      Check(h.local != h.source.has_value() && h.local != h.destination.has_value());
      if (h.source) Check(!h.source->IsV4Mapped() && !h.destination->IsV4Mapped());
      // The header alone gives the same verdict, and so do more bytes after it.
      Check(Same(r, ParseProxyHeader(bytes.first(h.length))));
      Check(Same(r, extended));
      for (std::size_t n = 0; n < h.length; ++n) {
        Check(ParseProxyHeader(bytes.first(n)).status == ProxyParseStatus::kNeedMore);
      }
      break;
    }
    case ProxyParseStatus::kNeedMore:
      Check(bytes.size() < kMaxProxyHeaderBytes && r.error.empty());
      if (!bytes.empty()) {
        Check(ParseProxyHeader(bytes.first(bytes.size() - 1)).status ==
              ProxyParseStatus::kNeedMore);
      }
      break;
    case ProxyParseStatus::kError:
      Check(!r.error.empty());
      Check(extended.status == ProxyParseStatus::kError);  // a refusal is final
      break;
  }
}

void CheckAddressText(std::string_view text) {
  if (auto a = IpAddress::Parse(text)) {
    Check(!a->IsV4Mapped());
    auto again = IpAddress::Parse(a->ToString());
    Check(again && *again == *a && again->ToString() == a->ToString());
  }
  if (auto c = Cidr::Parse(text)) {
    Check(c->prefix >= 0 && c->prefix <= (c->base.v6 ? 128 : 32));
    Check(c->Contains(c->base));
    auto again = Cidr::Parse(c->ToString());
    Check(again && *again == *c);
  }
}

void CheckLists(std::string_view text) {
  const auto set = CidrSet::Parse(text);
  if (const CidrSet* s = std::get_if<CidrSet>(&set)) {
    for (const Cidr& c : s->entries()) Check(s->Contains(c.base));
    const auto again = CidrSet::Parse(s->ToString());
    Check(std::holds_alternative<CidrSet>(again) &&
          std::get<CidrSet>(again).entries() == s->entries());
  } else {
    Check(!set.error().message.empty());
  }

  const auto table = RegionTable::Parse(text);
  if (const RegionTable* t = std::get_if<RegionTable>(&table)) {
    if (auto a = IpAddress::Parse(text.substr(0, text.find_first_of(" \n/")))) {
      if (auto region = t->RegionOf(*a)) Check(!region->empty());
    }
  } else {
    Check(table.error().message.rfind("line ", 0) == 0);
  }

  // X-Forwarded-For from a peer in a /8 we trust, and from one we do not.
  static const CidrSet kTrusted =
      std::get<CidrSet>(CidrSet::Parse("10.0.0.0/8,192.168.0.0/16,2001:db8::/32"));
  const IpAddress outsider = *IpAddress::Parse("203.0.113.1");
  Check(ClientFromForwardedFor(text, outsider, kTrusted) == outsider);
  const auto client = ClientFromForwardedFor(text, *IpAddress::Parse("10.0.0.1"), kTrusted);
  if (client) Check(!client->IsV4Mapped());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  CheckProxyHeader(bytes);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckAddressText(text);
  CheckLists(text);
  return 0;
}
