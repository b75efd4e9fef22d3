#include "router/store/gossip_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>

namespace vrouter::store {
namespace {

constexpr std::string_view kVersion = "v1";
constexpr std::string_view kDomain = "vrouter.fleet.v1\n";
constexpr std::size_t kMacHexDigits = 64;

// Hex HMAC-SHA256 of the domain, the header and the gossip, under `key`.
std::string Mac(std::string_view key, std::string_view header, std::string_view gossip) {
  std::string data;
  data.reserve(kDomain.size() + header.size() + 1 + gossip.size());
  data.append(kDomain).append(header).append("\n").append(gossip);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(std::size_t{2} * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0xf]);
  }
  return hex;
}

template <typename T>
bool Number(std::string_view s, T& out) {
  if (s.empty() || s.size() > 19) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string_view GossipAuthErrorName(GossipAuthError error) {
  static constexpr std::string_view kNames[kGossipAuthErrorCount] = {"unsigned", "bad_mac", "stale",
                                                                     "replayed"};
  return kNames[static_cast<std::size_t>(error)];
}

GossipSealer::GossipSealer(std::string key, std::string sender)
    : key_(std::move(key)), sender_(std::move(sender)) {}

std::string GossipSealer::Seal(std::string_view gossip, std::int64_t now_ms) {
  std::string out(kVersion);
  out.append("\t").append(std::to_string(now_ms)).append("\t").append(sender_);
  out.append("\t").append(std::to_string(++seq_));
  const std::string mac = Mac(key_, out, gossip);
  out.append("\t").append(mac).append("\t").append(gossip);
  return out;
}

GossipOpener::GossipOpener(std::string key, std::chrono::milliseconds window)
    : key_(std::move(key)), window_ms_(window.count()) {}

base::Result<std::string_view, GossipAuthError> GossipOpener::Open(std::string_view message,
                                                                   std::int64_t now_ms) {
  // v1, sent_ms, sender, seq, mac; the gossip is the rest.
  std::array<std::string_view, 5> f;
  std::string_view rest = message;
  for (auto& field : f) {
    const auto tab = rest.find('\t');
    if (tab == std::string_view::npos) return GossipAuthError::kUnsigned;
    field = rest.substr(0, tab);
    rest.remove_prefix(tab + 1);
  }
  std::int64_t sent_ms = 0;
  std::uint64_t seq = 0;
  if (f[0] != kVersion || !Number(f[1], sent_ms) || f[2].empty() || !Number(f[3], seq) ||
      f[4].size() != kMacHexDigits) {
    return GossipAuthError::kUnsigned;
  }
  const std::string_view header = message.substr(0, f[4].data() - message.data() - 1);
  const std::string expected = Mac(key_, header, rest);
  if (key_.empty() || CRYPTO_memcmp(expected.data(), f[4].data(), kMacHexDigits) != 0) {
    return GossipAuthError::kBadMac;
  }
  if (sent_ms < now_ms - window_ms_ || sent_ms > now_ms + window_ms_) {
    return GossipAuthError::kStale;
  }
  if (now_ms - pruned_at_ms_ > window_ms_) {
    pruned_at_ms_ = now_ms;
    absl::erase_if(senders_,
                   [&](const auto& entry) { return entry.second.sent_ms < now_ms - window_ms_; });
  }
  auto [it, fresh] = senders_.try_emplace(std::string(f[2]));
  if (!fresh && seq <= it->second.seq) return GossipAuthError::kReplayed;
  it->second = Seen{seq, sent_ms};
  return rest;
}

}  // namespace vrouter::store
