// libFuzzer target: the decoders of what replicas read back from Redis (records in a space's
// hash, change messages on the channels). Redis is shared by every replica and by operators with
// redis-cli, so a malformed value must be refused, never crash or misparse. A decoded value must
// re-encode to a string that decodes to the same value.
//
//   cmake --preset fuzz && cmake --build --preset fuzz --target redis_schema_fuzz
//   build/fuzz/tests/redis_schema_fuzz -max_total_time=600 tests/fuzz/corpus/redis_schema
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "router/store/redis_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using vrouter::store::redis::DecodeChange;
  using vrouter::store::redis::DecodeRecord;
  using vrouter::store::redis::EncodeChange;
  using vrouter::store::redis::EncodeRecord;
  if (auto r = DecodeRecord(text)) {
    auto again = DecodeRecord(EncodeRecord(*r));
    if (!again || !(*again == *r)) std::abort();
  }
  if (auto m = DecodeChange(text)) {
    auto again = DecodeChange(EncodeChange(*m));
    if (!again || again->seq != m->seq || again->kind != m->kind || again->space != m->space ||
        again->user != m->user || !(again->record == m->record) ||
        again->from_server != m->from_server) {
      std::abort();
    }
  }
  return 0;
}
