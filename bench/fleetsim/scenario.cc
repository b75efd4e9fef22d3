#include "bench/fleetsim/scenario.h"

#include <algorithm>

namespace vrouter::bench::fleetsim {
namespace {

constexpr std::uint32_t kMaxReplicas = 100;
constexpr std::uint32_t kMaxServers = 10000;
constexpr std::uint64_t kMaxUsers = 2000000;
// Pub/sub and admission delays stay well under a report interval (the simulator delivers a
// server's latest report, which must not have been replaced yet).
constexpr double kMaxDelayMs = 500;

using std::chrono::seconds;

Scenario FleetOf(std::string name, std::uint32_t replicas, std::uint32_t servers,
                 std::uint32_t capacity, std::uint32_t regions) {
  Scenario s;
  s.name = std::move(name);
  s.replicas = replicas;
  s.servers = servers;
  s.capacity = capacity;
  s.regions = regions;
  return s;
}

// 50 replicas, 1,000 servers of 500 users in 10 regions (100 a region), warmed up with 50,000
// users over the first 30 s (every server established by 40 s).
Scenario FleetOf50x1000(std::string name) {
  Scenario s = FleetOf(std::move(name), 50, 1000, 500, 10);
  s.surges.push_back({Ms(0), 50000, seconds(30), std::nullopt});
  return s;
}

Scenario Newcomer() {
  Scenario s = FleetOf50x1000("newcomer");
  // Target 1: one server has just registered when 100,000 users join region r0 over 60 s.
  s.newcomers = 1;
  s.newcomers_at = seconds(40);
  s.surges.push_back({seconds(40), 100000, seconds(60), 0});
  s.duration = seconds(130);
  return s;
}

// An established fleet with steady arrivals and churn, and `fault` at 60 s.
Scenario Faulty(std::string name, Fault fault, std::uint32_t background) {
  Scenario s = FleetOf50x1000(std::move(name));
  s.surges.front().users = background;
  s.surges.push_back({seconds(40), 20000, seconds(60), std::nullopt});
  s.session_mean = seconds(600);
  s.faults.push_back(fault);
  s.duration = seconds(110);
  return s;
}

Scenario Surge10k() {
  // Item 3's question on the simulator: 10,000 people in one second on 8 servers.
  Scenario s = FleetOf("surge10k", 10, 8, 2000, 1);
  s.surges.push_back({seconds(5), 10000, Ms(0), std::nullopt});
  s.duration = seconds(60);
  return s;
}

Scenario Max() {
  // The upper bounds at once: 100 replicas, 10,000 servers, 1,000,000 users (400,000
  // warming up, then 600,000 over 60 s, anywhere), one newcomer.
  Scenario s = FleetOf("max", 100, 10000, 500, 20);
  s.surges.push_back({Ms(0), 400000, seconds(30), std::nullopt});
  s.newcomers = 1;
  s.newcomers_at = seconds(40);
  s.surges.push_back({seconds(40), 600000, seconds(60), std::nullopt});
  s.duration = seconds(110);
  return s;
}

Scenario Ci() {
  // Small enough for ctest on two slow cores: the newcomer surge and a black hole in one run.
  Scenario s = FleetOf("ci", 10, 100, 500, 4);
  s.newcomers = 1;
  s.newcomers_at = seconds(35);
  s.surges.push_back({Ms(0), 5000, seconds(30), std::nullopt});
  s.surges.push_back({seconds(35), 10000, seconds(20), 0});
  s.faults.push_back({seconds(45), FaultKind::kBlackHole, 1});
  s.duration = seconds(75);
  return s;
}

}  // namespace

std::string_view AdmissionName(Admission a) {
  switch (a) {
    case Admission::kBaseline:
      return "baseline";
    case Admission::kShared:
      return "shared";
    case Admission::kLocalShare:
      return "local_share";
    case Admission::kSharedPerReport:
      return "shared_per_report";
  }
  return "unknown";
}

std::optional<Admission> AdmissionByName(std::string_view name) {
  for (Admission a : kAdmissions) {
    if (AdmissionName(a) == name) return a;
  }
  return std::nullopt;
}

std::string_view FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kBlackHole:
      return "black_hole";
    case FaultKind::kGone:
      return "gone";
    case FaultKind::kRestart:
      return "restart";
  }
  return "unknown";
}

std::vector<std::string> PresetNames() {
  return {"newcomer", "blackhole", "fail10", "fail400", "surge10k", "max", "ci"};
}

std::optional<Scenario> Preset(std::string_view name) {
  if (name == "newcomer") return Newcomer();
  if (name == "blackhole") {
    return Faulty("blackhole", {seconds(60), FaultKind::kBlackHole, 1}, 100000);
  }
  if (name == "fail10") return Faulty("fail10", {seconds(60), FaultKind::kGone, 10}, 100000);
  if (name == "fail400") return Faulty("fail400", {seconds(60), FaultKind::kGone, 400}, 200000);
  if (name == "surge10k") return Surge10k();
  if (name == "max") return Max();
  if (name == "ci") return Ci();
  return std::nullopt;
}

std::string Validate(const Scenario& s) {
  if (s.replicas < 1 || s.replicas > kMaxReplicas) return "replicas must be 1..100";
  if (s.servers < 1 || s.servers > kMaxServers) return "servers must be 1..10000";
  if (s.capacity < 1) return "capacity must be at least 1";
  if (s.regions < 1 || s.regions > s.servers) return "regions must be 1..servers";
  const std::uint32_t in_region0 = (s.servers + s.regions - 1) / s.regions;
  if (s.newcomers >= in_region0) return "newcomers must leave region r0 an established server";
  std::uint64_t users = 0;
  for (const Surge& u : s.surges) {
    users += u.users;
    if (u.region && *u.region >= s.regions) return "a surge's region is not in the fleet";
    if (u.at + u.over > s.duration) return "a surge ends after the run";
  }
  if (users > kMaxUsers) return "at most 2,000,000 users";
  std::uint32_t faulty = 0;
  for (const Fault& f : s.faults) {
    faulty += f.servers;
    if (f.at > s.duration) return "a fault comes after the run";
  }
  if (faulty + s.newcomers > s.servers) return "more faulty servers than established ones";
  if (s.duration <= Ms(0)) return "duration must be positive";
  if (s.pubsub_min_ms < 0 || s.pubsub_max_ms < s.pubsub_min_ms || s.pubsub_max_ms > kMaxDelayMs) {
    return "pub/sub latency must be 0 <= min <= max <= 500 ms";
  }
  if (s.admit_rtt_min_ms < 0 || s.admit_rtt_max_ms < s.admit_rtt_min_ms ||
      s.admit_rtt_max_ms > kMaxDelayMs) {
    return "admission round trip must be 0 <= min <= max <= 500 ms";
  }
  if (s.choices_per_join < 1) return "choices per join must be at least 1";
  if (s.media_after < Ms(0)) return "media delay must not be negative";
  if (s.load_refresh <= Ms(0)) return "load refresh must be positive";
  if (s.admissions.empty()) return "no admission mode to run";
  return {};
}

}  // namespace vrouter::bench::fleetsim
