#include "router/fleet/registration_policy.h"

#include <algorithm>
#include <cctype>
#include <optional>

namespace vrouter::fleet {
namespace {

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

struct UrlParts {
  std::string scheme;  // lower case
  std::string host;    // lower case, without port
};

// scheme "://" host [":" port] ["/" ...], read strictly: a host of letters, digits, dots and
// hyphens (or a bracketed IPv6 address), a numeric port, no user info (wss://good@evil shows one
// host and connects to another), and no backslash or space anywhere (browsers read "\" as "/" in
// wss and https URLs: wss://evil.example\.media.example.com/ goes to evil.example).
std::optional<UrlParts> SplitUrl(std::string_view url) {
  if (url.find_first_of("\\ \t") != std::string_view::npos) return std::nullopt;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  UrlParts parts{LowerCase(url.substr(0, sep)), {}};
  if (!std::all_of(parts.scheme.begin(), parts.scheme.end(),
                   [](char c) { return (c >= 'a' && c <= 'z') || c == '+' || c == '-'; })) {
    return std::nullopt;
  }
  const std::string_view rest = url.substr(sep + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    const auto close = host.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view inside = host.substr(1, close - 1);
    if (inside.empty() || !std::all_of(inside.begin(), inside.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
        })) {
      return std::nullopt;
    }
    const std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':') return std::nullopt;
    if (!after.empty()) port = after.substr(1);
    host = host.substr(0, close + 1);
  } else {
    if (const auto colon = host.find(':'); colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
    }
    if (host.empty() || host.front() == '.' || host.front() == '-' ||
        !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-';
        })) {
      return std::nullopt;
    }
  }
  if (authority.size() > host.size() &&
      (port.empty() || port.size() > 5 ||
       !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))) {
    return std::nullopt;
  }
  parts.host = LowerCase(host);
  if (parts.host.ends_with('.')) parts.host.pop_back();  // "example.com." is "example.com"
  return parts;
}

bool HostAllowed(std::string_view host, const std::vector<std::string>& suffixes) {
  if (suffixes.empty()) return true;
  return std::any_of(suffixes.begin(), suffixes.end(), [&](const std::string& suffix) {
    std::string s = LowerCase(suffix);
    if (s.starts_with('.')) s.erase(0, 1);  // ".example.com" means the same as "example.com"
    return host == s ||
           (host.size() > s.size() && host.ends_with(s) && host[host.size() - s.size() - 1] == '.');
  });
}

}  // namespace

std::string_view RegistrationRefusalName(RegistrationRefusal refusal) {
  constexpr std::string_view kNames[] = {"declared_mismatch", "url_malformed", "url_scheme",
                                         "url_host"};
  return kNames[static_cast<int>(refusal)];
}

std::string CheckUrlScheme(std::string_view scheme) {
  const std::string s = LowerCase(scheme);
  if (s == "wss" || s == "https" || s == "ws" || s == "http") return {};
  return "'" + std::string(scheme) + "' is not one of wss, https, ws, http";
}

std::variant<Accepted, Refused> VetRegistration(const VideoServer& offered,
                                                const VideoServer* declared,
                                                const RegistrationPolicy& policy) {
  if (declared != nullptr) {
    // The operator's fleet file decides; the server must agree with it.
    std::string mismatch;
    if (offered.url != declared->url) mismatch = "url '" + declared->url + "'";
    if (offered.region != declared->region) {
      mismatch += (mismatch.empty() ? "" : ", ") + std::string("region '") + declared->region + "'";
    }
    if (offered.capacity != declared->capacity) {
      mismatch += (mismatch.empty() ? "" : ", ") + std::string("capacity ") +
                  std::to_string(declared->capacity);
    }
    if (!mismatch.empty()) {
      return Refused{RegistrationRefusal::kDeclaredMismatch,
                     "server '" + offered.id + "' is declared with " + mismatch +
                         "; register with the declared values"};
    }
    VideoServer server = *declared;
    server.monitored = true;
    return Accepted{std::move(server), false};
  }
  const auto url = SplitUrl(offered.url);
  if (!url) {
    return Refused{RegistrationRefusal::kUrlMalformed,
                   "url must be scheme://host[:port][/path] without user info"};
  }
  const auto& schemes = policy.url_schemes;
  if (std::none_of(schemes.begin(), schemes.end(),
                   [&](const std::string& s) { return LowerCase(s) == url->scheme; })) {
    std::string allowed;
    for (const auto& s : schemes) allowed += (allowed.empty() ? "" : ", ") + s;
    return Refused{RegistrationRefusal::kUrlScheme,
                   "url scheme '" + url->scheme + "' is not allowed (allowed: " + allowed + ")"};
  }
  if (!HostAllowed(url->host, policy.url_hosts)) {
    return Refused{RegistrationRefusal::kUrlHost,
                   "url host '" + url->host + "' is outside the allowed host names"};
  }
  Accepted out{offered, false};
  out.server.monitored = true;
  if (out.server.capacity > policy.max_capacity) {
    out.server.capacity = policy.max_capacity;
    out.capacity_capped = true;
  }
  return out;
}

}  // namespace vrouter::fleet
