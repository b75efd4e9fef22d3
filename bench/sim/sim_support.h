// Pure helpers of the simulated video-server fleet (bench/sim/sim_video_server.cc): flag and URL
// parsing, the admin API's answer, reconnect backoff, the malformed frames of `garbage`, and the
// JSON summary printed at exit. No I/O, no clock reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "bench/sim/media_model.h"
#include "router/base/result.h"

namespace vrouter::bench::sim {

// `--behavior ID=MODE[@SECONDS]`, e.g. "sim-3=blackhole@20". An error message on failure.
struct BehaviorFlag {
  std::string id;
  BehaviorSpec spec;
};
base::Result<BehaviorFlag> ParseBehaviorFlag(std::string_view text);

// scheme://host[:port][/target]. `host` is without brackets for IPv6 literals; `target` is "/"
// when absent. The port defaults to 80 (ws, http) or 443 (wss, https).
struct Url {
  std::string scheme;
  std::string host;
  std::uint16_t port = 0;
  std::string target;
};
// Only the schemes listed are accepted. An error message on failure.
base::Result<Url> ParseUrl(std::string_view text, const std::vector<std::string_view>& schemes);

// Replaces every "{id}" in `tmpl` with `id`.
std::string ExpandTemplate(std::string_view tmpl, std::string_view id);

// "a,b,,c" -> {"a","b","c"} (empty items dropped, spaces around items trimmed).
std::vector<std::string> SplitList(std::string_view csv);

// Percent-encodes everything but RFC 3986 unreserved characters (for ids in request paths).
std::string PercentEncode(std::string_view text);

// The secret file's content without surrounding whitespace (a trailing newline is usual).
std::string TrimSecret(std::string_view text);

// `"assigned"` of the admin API's GET /v1/servers/{id} answer (a JSON object), clamped to
// uint32; nullopt when the body is not such an object.
std::optional<std::uint32_t> ParseAssigned(std::string_view body);

// Jittered exponential backoff before reconnect attempt `attempt` (0 = first retry):
// min(cap, base * 2^attempt) scaled by a factor in [0.5, 1) from `unit` in [0, 1).
std::chrono::milliseconds Backoff(int attempt, double unit,
                                  std::chrono::milliseconds base = std::chrono::milliseconds(250),
                                  std::chrono::milliseconds cap = std::chrono::milliseconds(10000));

// The frames `garbage` sends at its switch time, each of which the router must refuse with an
// `error` while keeping the connection: invalid JSON, a stats with wrong field types, a stats
// with cpu 7 (out of 0..1) carrying `seq`, and an unknown message type.
std::vector<std::string> GarbageFrames(std::uint64_t seq);

// ---- the summary printed at exit ----

struct StatePush {
  std::string state;
  std::string reason;
  double t = 0;  // seconds since the start
};
struct ErrorRecord {
  std::string code;
  std::string message;
  double t = 0;
};
struct ServerRecord {
  std::string id;
  std::string region;
  std::string url;
  std::string behavior;  // BehaviorName
  double switch_at = 0;
  std::uint64_t connects = 0;       // WebSocket handshakes that succeeded
  std::uint64_t registrations = 0;  // `registered` received
  std::uint64_t disconnects = 0;    // connections lost or dropped after a handshake
  std::string last_state;           // from `registered` or the last `state` push; "" if none
  std::vector<StatePush> state_pushes;
  std::uint64_t stats_sent = 0;
  std::uint64_t errors_received = 0;
  std::vector<ErrorRecord> errors;  // the first kMaxErrorRecords
  std::uint64_t garbage_frames_sent = 0;
  std::optional<std::uint32_t> last_assigned;  // from the admin API; null if never known
  std::optional<std::uint16_t> last_close_code;
  bool connected_at_exit = false;
};
inline constexpr std::size_t kMaxErrorRecords = 32;

struct RunSummary {
  std::string router;
  std::string admin;
  double elapsed_s = 0;
  std::string stopped_by;  // "duration", "signal"
  std::vector<ServerRecord> servers;
};

// {"router":…,"admin":…,"elapsed_s":…,"stopped_by":…,"servers":{"<id>":{…},…}}
std::string SummaryJson(const RunSummary& summary);

}  // namespace vrouter::bench::sim
