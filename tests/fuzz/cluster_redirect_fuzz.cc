// libFuzzer target: Redis Cluster's redirections and key slots (router/store/cluster_slots.h).
// A node's error reply is input from the store side: a malformed MOVED/ASK must be refused, never
// crash or misparse; a parsed one must print back to a text that parses the same; a key's slot is
// below 16384 and is its hash tag's slot.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target cluster_redirect_fuzz
//   build/fuzz/tests/cluster_redirect_fuzz -max_total_time=600 tests/fuzz/corpus/cluster_redirect
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "router/store/cluster_slots.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace cluster = vrouter::store::cluster;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto r = cluster::ParseRedirect(text)) {
    if (r->slot >= cluster::kSlots || r->to.port == 0) std::abort();
    // Hosts are not validated (names are allowed); one holding ' ' or ']' prints ambiguously.
    if (r->to.host.find_first_of(" []") == std::string::npos) {
      const std::string printed =
          std::string(r->kind == cluster::RedirectKind::kMoved ? "MOVED " : "ASK ") +
          std::to_string(r->slot) + " " + cluster::ToString(r->to);
      const auto again = cluster::ParseRedirect(printed);
      if (!again || !(*again == *r)) std::abort();
    }
  }
  const std::uint16_t slot = cluster::KeySlot(text);
  if (slot >= cluster::kSlots) std::abort();
  const auto open = text.find('{');
  if (open != std::string_view::npos) {
    const auto close = text.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1 &&
        cluster::KeySlot(text.substr(open + 1, close - open - 1)) != slot) {
      std::abort();
    }
  }
  return 0;
}
