// A deterministic, socket-free simulation of a video fleet and the users the router places on it,
// on simulated time. It replays the NeurIPS 2020 load-test incident (a server that reports low
// load and forwards nothing) against the router's FleetModel, and against a naive picker for
// comparison. Everything a real deployment has is modelled at the level the router sees it:
// each server's stats report every interval, the router's own table of who is where, clients'
// failure reports, and paced migrations.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "router/fleet/fleet_model.h"

namespace vrouter::sim {

using base::SteadyTime;
using Seconds = std::chrono::seconds;
using Ms = std::chrono::milliseconds;

enum class Behaviour {
  kHealthy,
  kBlackHole,  // reports low load, receives media, forwards nothing
  kSilent,     // sends no report
  kLiar,       // counters look healthy, but its users get no media (they report it)
  kCrashLoop,  // a black hole that restarts every `crash_every` reports (counters back to 0)
};

struct SimServer {
  fleet::VideoServer info;
  Behaviour behaviour = Behaviour::kHealthy;
  bool registered = false;
  SteadyTime broken_since{};  // when its behaviour last changed away from healthy
  proto::Stats stats;         // counters as last reported
};

struct SimUser {
  std::string id;
  std::string space;
  std::string server;  // empty: not placed (no server had room)
  SteadyTime placed_at{};
  bool reported = false;  // sent a failure report about its current server
  SteadyTime reported_at{};
};

// How the simulation places a joining user.
enum class Picker { kRouter, kNaiveLeastReported };

class FleetSim {
 public:
  FleetSim(int servers, std::uint32_t capacity, Picker picker, fleet::FleetParams params = {});

  SteadyTime now() const { return now_; }
  fleet::FleetModel& model() { return model_; }
  SimServer& server(int i) { return servers_[static_cast<std::size_t>(i)]; }
  // Changes how server `i` behaves from now on.
  void Set(int i, Behaviour b) {
    server(i).behaviour = b;
    server(i).broken_since = now_;
  }
  const std::vector<SimUser>& users() const { return users_; }

  // Registers servers [first, last) now (they report from the next step on).
  void Register(int first, int last);

  // Advances one report interval: every registered server reports, users on broken servers
  // report failures (after `detect_after` without media), the router ticks and migrates, and
  // `joins` users arrive spread over the interval (users_per_space per space).
  void Step(int joins);

  // Users placed on server `i` whose placement happened at or after `since`.
  int PlacedOnSince(int i, SteadyTime since) const;
  std::int64_t UsersOn(int i) const;
  int migrated() const { return migrated_; }
  int unplaced() const { return unplaced_; }
  std::optional<SteadyTime> first_ejection(int i) const;

  Seconds detect_after{3};     // a client notices missing media after this long
  Seconds report_every{10};    // ... and says so again this often while it still has none
  int users_per_space = 10;    // users of one space arrive together (a room)
  bool report_streams = true;  // servers send streams_in/streams_out (PROTOCOL.md 14.4.2)
  bool clients_report = true;  // users without media report it (`report` no_media)
  int crash_every = 3;         // kCrashLoop: reports between restarts
  int restarts() const { return restarts_; }

 private:
  void Report(SimServer& s);
  void Place(SimUser& u);
  std::string NaivePick() const;
  void Move(SimUser& u, const std::string& to);

  Picker picker_;
  fleet::FleetModel model_;
  std::vector<SimServer> servers_;
  std::vector<SimUser> users_;
  fleet::LoadMap own_;
  std::map<std::string, fleet::LoadMap> space_load_;
  std::map<std::string, int> index_;
  std::map<std::string, std::vector<SteadyTime>> placements_;
  std::map<std::string, SteadyTime> ejected_at_;
  SteadyTime now_ = SteadyTime{} + Seconds(1000);
  std::chrono::milliseconds interval_;
  int migrated_ = 0;
  int unplaced_ = 0;
  int restarts_ = 0;
  std::map<std::string, std::uint64_t> streams_out_;  // this step's, per server
};

}  // namespace vrouter::sim
