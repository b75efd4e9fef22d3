#include "bench/load/load_options.h"

#include <boost/program_options.hpp>
#include <cmath>
#include <sstream>

namespace vrouter::bench::load {
namespace po = boost::program_options;

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

bool Finite(double v) { return std::isfinite(v); }

std::optional<Mode> ParseMode(const std::string& text) {
  for (Mode m : {Mode::kPeople, Mode::kLookup, Mode::kEcho, Mode::kIdle}) {
    if (text == ModeName(m)) return m;
  }
  return std::nullopt;
}

}  // namespace

LoadParse ParseLoadOptions(int argc, const char* const* argv) {
  LoadParse out;
  auto fail = [&](std::string message) {
    out.options.reset();
    out.message = std::move(message);
    out.exit_code = 2;
    return out;
  };
  LoadOptions o;
  std::string urls;
  std::string mode = "people";
  std::string surge;
  std::string broken;
  std::int64_t t0 = 0;
  std::uint64_t users_total = 0;
  po::options_description desc(
      "vrouter_load: simulated people on real sockets against vrouter replicas "
      "(bench/run drives it)");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help")
    ("urls", po::value(&urls)->required(),
     "ws://HOST:PORT/v1/client[,...] or wss://...; each connect picks one at random")
    ("ca", po::value(&o.ca_file), "wss: PEM to verify the router's certificate (default: none)")
    ("secret-file", po::value(&o.secret_file), "HS256 client-token key (not for --mode echo)")
    ("process", po::value(&o.process)->default_value(0), "this process's number, 0..P-1")
    ("processes", po::value(&o.processes)->default_value(1), "generator processes in the run")
    ("users-total", po::value(&users_total)->required(),
     "users of the whole run; this process plays those with index % P == process")
    ("space-size", po::value(&o.crowd.space_size)->default_value(o.crowd.space_size),
     "users per space")
    ("mode", po::value(&mode)->default_value(mode), "people, lookup, echo or idle")
    ("ramp", po::value(&o.ramp)->default_value(o.ramp),
     "new connections per second in this process; 0: all at once")
    ("duration", po::value(&o.duration)->default_value(o.duration), "seconds, then close all")
    ("rate", po::value(&o.rate)->default_value(o.rate),
     "lookups per second in this process (paced); lookup/echo with 0: closed loop")
    ("rate-after", po::value(&o.rate_after)->default_value(o.rate_after),
     "seconds after the start before paced lookups begin (measure after a ramp, not during it)")
    ("inflight", po::value(&o.inflight)->default_value(o.inflight),
     "closed loop: requests outstanding per connection")
    ("step-ms", po::value(&o.step_ms)->default_value(o.step_ms), "people: walking step")
    ("tick-us", po::value(&o.tick_us)->default_value(o.tick_us), "pacing granularity")
    ("surge", po::value(&surge), "ON,OFF: all connect at once, hold ON s, close all, OFF s, again")
    ("broken", po::value(&broken),
     "ID@S: from S s after t0, users on server ID get no media and report no_media")
    ("expect-drops", po::bool_switch(&o.expect_drops),
     "replicas are killed on purpose: dropped connections and refused reconnects are expected")
    ("t0-unix-ms", po::value(&t0), "start of the run shared by all processes (default: now)")
    ("timeline", po::value(&o.timeline_file), "JSON lines, one per second")
    ("report", po::value(&o.report_file), "JSON summary at exit");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help") != 0) {
      std::ostringstream text;
      text << desc;
      out.message = text.str();
      return out;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return fail(e.what());
  }
  for (const std::string& text : sim::SplitList(urls)) {
    auto url = sim::ParseUrl(text, {"ws", "wss"});
    if (auto* err = std::get_if<std::string>(&url)) return fail("--urls '" + text + "': " + *err);
    o.urls.push_back(std::get<sim::Url>(std::move(url)));
  }
  if (o.urls.empty()) return fail("--urls: at least one URL");
  for (const auto& u : o.urls) {
    if (u.scheme != o.urls.front().scheme) return fail("--urls: mix of ws and wss");
  }
  if (!o.ca_file.empty() && !o.tls()) return fail("--ca needs wss:// URLs");
  auto m = ParseMode(mode);
  if (!m) return fail("--mode '" + mode + "': one of people, lookup, echo, idle");
  o.mode = *m;
  if (o.mode != Mode::kEcho && o.secret_file.empty()) return fail("--secret-file is required");
  if (o.processes == 0 || o.process >= o.processes) {
    return fail("--process must be in 0..--processes-1");
  }
  if (users_total == 0) return fail("--users-total must be > 0");
  o.crowd.users_total = users_total;
  if (o.crowd.space_size == 0) return fail("--space-size must be > 0");
  if (!Finite(o.ramp) || o.ramp < 0) return fail("--ramp must be >= 0");
  if (!Finite(o.duration) || o.duration <= 0) return fail("--duration must be > 0");
  if (!Finite(o.rate) || o.rate < 0) return fail("--rate must be >= 0");
  if (!Finite(o.rate_after) || o.rate_after < 0) return fail("--rate-after must be >= 0");
  if (o.inflight == 0 || o.inflight > 1000) return fail("--inflight must be 1..1000");
  if (o.step_ms == 0) return fail("--step-ms must be > 0");
  if (o.tick_us < 50 || o.tick_us > 100'000) return fail("--tick-us must be 50..100000");
  if (!surge.empty()) {
    const auto parts = sim::SplitList(surge);
    double on = 0;
    double off = 0;
    try {
      if (parts.size() != 2) throw std::invalid_argument("two numbers");
      on = std::stod(parts[0]);
      off = std::stod(parts[1]);
    } catch (const std::exception&) {
      return fail("--surge '" + surge + "': ON,OFF in seconds");
    }
    if (!Finite(on) || !Finite(off) || on <= 0 || off < 0) {
      return fail("--surge: ON must be > 0, OFF >= 0");
    }
    o.surge_on = on;
    o.surge_off = off;
  }
  if (!broken.empty()) {
    const auto at = broken.rfind('@');
    try {
      if (at == std::string::npos || at == 0) throw std::invalid_argument("no @");
      o.broken_server = broken.substr(0, at);
      o.broken_at = std::stod(broken.substr(at + 1));
    } catch (const std::exception&) {
      return fail("--broken '" + broken + "': ID@SECONDS");
    }
    if (!Finite(o.broken_at) || o.broken_at < 0) return fail("--broken: SECONDS must be >= 0");
  }
  if (vm.count("t0-unix-ms") != 0) o.t0_unix_ms = t0;
  out.options = std::move(o);
  return out;
}

}  // namespace vrouter::bench::load
