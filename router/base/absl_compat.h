// Debian 12's abseil is built with its own absl::string_view (not an alias of std::string_view),
// so heterogeneous lookups in absl containers need this explicit conversion.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace vrouter {

inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace vrouter
