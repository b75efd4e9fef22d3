// The people the load generator plays: who they are, which space they are in, where they walk
// and whom they see. Everything is a pure function of the user's global index and the time, so
// every generator process agrees on every user's position without talking to the others, and a
// user watched by another process's user is where that process thinks it is. No I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace vrouter::bench::load {

struct CrowdShape {
  std::uint64_t users_total = 0;  // global indices 0 .. users_total-1
  std::uint32_t space_size = 50;  // users per space: space k holds users k*size .. (k+1)*size-1
  double map_size = 1000;         // the map of a space is map_size x map_size
  double near = 180;              // people within this distance are neighbours
  std::uint32_t max_neighbours = 12;
};

std::string UserName(std::uint64_t index);                            // "u<index>"
std::string SpaceName(std::uint64_t index, const CrowdShape& shape);  // "s<index / space_size>"

struct Point {
  double x = 0;
  double y = 0;
};

// Where user `index` is `t_s` seconds into the run: a smooth closed curve (a Lissajous figure
// with per-user centre, size, speed and phase), inside the map, walking at 10..40 units/s.
Point PositionAt(std::uint64_t index, double t_s, const CrowdShape& shape);

// The users of `index`'s space within `near` of it at `t_s`, nearest first, at most
// max_neighbours, never `index` itself.
std::vector<std::uint64_t> Neighbours(std::uint64_t index, double t_s, const CrowdShape& shape);

// A refused join (retryable: no_video_server, unavailable, rate_limited) is asked again after
// FullJitterBackoff(attempt, unit, kJoinRetryBase, kJoinRetryCap), as the JS client does
// (clients/js/src/client.js, DEFAULT_BACKOFF): the load generator and the fleet simulator.
inline constexpr std::chrono::milliseconds kJoinRetryBase{250};
inline constexpr std::chrono::milliseconds kJoinRetryCap{10000};

// Full-jitter exponential backoff before reconnect attempt `attempt` (0 = first retry):
// unit * min(cap, base * 2^attempt), `unit` uniform in [0, 1).
std::chrono::milliseconds FullJitterBackoff(int attempt, double unit,
                                            std::chrono::milliseconds base,
                                            std::chrono::milliseconds cap);

// The global indices process `process` of `processes` plays: i < users_total, i % processes ==
// process.
std::vector<std::uint64_t> UsersOfProcess(std::uint64_t users_total, std::uint32_t process,
                                          std::uint32_t processes);

}  // namespace vrouter::bench::load
