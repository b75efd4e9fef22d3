#include "bench/fleetsim/cli.h"

#include <charconv>
#include <optional>
#include <tuple>

namespace vrouter::bench::fleetsim {
namespace {

template <class T>
std::optional<T> Number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "A,B" -> {A, B}
std::optional<std::pair<double, double>> Range(std::string_view text) {
  const auto comma = text.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  auto a = Number<double>(text.substr(0, comma));
  auto b = Number<double>(text.substr(comma + 1));
  if (!a || !b) return std::nullopt;
  return std::pair{*a, *b};
}

std::optional<std::vector<Admission>> Modes(std::string_view text) {
  std::vector<Admission> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto name = text.substr(0, comma);
    const auto mode = AdmissionByName(name);
    if (!mode) return std::nullopt;
    out.push_back(*mode);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace

std::string Usage() {
  std::string presets;
  for (const auto& p : PresetNames()) presets += (presets.empty() ? "" : ", ") + p;
  return "usage: fleetsim [--scenario NAME]... [--seed N] [--replicas N] [--servers N]\n"
         "                [--capacity N] [--regions N] [--modes "
         "baseline,shared,local_share,shared_per_report]\n"
         "                [--pubsub-ms MIN,MAX] [--admit-rtt-ms MIN,MAX] [--choices N]\n"
         "                [--media-after-ms N] [--load-refresh-ms N]\n"
         "                [--out DIR] [--commit SHA] [--check]\n"
         "scenarios: " +
         presets +
         " (default newcomer; repeatable)\n"
         "--check: exit 1 when the shared mode misses a target\n";
}

std::variant<Options, UsageError> ParseOptions(std::span<const std::string_view> args) {
  Options o;
  std::vector<std::string> names;
  std::optional<std::uint64_t> seed;
  std::optional<std::uint32_t> replicas, servers, capacity, regions, choices, media_after,
      load_refresh;
  std::optional<std::vector<Admission>> modes;
  std::optional<std::pair<double, double>> pubsub, rtt;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (flag == "--help" || flag == "-h") return UsageError{Usage()};
    if (flag == "--check") {
      o.check = true;
      continue;
    }
    if (i + 1 >= args.size()) return UsageError{std::string(flag) + " needs a value"};
    const std::string_view value = args[++i];
    auto bad = [&] {
      return UsageError{"bad value for " + std::string(flag) + ": " + std::string(value)};
    };
    auto count = [&](std::optional<std::uint32_t>& into) {
      into = Number<std::uint32_t>(value);
      return into.has_value();
    };
    if (flag == "--scenario") {
      if (!Preset(value)) return UsageError{"unknown scenario: " + std::string(value)};
      names.emplace_back(value);
    } else if (flag == "--seed") {
      seed = Number<std::uint64_t>(value);
      if (!seed) return bad();
    } else if (flag == "--replicas") {
      if (!count(replicas)) return bad();
    } else if (flag == "--servers") {
      if (!count(servers)) return bad();
    } else if (flag == "--capacity") {
      if (!count(capacity)) return bad();
    } else if (flag == "--regions") {
      if (!count(regions)) return bad();
    } else if (flag == "--choices") {
      if (!count(choices)) return bad();
    } else if (flag == "--media-after-ms") {
      if (!count(media_after)) return bad();
    } else if (flag == "--load-refresh-ms") {
      if (!count(load_refresh)) return bad();
    } else if (flag == "--modes") {
      modes = Modes(value);
      if (!modes) return bad();
    } else if (flag == "--pubsub-ms") {
      pubsub = Range(value);
      if (!pubsub) return bad();
    } else if (flag == "--admit-rtt-ms") {
      rtt = Range(value);
      if (!rtt) return bad();
    } else if (flag == "--out") {
      o.out = value;
    } else if (flag == "--commit") {
      o.commit = value;
    } else {
      return UsageError{"unknown flag: " + std::string(flag)};
    }
  }
  if (names.empty()) names.emplace_back("newcomer");
  for (const auto& name : names) {
    Scenario s = *Preset(name);
    if (seed) s.seed = *seed;
    if (replicas) s.replicas = *replicas;
    if (servers) s.servers = *servers;
    if (capacity) s.capacity = *capacity;
    if (regions) s.regions = *regions;
    if (choices) s.choices_per_join = *choices;
    if (modes) s.admissions = *modes;
    if (media_after) s.media_after = Ms(*media_after);
    if (load_refresh) s.load_refresh = Ms(*load_refresh);
    if (pubsub) std::tie(s.pubsub_min_ms, s.pubsub_max_ms) = *pubsub;
    if (rtt) std::tie(s.admit_rtt_min_ms, s.admit_rtt_max_ms) = *rtt;
    if (auto problem = Validate(s); !problem.empty()) {
      std::string message = "scenario " + name;
      message += ": ";
      message += problem;
      return UsageError{std::move(message)};
    }
    o.scenarios.push_back(std::move(s));
  }
  return o;
}

}  // namespace vrouter::bench::fleetsim
