// What a video server's `stats` reports say about it, reduced to rates and a forwarding verdict.
// Pure: the caller passes the router's own clock reading with every report.
//
// Self-reports are not trusted for what they claim ("I have 2 peers") but their monotonic counters
// are hard to fake by accident: a server that receives media and forwards none is not doing its
// job whatever load it reports. That is the black hole of the NeurIPS 2020 load test.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proto/video_server_messages.h"
#include "router/base/time.h"

namespace vrouter::fleet {

// Rates between two accepted reports. The time they cover is the router's clock between the two
// arrivals, but never less than the reports' sequence numbers say passed at the announced
// interval: a report delayed on its way (or a router stall that hands several over at once)
// must not turn one interval's packets into a rate many times too high.
struct StatsRates {
  double seconds = 0;     // the time the counters' deltas are divided by
  double packets_in = 0;  // per second
  double packets_out = 0;
  double bytes_in = 0;
  double bytes_out = 0;
};

enum class StatsVerdict {
  kAccepted,  // rates computed against the previous report
  kBaseline,  // first report of a registration, or first after a gap: no rate yet
  kReset,     // a counter went down (the server restarted): new baseline, no rate
  kReordered  // seq not above the last accepted one: ignored
};
inline constexpr int kStatsVerdictCount = 4;
std::string_view StatsVerdictName(StatsVerdict verdict);

// Turns the sequence of reports from one server into rates. Handles reordering (by seq, within a
// registration) and counter resets (a counter that decreases).
class CounterTracker {
 public:
  struct Result {
    StatsVerdict verdict = StatsVerdict::kBaseline;
    std::optional<StatsRates> rates;  // set when kAccepted
  };

  // A new connection (`register`): the server may have restarted, so seq restarts are allowed.
  // Counters are kept: a reconnect without a restart keeps them monotonic, and one with a restart
  // shows up as a decrease.
  void NewRegistration() { seq_known_ = false; }

  // `interval`: the report interval the server was given (the floor on the time between two
  // consecutive reports).
  Result Ingest(const proto::Stats& stats, base::SteadyTime now,
                std::chrono::milliseconds interval);

  const std::optional<proto::Stats>& last() const { return last_; }

 private:
  std::optional<proto::Stats> last_;
  base::SteadyTime last_at_{};
  bool seq_known_ = false;
};

// Whether a server moves the media it receives, judged from one interval's rates.
enum class Forwarding {
  kUnknown,        // no rates yet (first report, or just reset)
  kIdle,           // too little media in to judge (nobody is sending), or nothing to forward
                   // (the server says it serves no outgoing streams: everyone is alone)
  kOk,             // media in, media out
  kNotForwarding,  // media in, (almost) nothing out: the black hole
  kFrozen,         // every counter stood still while the server has peers
};
std::string_view ForwardingName(Forwarding f);

struct ForwardingParams {
  // Below this many packets/s in, forwarding is not judged. 200 packets/s is about two users'
  // audio and video: a lone user in a room legitimately has nobody to forward to.
  double min_packets_in_rate = 200;
  // Out/in ratio under which a server counts as not forwarding. A healthy SFU forwards each packet
  // to every other participant (ratio >= 1 in any room of two or more); 0.1 leaves room for rooms
  // of one and for simulcast layers being dropped, and is still far from a server that forwards
  // nothing.
  double min_out_in_ratio = 0.1;
  // How long peers must have been on a server before they count as peers that should be moving
  // media: the router's own users (a freshly placed user has not reached the server yet, and
  // under a shared store the fleet-wide count reaches the server a refresh or two late), and the
  // peers a server reports while nothing has moved yet (ICE and DTLS take seconds after the
  // signalling that makes a peer). Without it, a healthy server that was just given its first
  // users looks frozen.
  std::chrono::milliseconds media_grace{5000};
};

// What the server says it should be forwarding (stats.streams_in / streams_out; absent for
// servers that predate the fields, which are judged on packets alone).
struct ForwardingExpectation {
  std::optional<std::uint32_t> streams_in;
  std::optional<std::uint32_t> streams_out;
};

// Whether not one counter moved in the interval (not even RTCP).
bool Still(const StatsRates& rates);

// `peers` is how many peers should be moving media: the larger of what the server reports (once
// its peers have moved media, or have been there `media_grace`) and how many users the router
// itself placed there more than `media_grace` ago (a server that reports zero peers while it
// holds our users does not escape the frozen check).
//
// With the streams known, packets out are judged against what they should be: each stream in is
// sent to streams_out / streams_in subscribers on average, so the expected rate out is packets in
// * streams_out / streams_in, and a server under min_out_in_ratio of that does not forward. A
// server serving no outgoing stream has nothing to forward (idle), whatever comes in. The
// streams are self-reported, so they can only excuse silence that the packets alone would blame
// on the server; a server that lies "streams_out 0" while holding rooms is still caught by its
// clients' failure reports.
Forwarding JudgeForwarding(const StatsRates& rates, std::int64_t peers,
                           const ForwardingExpectation& expected, const ForwardingParams& params);

}  // namespace vrouter::fleet
