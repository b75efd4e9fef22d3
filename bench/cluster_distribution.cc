// How the store's keys and the commands of its actions spread over the shards of a Redis Cluster
// (issue 18, "distribution of keys and commands over the shards"). Pure arithmetic on the real
// key names (router/store/redis_schema.h) and Redis's slot function (cluster_slots.h); shards own
// equal slot ranges, as `redis-cli --cluster create` assigns them.
//
//   build/release/bench/cluster_distribution [SPACES [USERS_PER_SPACE [SERVERS]]]
//
// Defaults: 1,000 spaces of 20 users (ids shaped like production's: 36-byte UUIDs), 100 video
// servers. Prints, for 3, 6 and 12 shards, the max/mean of: records (users, in their spaces'
// hashes), pointer keys, and per-join commands by the key they route on (redis_cost.py's join:
// 3 script runs on the space key with their inner calls, the pointer GET and SET, the admission
// script on the server's keys, the two hello counters).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "router/store/cluster_slots.h"
#include "router/store/redis_schema.h"

namespace {

using vrouter::store::cluster::KeySlot;
using vrouter::store::cluster::kSlots;

std::string Uuid(unsigned n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-4%03x-8%03x-%012x", n * 2654435761u, n & 0xffff,
                n % 4096, (n * 7) % 4096, n * 40503u);
  return buf;
}

struct Tally {
  std::vector<double> per_shard;
  explicit Tally(unsigned shards) : per_shard(shards, 0) {}
  void Add(unsigned shard, double n) { per_shard[shard] += n; }
  double MaxOverMean() const {
    double sum = 0, max = 0;
    for (double v : per_shard) {
      sum += v;
      max = std::max(max, v);
    }
    return sum == 0 ? 0 : max / (sum / static_cast<double>(per_shard.size()));
  }
};

unsigned ShardOf(std::uint16_t slot, unsigned shards) {
  // redis-cli --cluster create: ranges of kSlots / shards, the remainder spread over the first.
  return static_cast<unsigned>((static_cast<std::uint64_t>(slot) * shards) / kSlots);
}

}  // namespace

int main(int argc, char** argv) {
  namespace redis = vrouter::store::redis;
  const unsigned spaces = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1])) : 1000;
  const unsigned users = argc > 2 ? static_cast<unsigned>(std::stoul(argv[2])) : 20;
  const unsigned servers = argc > 3 ? static_cast<unsigned>(std::stoul(argv[3])) : 100;
  std::printf("%u spaces x %u users, %u video servers\n\n", spaces, users, servers);
  std::printf("| shards | records max/mean | pointer keys max/mean | join commands max/mean |\n");
  std::printf("| --- | --- | --- | --- |\n");
  for (unsigned shards : {3u, 6u, 12u}) {
    Tally records(shards), pointers(shards), commands(shards);
    unsigned n = 0;
    for (unsigned s = 0; s < spaces; ++s) {
      const std::string space = Uuid(1'000'000 + s);
      const unsigned space_shard = ShardOf(KeySlot(redis::SpaceKey(space)), shards);
      for (unsigned u = 0; u < users; ++u, ++n) {
        const std::string user = Uuid(n);
        records.Add(space_shard, 1);
        const unsigned pointer_shard = ShardOf(KeySlot(redis::UserKey(user)), shards);
        pointers.Add(pointer_shard, 1);
        const std::string server = "sfu-" + std::to_string(n % servers);
        // One join, 23 commands (BENCHMARKS.md, "What each action costs Redis"): the space's
        // scripts (3 runs with their inner calls: 12), the pointer (GET, SET: 2), the admission
        // script (9), and the hello counters (which redis_cost counts with hello, not join).
        commands.Add(space_shard, 12);
        commands.Add(pointer_shard, 2);
        commands.Add(ShardOf(KeySlot(redis::AdmissionKey(server)), shards), 9);
      }
    }
    std::printf("| %u | %.3f | %.3f | %.3f |\n", shards, records.MaxOverMean(),
                pointers.MaxOverMean(), commands.MaxOverMean());
  }
  return 0;
}
