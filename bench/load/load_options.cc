#include "bench/load/load_options.h"

#include <cstdint>
#include <utility>

#include "router/base/options.h"
#include "router/base/result.h"

namespace vrouter::bench::load {

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPeople:
      return "people";
    case Mode::kLookup:
      return "lookup";
    case Mode::kEcho:
      return "echo";
    case Mode::kIdle:
      return "idle";
  }
  return "?";
}

namespace {

namespace options = base::options;
using options::Range;

std::string UrlText(const sim::Url& u) {
  const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  return u.scheme + "://" + host + ":" + std::to_string(u.port) + u.target;
}

// --urls: one or more, all ws:// or all wss://.
base::Status<> ParseUrls(std::string_view text, std::vector<sim::Url>& out) {
  out.clear();
  for (const std::string& item : sim::SplitList(text)) {
    auto url = sim::ParseUrl(item, {"ws", "wss"});
    if (auto* err = url.error_message()) return base::Fail("'" + item + "': " + *err);
    out.push_back(std::get<sim::Url>(std::move(url)));
  }
  if (out.empty()) return base::Fail("at least one URL");
  for (const auto& u : out) {
    if (u.scheme != out.front().scheme) return base::Fail("mix of ws and wss");
  }
  return {};
}

std::string ShowUrls(const std::vector<sim::Url>& urls) {
  std::string out;
  for (const auto& u : urls) out += (out.empty() ? "" : ",") + UrlText(u);
  return out;
}

// --surge ON,OFF (seconds).
base::Status<> ParseSurge(std::string_view text, LoadOptions& o) {
  const auto parts = sim::SplitList(text);
  std::optional<double> on, off;
  if (parts.size() == 2) {
    if (auto v = options::ParseReal(parts[0], Range::Any()); v.index() == 1) on = std::get<1>(v);
    if (auto v = options::ParseReal(parts[1], Range::Any()); v.index() == 1) off = std::get<1>(v);
  }
  if (!on || !off) return base::Fail("'" + std::string(text) + "' is not ON,OFF in seconds");
  if (*on <= 0 || *off < 0) return base::Fail("ON must be > 0, OFF >= 0");
  o.surge_on = on;
  o.surge_off = *off;
  return {};
}

std::string ShowSurge(const LoadOptions& o) {
  if (!o.surge_on) return {};
  return options::FormatNumber(*o.surge_on) + "," + options::FormatNumber(o.surge_off);
}

// --broken ID@SECONDS.
base::Status<> ParseBroken(std::string_view text, LoadOptions& o) {
  const auto at = text.rfind('@');
  if (at == std::string_view::npos || at == 0)
    return base::Fail("'" + std::string(text) + "' is not ID@SECONDS");
  auto seconds = options::ParseReal(text.substr(at + 1), Range::AtLeast(0));
  if (seconds.index() != 1) return base::Fail("SECONDS must be a number >= 0");
  o.broken_server = std::string(text.substr(0, at));
  o.broken_at = std::get<1>(seconds);
  return {};
}

std::string ShowBroken(const LoadOptions& o) {
  if (o.broken_server.empty()) return {};
  return o.broken_server + "@" + options::FormatNumber(o.broken_at);
}

base::Status<> ParseT0(std::string_view text, std::optional<std::int64_t>& out) {
  auto v = options::ParseWhole(text, {INT64_MIN, INT64_MAX});
  if (v.index() == 0)
    return base::Fail("'" + std::string(text) + "' is not a time in ms since 1970");
  out = v.index() == 1 ? std::get<1>(v) : static_cast<std::int64_t>(std::get<2>(v));
  return {};
}

std::string ShowT0(const std::optional<std::int64_t>& t0) {
  return t0 ? std::to_string(*t0) : std::string();
}

options::Table<LoadOptions> MakeTable() {
  options::Table<LoadOptions> t(
      "usage: vrouter_load --urls URL[,URL...] --users-total N [--secret-file FILE] [options]\n",
      /*env_prefix=*/"");
  std::vector<std::pair<std::string, Mode>> modes;
  for (Mode m : {Mode::kPeople, Mode::kLookup, Mode::kEcho, Mode::kIdle}) {
    modes.emplace_back(ModeName(m), m);
  }
  auto whole = [](auto& o) -> auto& { return o; };
  // clang-format off
  t.Section("vrouter_load: simulated people on real sockets against vrouter replicas (bench/run "
            "drives it)");
  t.Custom("urls", VROUTER_FIELD(urls), "URLS",
           "ws://HOST:PORT/v1/client[,...] or wss://...; each connect picks one at random",
           ParseUrls, ShowUrls).Required();
  t.Text("ca", VROUTER_FIELD(ca_file),
         "wss: PEM to verify the router's certificate (default: none)").Value("FILE");
  t.Text("secret-file", VROUTER_FIELD(secret_file), "HS256 client-token key (not for --mode echo)")
      .Value("FILE");
  t.Integer("process", VROUTER_FIELD(process), Range::Any(), "this process's number, 0..P-1");
  t.Integer("processes", VROUTER_FIELD(processes), Range::AtLeast(1),
            "generator processes in the run");
  t.Integer("users-total", VROUTER_FIELD(crowd.users_total), Range::AtLeast(1),
            "users of the whole run; this process plays those with index % P == process")
      .Required();
  t.Integer("space-size", VROUTER_FIELD(crowd.space_size), Range::AtLeast(1), "users per space");
  t.Choice("mode", VROUTER_FIELD(mode), modes, "what each user does");
  t.Real("ramp", VROUTER_FIELD(ramp), Range::AtLeast(0),
         "new connections per second in this process; 0: all at once");
  t.Real("duration", VROUTER_FIELD(duration), Range::Above(0), "seconds, then close all");
  t.Real("rate", VROUTER_FIELD(rate), Range::AtLeast(0),
         "lookups per second in this process (paced); lookup/echo with 0: closed loop");
  t.Real("rate-after", VROUTER_FIELD(rate_after), Range::AtLeast(0),
         "seconds after the start before paced lookups begin (measure after a ramp, not during "
         "it)");
  t.Integer("inflight", VROUTER_FIELD(inflight), Range::In(1, 1000),
            "closed loop: requests outstanding per connection");
  t.Integer("step-ms", VROUTER_FIELD(step_ms), Range::AtLeast(1), "people: walking step");
  t.Integer("tick-us", VROUTER_FIELD(tick_us), Range::In(50, 100'000), "pacing granularity");
  t.Custom("surge", whole, "ON,OFF",
           "all connect at once, hold ON s, close all, OFF s, again", ParseSurge, ShowSurge);
  t.Custom("broken", whole, "ID@S",
           "from S s after t0, users on server ID get no media and report no_media", ParseBroken,
           ShowBroken);
  t.Switch("expect-drops", VROUTER_FIELD(expect_drops),
           "replicas are killed on purpose: dropped connections and refused reconnects are "
           "expected");
  t.Custom("t0-unix-ms", VROUTER_FIELD(t0_unix_ms), "MS",
           "start of the run shared by all processes (default: now)", ParseT0, ShowT0);
  t.Text("timeline", VROUTER_FIELD(timeline_file), "JSON lines, one per second").Value("FILE");
  t.Text("report", VROUTER_FIELD(report_file), "JSON summary at exit").Value("FILE");
  // clang-format on
  using Error = options::Error;
  t.Check([](const LoadOptions& o) -> std::optional<Error> {
    if (o.ca_file.empty() || o.tls()) return std::nullopt;
    return Error{options::ErrorCode::kConflict, "ca", "--ca needs wss:// URLs"};
  });
  t.Check([](const LoadOptions& o) -> std::optional<Error> {
    if (o.mode == Mode::kEcho || !o.secret_file.empty()) return std::nullopt;
    return Error{options::ErrorCode::kRequired, "secret-file",
                 "--secret-file is required (except with --mode echo)"};
  });
  t.Check([](const LoadOptions& o) -> std::optional<Error> {
    if (o.process < o.processes) return std::nullopt;
    return Error{options::ErrorCode::kConflict, "process", "--process must be in 0..--processes-1"};
  });
  return t;
}

}  // namespace

LoadParse ParseLoadOptions(int argc, const char* const* argv) {
  static const options::Table<LoadOptions> table = MakeTable();
  return table.ParseMain(argc, argv);
}

}  // namespace vrouter::bench::load
