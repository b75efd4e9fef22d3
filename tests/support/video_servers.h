// Video servers as the fleet tests declare them.
#pragma once

#include <cstdint>
#include <string>

#include "router/fleet/directory.h"

namespace vrouter::testing {

// Server `id` at wss://ID/ in `region`, for `capacity` users.
inline fleet::VideoServer Server(const std::string& id, std::uint32_t capacity = 100,
                                 const std::string& region = "eu-west", bool monitored = true) {
  fleet::VideoServer s;
  s.id = id;
  s.url = "wss://" + id + "/";
  s.region = region;
  s.capacity = capacity;
  s.monitored = monitored;
  return s;
}

}  // namespace vrouter::testing
