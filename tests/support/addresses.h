// Client addresses for the edge tests: parsed from text, or built byte by byte in the IPv4-mapped
// IPv6 form that a dual-stack listener reports (which IpAddress's factories never return).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>

#include "router/edge/ip_address.h"

namespace vrouter::testing {

// `text` parsed; a parse failure fails the test and gives the zero IPv4 address.
inline edge::IpAddress Ip(std::string_view text) {
  auto a = edge::IpAddress::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(edge::IpAddress{});
}

// ::ffff:a.b.c.d as it stands in the 16 bytes (not canonical: v6, IsV4Mapped()).
inline edge::IpAddress MappedIpv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  edge::IpAddress mapped;
  mapped.v6 = true;
  mapped.bytes[10] = mapped.bytes[11] = 0xff;
  mapped.bytes[12] = a;
  mapped.bytes[13] = b;
  mapped.bytes[14] = c;
  mapped.bytes[15] = d;
  return mapped;
}

}  // namespace vrouter::testing
