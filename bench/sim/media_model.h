// The media model of one simulated video server (SFU): what it would report to the router in
// `stats`, given how many users the router placed on it and how much time passed. Pure: no I/O,
// no clock reads; the caller passes the time (seconds since the simulation started).
//
// A behaviour takes effect at its switch time `at` (before it, the server is healthy):
//   healthy   peers = media_peers = assigned, media in and forwarded (fanout), cpu from load
//   blackhole reports low load (peers <= 2, cpu 0.05) while media keeps arriving for every
//             assigned user and nothing is forwarded (packets_out/bytes_out frozen): the incident
//   frozen    counters stop moving while peers = assigned (a wedged process); seq still advances
//   restart   at `at` the process restarts: seq and every counter back to 0, then healthy
//   dead      at `at` it disconnects for good
//   flapping  from `at`, disconnected then connected, alternating every `flap_period` seconds;
//             healthy while connected, counters and seq continue across reconnects
//   garbage   at `at` it sends a few malformed frames once, then stays healthy
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "proto/video_server_messages.h"

namespace vrouter::bench::sim {

enum class Behavior : std::uint8_t {
  kHealthy,
  kBlackhole,
  kFrozen,
  kRestart,
  kDead,
  kFlapping,
  kGarbage,
};

std::string_view BehaviorName(Behavior behavior);
std::optional<Behavior> BehaviorFromName(std::string_view name);

struct BehaviorSpec {
  Behavior behavior = Behavior::kHealthy;
  double at = 0;  // seconds after the start; the server is healthy before
};

struct ModelParams {
  std::uint32_t capacity = 500;
  double pps = 100;  // media packets per second each user sends
  double flap_period = 5;
  std::uint64_t bytes_per_packet = 1000;
};

// Packets an SFU forwards per packet received, in a crude room model: each packet goes to the
// other participants, at most 8 of them. 0 or 1 user: nothing is forwarded.
std::uint64_t Fanout(std::uint32_t assigned);

class MediaModel {
 public:
  MediaModel(BehaviorSpec spec, ModelParams params);

  const BehaviorSpec& spec() const { return spec_; }
  const ModelParams& params() const { return params_; }

  // True once the behaviour is in effect (t >= at).
  bool Switched(double t) const { return t >= spec_.at; }

  // Whether the server wants a router connection at time t: false for `dead` from `at` on, and
  // for `flapping` during its "down" half-periods (the first one starts at `at`).
  bool WantsConnection(double t) const;

  // `restart`: true once, when the switch time has come and the restart has not happened yet.
  // The caller then drops the connection (a restarted process reconnects) and calls Restart(t).
  bool RestartDue(double t) const;
  // Resets seq and every counter to 0; the model is healthy afterwards. Time restarts at t:
  // the next report counts media from t on.
  void Restart(double t);

  // `garbage`: true once, when the switch time has come and the frames were not sent yet. The
  // caller sends them and calls MarkGarbageSent().
  bool GarbageDue(double t) const;
  void MarkGarbageSent() { garbage_sent_ = true; }

  // The next report at time t (t not before the previous report's time), with `assigned` users
  // placed on this server by the router. Advances seq by one and the counters by the media of
  // the elapsed time according to the behaviour in effect at t.
  proto::Stats NextStats(double t, std::uint32_t assigned);

  // The seq the next report will carry.
  std::uint64_t next_seq() const { return seq_; }
  std::uint64_t reports() const { return reports_; }
  bool restarted() const { return restarted_; }

 private:
  // The behaviour that shapes the counters at time t (restart, garbage, flapping and dead are
  // healthy while they report).
  Behavior MediaBehavior(double t) const;

  BehaviorSpec spec_;
  ModelParams params_;
  std::uint64_t seq_ = 0;
  std::uint64_t reports_ = 0;
  double last_t_ = 0;
  // Packets received, fractional, so that a rate below one packet per report still accrues.
  double packets_in_exact_ = 0;
  std::uint64_t packets_in_ = 0;
  std::uint64_t packets_out_ = 0;
  bool restarted_ = false;
  bool garbage_sent_ = false;
};

}  // namespace vrouter::bench::sim
