#include "tests/sim/fleet_sim.h"

#include <algorithm>
#include <map>

namespace vrouter::sim {
namespace {

// Packets per second one user sends, matching ScoringParams::packets_per_user's default.
constexpr std::uint64_t kPps = 100;

}  // namespace

FleetSim::FleetSim(int servers, std::uint32_t capacity, Picker picker, fleet::FleetParams params)
    : picker_(picker), model_(params, /*seed=*/42), interval_(params.report_interval) {
  for (int i = 0; i < servers; ++i) {
    SimServer s;
    s.info = {"sfu-" + std::to_string(i), "wss://sfu-" + std::to_string(i) + ".test/", "eu",
              capacity, true};
    index_[s.info.id] = i;
    servers_.push_back(std::move(s));
  }
}

void FleetSim::Register(int first, int last) {
  for (int i = first; i < last; ++i) {
    servers_[static_cast<std::size_t>(i)].registered = true;
    model_.Register(servers_[static_cast<std::size_t>(i)].info, now_);
  }
}

void FleetSim::Report(SimServer& s) {
  if (!s.registered || s.behaviour == Behaviour::kSilent) return;
  if (s.behaviour == Behaviour::kCrashLoop &&
      s.stats.seq >= static_cast<std::uint64_t>(crash_every)) {
    // The process restarts: a new connection, seq and every counter from zero.
    s.stats = proto::Stats{};
    model_.Register(s.info, now_);
    ++restarts_;
  }
  const std::int64_t users = UsersOn(index_[s.info.id]);
  const auto dt = static_cast<std::uint64_t>(std::chrono::duration<double>(interval_).count());
  const std::uint64_t per_user = kPps * std::max<std::uint64_t>(dt, 1);
  const std::uint64_t in = static_cast<std::uint64_t>(users) * per_user;
  const std::uint64_t streams_out = streams_out_[s.info.id];
  s.stats.seq += 1;
  s.stats.packets_in += in;
  s.stats.bytes_in += in * 1000;
  if (report_streams) {
    s.stats.streams_in = static_cast<std::uint32_t>(users);
    s.stats.streams_out = static_cast<std::uint32_t>(streams_out);
  }
  if (s.behaviour == Behaviour::kHealthy || s.behaviour == Behaviour::kLiar) {
    s.stats.packets_out += streams_out * per_user;
    s.stats.bytes_out += streams_out * per_user * 1000;
    s.stats.peers = static_cast<std::uint32_t>(users);
    s.stats.media_peers = static_cast<std::uint32_t>(users);
    s.stats.cpu = std::min(1.0, 0.05 + 0.8 * static_cast<double>(users) / s.info.capacity);
  } else {
    // The black hole: low load reported, media received, nothing forwarded.
    s.stats.peers = static_cast<std::uint32_t>(std::min<std::int64_t>(users, 2));
    s.stats.media_peers = s.stats.peers;
    s.stats.cpu = 0.05;
  }
  model_.OnStats(s.info.id, s.stats, now_);
}

std::string FleetSim::NaivePick() const {
  // What the incident's router did: the least loaded server by its own report.
  const SimServer* best = nullptr;
  double best_load = 0;
  for (const auto& s : servers_) {
    if (!s.registered) continue;
    const double load = static_cast<double>(s.stats.peers) / s.info.capacity;
    if (load >= 1) continue;
    if (best == nullptr || load < best_load) {
      best = &s;
      best_load = load;
    }
  }
  return best == nullptr ? std::string() : best->info.id;
}

void FleetSim::Move(SimUser& u, const std::string& to) {
  if (!u.server.empty()) {
    model_.SetOwn(u.server, --own_[u.server]);
    --space_load_[u.space][u.server];
  }
  u.server = to;
  u.placed_at = now_;
  u.reported = false;
  if (to.empty()) return;
  model_.SetOwn(to, ++own_[to]);
  ++space_load_[u.space][to];
  placements_[to].push_back(now_);
}

void FleetSim::Place(SimUser& u) {
  std::string to;
  if (picker_ == Picker::kNaiveLeastReported) {
    to = NaivePick();
  } else {
    to = model_.Choose({"eu", &space_load_[u.space]}, now_).server;
  }
  if (to.empty()) {
    ++unplaced_;
    return;
  }
  Move(u, to);
}

void FleetSim::Step(int joins) {
  now_ += interval_;
  // Rooms are spaces. A user's media goes to the server it is placed on, and the rest of its room
  // (wherever they are placed: people connect to the servers of those they watch) subscribe to it
  // there: each stream in is sent to the others of its room, at most 8.
  std::map<std::string, std::int64_t> room_size;
  for (const auto& u : users_) {
    if (!u.server.empty()) ++room_size[u.space];
  }
  streams_out_.clear();
  for (const auto& u : users_) {
    if (u.server.empty()) continue;
    streams_out_[u.server] +=
        static_cast<std::uint64_t>(std::clamp<std::int64_t>(room_size[u.space] - 1, 0, 8));
  }
  for (auto& s : servers_) Report(s);
  // Clients with no media for `detect_after` say so, and again every `report_every` while they
  // still have none.
  for (auto& u : users_) {
    if (u.server.empty()) continue;
    const SimServer& s = servers_[static_cast<std::size_t>(index_[u.server])];
    if (s.behaviour == Behaviour::kHealthy || !clients_report) continue;
    if (now_ - std::max(u.placed_at, s.broken_since) < detect_after) continue;
    if (u.reported && now_ - u.reported_at < report_every) continue;
    u.reported = true;
    u.reported_at = now_;
    model_.OnFailureReport(u.server, u.id, "", now_);
  }
  model_.Tick(now_);
  for (const auto& c : model_.TakeChanges()) {
    if (c.to == fleet::ServerState::kEjected && !ejected_at_.contains(c.server)) {
      ejected_at_[c.server] = c.at;
    }
  }
  if (picker_ == Picker::kRouter) {
    for (const auto& e : model_.DueEvacuations(now_)) {
      std::uint32_t moved = 0;
      for (auto& u : users_) {
        if (moved >= e.batch) break;
        if (u.server != e.server) continue;
        const std::string to = model_.Choose({"eu", &space_load_[u.space]}, now_).server;
        if (to.empty() || to == u.server) continue;
        Move(u, to);
        ++migrated_;
        ++moved;
      }
    }
  }
  // Joins arrive spread over the interval.
  const SteadyTime start = now_;
  for (int j = 0; j < joins; ++j) {
    now_ = start + interval_ * j / std::max(joins, 1);
    const std::size_t n = users_.size();
    users_.push_back({"user-" + std::to_string(n),
                      "space-" + std::to_string(n / static_cast<std::size_t>(users_per_space)), "",
                      now_, false});
    Place(users_.back());
  }
  now_ = start;
}

int FleetSim::PlacedOnSince(int i, SteadyTime since) const {
  const auto it = placements_.find(servers_[static_cast<std::size_t>(i)].info.id);
  if (it == placements_.end()) return 0;
  return static_cast<int>(std::count_if(it->second.begin(), it->second.end(),
                                        [&](SteadyTime t) { return t >= since; }));
}

std::int64_t FleetSim::UsersOn(int i) const {
  const auto it = own_.find(servers_[static_cast<std::size_t>(i)].info.id);
  return it == own_.end() ? 0 : it->second;
}

std::optional<SteadyTime> FleetSim::first_ejection(int i) const {
  const auto it = ejected_at_.find(servers_[static_cast<std::size_t>(i)].info.id);
  if (it == ejected_at_.end()) return std::nullopt;
  return it->second;
}

}  // namespace vrouter::sim
