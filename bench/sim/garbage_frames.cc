// The malformed frames of behaviour `garbage` (declared in sim_support.h). The well-formed parts
// come from the real codec, so only the defect under test differs from a valid frame.
#include "bench/sim/sim_support.h"
#include "proto/video_server_codec.h"

namespace vrouter::bench::sim {

std::vector<std::string> GarbageFrames(std::uint64_t seq) {
  proto::Stats cpu7;
  cpu7.seq = seq;
  cpu7.peers = cpu7.media_peers = 1;
  cpu7.cpu = 7;
  return {
      // Not JSON: a truncated object.
      R"({"type":"stats","seq":)",
      // JSON, but the counters have the wrong types.
      R"({"type":"stats","seq":"one","peers":-1,"media_peers":[],"packets_in":"many",)"
      R"("packets_out":null,"bytes_in":{},"bytes_out":true,"cpu":"high"})",
      // Well-typed, but cpu is a share (0..1).
      proto::Encode(proto::VideoServerMessage{cpu7}),
      // No such message in vrouter.video.v1.
      R"({"type":"reboot","now":true})",
  };
}

}  // namespace vrouter::bench::sim
