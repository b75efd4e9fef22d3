// libFuzzer target: the decoder of what replicas tell each other about the fleet (the vr:fleet
// channel, router/store/fleet_gossip.h). Anyone who can publish on the shared Redis can write
// there, so a malformed message must be refused with a typed error, never crash or misparse. A
// decoded message must re-encode to a string that decodes to the same message. The same input is
// also offered to the channel's authentication (gossip_auth.h), which must refuse it with a typed
// error unless it is sealed with the key (which fuzzing does not find).
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target fleet_gossip_fuzz
//   build/fuzz/tests/fleet_gossip_fuzz -max_total_time=600 tests/fuzz/corpus/fleet_gossip
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "router/store/fleet_gossip.h"
#include "router/store/gossip_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static vrouter::store::GossipOpener opener("fuzz-replica-key-0123456789");
  const auto opened = opener.Open(text, 1'712'345'678'901);
  if (opened.ok() || vrouter::store::GossipAuthErrorName(opened.error()).empty()) std::abort();
  const auto decoded = vrouter::store::DecodeGossip(text);
  if (!decoded.ok()) {
    if (vrouter::store::GossipErrorName(decoded.error()).empty()) std::abort();
    return 0;
  }
  const auto again = vrouter::store::DecodeGossip(vrouter::store::EncodeGossip(*decoded));
  if (!again.ok() || !(*again == *decoded)) std::abort();
  return 0;
}
