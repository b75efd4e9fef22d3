#include "bench/load/crowd.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

namespace vrouter::bench::load {
namespace {

// splitmix64: a well-mixed 64-bit value per (index, salt).
std::uint64_t Mix(std::uint64_t index, std::uint64_t salt) {
  std::uint64_t z = index * 0x9E3779B97F4A7C15ULL + salt * 0xD1B54A32D192ED03ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from (index, salt).
double Unit(std::uint64_t index, std::uint64_t salt) {
  return static_cast<double>(Mix(index, salt) >> 11) * 0x1.0p-53;
}

}  // namespace

std::string UserName(std::uint64_t index) { return "u" + std::to_string(index); }

std::string SpaceName(std::uint64_t index, const CrowdShape& shape) {
  return "s" + std::to_string(index / std::max<std::uint32_t>(1, shape.space_size));
}

Point PositionAt(std::uint64_t index, double t_s, const CrowdShape& shape) {
  const double m = shape.map_size;
  // Amplitudes 5%..35% of the map; the centre keeps the whole curve inside the map.
  const double ax = m * (0.05 + 0.30 * Unit(index, 1));
  const double ay = m * (0.05 + 0.30 * Unit(index, 2));
  const double cx = ax + (m - 2 * ax) * Unit(index, 3);
  const double cy = ay + (m - 2 * ay) * Unit(index, 4);
  // Angular speeds such that the walking speed is about 10..40 units per second.
  const double speed = 10 + 30 * Unit(index, 5);
  const double wx = speed / std::max(ax, 1.0) * (0.5 + 0.5 * Unit(index, 6));
  const double wy = speed / std::max(ay, 1.0) * (0.5 + 0.5 * Unit(index, 7));
  const double px = 2 * std::numbers::pi * Unit(index, 8);
  const double py = 2 * std::numbers::pi * Unit(index, 9);
  return {cx + ax * std::sin(wx * t_s + px), cy + ay * std::sin(wy * t_s + py)};
}

std::vector<std::uint64_t> Neighbours(std::uint64_t index, double t_s, const CrowdShape& shape) {
  const std::uint64_t size = std::max<std::uint32_t>(1, shape.space_size);
  const std::uint64_t first = index / size * size;
  const std::uint64_t last = std::min(first + size, shape.users_total);
  const Point me = PositionAt(index, t_s, shape);
  std::vector<std::pair<double, std::uint64_t>> near;
  for (std::uint64_t other = first; other < last; ++other) {
    if (other == index) continue;
    const Point p = PositionAt(other, t_s, shape);
    const double d = std::hypot(p.x - me.x, p.y - me.y);
    if (d < shape.near) near.emplace_back(d, other);
  }
  std::sort(near.begin(), near.end());
  if (near.size() > shape.max_neighbours) near.resize(shape.max_neighbours);
  std::vector<std::uint64_t> out;
  out.reserve(near.size());
  for (const auto& n : near) out.push_back(n.second);
  return out;
}

std::chrono::milliseconds FullJitterBackoff(int attempt, double unit,
                                            std::chrono::milliseconds base,
                                            std::chrono::milliseconds cap) {
  attempt = std::clamp(attempt, 0, 30);
  unit = std::clamp(std::isfinite(unit) ? unit : 0.0, 0.0, 1.0);
  const double ceiling = std::min(static_cast<double>(cap.count()),
                                  static_cast<double>(base.count()) * std::ldexp(1.0, attempt));
  return std::chrono::milliseconds(static_cast<std::int64_t>(ceiling * unit));
}

std::vector<std::uint64_t> UsersOfProcess(std::uint64_t users_total, std::uint32_t process,
                                          std::uint32_t processes) {
  std::vector<std::uint64_t> out;
  if (processes == 0 || process >= processes) return out;
  out.reserve(users_total / processes + 1);
  for (std::uint64_t i = process; i < users_total; i += processes) out.push_back(i);
  return out;
}

}  // namespace vrouter::bench::load
