#include "bench/sim/sim_support.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <limits>

#include "router/base/result.h"

namespace vrouter::bench::sim {
namespace {

std::string_view Trim(std::string_view s) {
  const auto not_space = [](char c) {
    return c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v';
  };
  while (!s.empty() && !not_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && !not_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

base::Result<BehaviorFlag> ParseBehaviorFlag(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return base::Fail("--behavior " + quoted + ": expected ID=MODE[@SECONDS]");
  }
  BehaviorFlag out;
  out.id = std::string(text.substr(0, eq));
  std::string_view rest = text.substr(eq + 1);
  std::string_view mode = rest;
  const auto at = rest.find('@');
  if (at != std::string_view::npos) {
    mode = rest.substr(0, at);
    const std::string seconds(rest.substr(at + 1));
    char* end = nullptr;
    const double value = seconds.empty() ? -1 : std::strtod(seconds.c_str(), &end);
    if (seconds.empty() || end != seconds.c_str() + seconds.size() || !std::isfinite(value) ||
        value < 0) {
      return base::Fail("--behavior " + quoted + ": '@" + seconds +
                        "' is not a number of seconds >= 0");
    }
    out.spec.at = value;
  }
  const auto behavior = BehaviorFromName(mode);
  if (!behavior) {
    return base::Fail("--behavior " + quoted + ": unknown mode '" + std::string(mode) +
                      "' (healthy, blackhole, frozen, restart, dead, flapping, garbage)");
  }
  out.spec.behavior = *behavior;
  return out;
}

base::Result<Url> ParseUrl(std::string_view text, const std::vector<std::string_view>& schemes) {
  const std::string quoted = "'" + std::string(text) + "'";
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) return base::Fail(quoted + ": expected scheme://host:port");
  Url url;
  url.scheme = std::string(text.substr(0, sep));
  if (std::find(schemes.begin(), schemes.end(), url.scheme) == schemes.end()) {
    std::string allowed;
    for (auto s : schemes) allowed += (allowed.empty() ? "" : ", ") + std::string(s);
    return base::Fail(quoted + ": scheme must be one of " + allowed);
  }
  std::string_view rest = text.substr(sep + 3);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return base::Fail(quoted + ": unterminated '[' in host");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return base::Fail(quoted + ": unexpected characters after ']'");
      port = after.substr(1);
      if (port.empty()) return base::Fail(quoted + ": empty port");
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return base::Fail(quoted + ": empty port");
    }
  }
  if (url.host.empty()) return base::Fail(quoted + ": empty host");
  if (port.empty()) {
    url.port = (url.scheme == "wss" || url.scheme == "https") ? 443 : 80;
  } else {
    unsigned value = 0;
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
      return base::Fail(quoted + ": bad port '" + std::string(port) + "'");
    }
    url.port = static_cast<std::uint16_t>(value);
  }
  return url;
}

std::string ExpandTemplate(std::string_view tmpl, std::string_view id) {
  constexpr std::string_view kToken = "{id}";
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const auto hit = tmpl.find(kToken, pos);
    out.append(tmpl.substr(pos, hit - pos));
    if (hit == std::string_view::npos) break;
    out.append(id);
    pos = hit + kToken.size();
  }
  return out;
}

std::vector<std::string> SplitList(std::string_view csv) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= csv.size()) {
    auto comma = csv.find(',', pos);
    if (comma == std::string_view::npos) comma = csv.size();
    const auto item = Trim(csv.substr(pos, comma - pos));
    if (!item.empty()) out.emplace_back(item);
    pos = comma + 1;
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string TrimSecret(std::string_view text) { return std::string(Trim(text)); }

std::optional<std::uint32_t> ParseAssigned(std::string_view body) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const boost::json::value* a = v.as_object().if_contains("assigned");
  if (a == nullptr) return std::nullopt;
  constexpr auto kMax = std::numeric_limits<std::uint32_t>::max();
  if (a->is_uint64())
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(a->as_uint64(), kMax));
  if (a->is_int64()) {
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(a->as_int64(), 0, kMax));
  }
  return std::nullopt;
}

std::chrono::milliseconds Backoff(int attempt, double unit, std::chrono::milliseconds base,
                                  std::chrono::milliseconds cap) {
  attempt = std::clamp(attempt, 0, 30);
  unit = std::clamp(std::isfinite(unit) ? unit : 0.0, 0.0, 1.0);
  const double full = std::min(static_cast<double>(cap.count()),
                               static_cast<double>(base.count()) * std::ldexp(1.0, attempt));
  return std::chrono::milliseconds(static_cast<std::int64_t>(full * (0.5 + 0.5 * unit)));
}

std::string SummaryJson(const RunSummary& summary) {
  namespace json = boost::json;
  json::object servers;
  for (const ServerRecord& r : summary.servers) {
    json::array pushes;
    for (const StatePush& p : r.state_pushes) {
      pushes.push_back(json::object{{"state", p.state}, {"reason", p.reason}, {"t", p.t}});
    }
    json::array errors;
    for (const ErrorRecord& e : r.errors) {
      errors.push_back(json::object{{"code", e.code}, {"message", e.message}, {"t", e.t}});
    }
    json::object o;
    o["region"] = r.region;
    o["url"] = r.url;
    o["behavior"] = r.behavior;
    o["switch_at"] = r.switch_at;
    o["connects"] = r.connects;
    o["registrations"] = r.registrations;
    o["disconnects"] = r.disconnects;
    o["last_state"] = r.last_state.empty() ? json::value(nullptr) : json::value(r.last_state);
    o["state_pushes"] = std::move(pushes);
    o["stats_sent"] = r.stats_sent;
    o["errors_received"] = r.errors_received;
    o["errors"] = std::move(errors);
    o["garbage_frames_sent"] = r.garbage_frames_sent;
    o["last_assigned"] = r.last_assigned ? json::value(*r.last_assigned) : json::value(nullptr);
    o["last_close_code"] =
        r.last_close_code ? json::value(*r.last_close_code) : json::value(nullptr);
    o["connected_at_exit"] = r.connected_at_exit;
    servers[r.id] = std::move(o);
  }
  json::object top;
  top["router"] = summary.router;
  top["admin"] = summary.admin;
  top["elapsed_s"] = summary.elapsed_s;
  top["stopped_by"] = summary.stopped_by;
  top["servers"] = std::move(servers);
  return json::serialize(top);
}

}  // namespace vrouter::bench::sim
