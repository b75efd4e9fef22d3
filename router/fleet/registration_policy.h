// What a video server may say about itself when it registers. A video-server credential proves
// who the server is, not what the operator decided about it: a declared server (fleet file) keeps
// the URL, region and capacity declared for it, a self-registered server's capacity is capped,
// and the URL handed to clients must be one a browser should connect its media to. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "router/fleet/directory.h"

namespace vrouter::fleet {

struct RegistrationPolicy {
  // The most users a self-registered server may claim (--max-registered-capacity).
  std::uint32_t max_capacity = 5000;
  // URL schemes a server may give clients (--video-server-url-schemes): wss and https; ws and
  // http only for test rigs (plain-text media signalling).
  std::vector<std::string> url_schemes{"wss", "https"};
  // Host names a server's URL may use (--video-server-url-hosts): a host matches a suffix when it
  // is the suffix or ends with "." + suffix. Empty: any host.
  std::vector<std::string> url_hosts;
  bool operator==(const RegistrationPolicy&) const = default;
};

enum class RegistrationRefusal : std::uint8_t {
  kDeclaredMismatch,  // a declared server said another URL, region or capacity
  kUrlMalformed,      // not scheme://host[:port][/path], or with user info
  kUrlScheme,         // a scheme not in --video-server-url-schemes
  kUrlHost,           // a host outside --video-server-url-hosts
};
inline constexpr int kRegistrationRefusalCount = 4;
std::string_view RegistrationRefusalName(RegistrationRefusal refusal);

struct Refused {
  RegistrationRefusal reason;
  std::string detail;  // for the server's error message and the log
};
struct Accepted {
  VideoServer server;            // what the fleet will use
  bool capacity_capped = false;  // self-registered, claimed more than max_capacity
};

// `declared` is the fleet file's entry for the id, or null.
std::variant<Accepted, Refused> VetRegistration(const VideoServer& offered,
                                                const VideoServer* declared,
                                                const RegistrationPolicy& policy);

// Empty when `scheme` is one --video-server-url-schemes may list (wss, https, ws, http); else
// why not.
std::string CheckUrlScheme(std::string_view scheme);

}  // namespace vrouter::fleet
