#include "router/fleet/directory.h"

#include <boost/json.hpp>

#include "proto/codec.h"
#include "proto/video_server_messages.h"
#include "router/base/absl_compat.h"
#include "router/base/result.h"

namespace vrouter::fleet {
namespace json = boost::json;

DirectorySnapshot::DirectorySnapshot(std::vector<VideoServer> servers)
    : servers_(std::move(servers)) {
  index_.reserve(servers_.size());
  for (std::size_t i = 0; i < servers_.size(); ++i) index_.emplace(servers_[i].id, i);
}

const VideoServer* DirectorySnapshot::Find(std::string_view id) const {
  auto it = index_.find(AsAbsl(id));
  return it == index_.end() ? nullptr : &servers_[it->second];
}

base::Result<std::vector<VideoServer>> ParseVideoServers(std::string_view json_text) {
  boost::system::error_code ec;
  json::value root = json::parse(json_text, ec);
  if (ec) return base::Fail("not valid JSON: " + ec.message());
  if (!root.is_array()) return base::Fail(std::string("must be a JSON array of video servers"));
  std::vector<VideoServer> servers;
  absl::flat_hash_map<std::string, int> seen;
  int index = 0;
  for (const json::value& entry : root.get_array()) {
    const std::string where = "entry " + std::to_string(index++);
    if (!entry.is_object()) return base::Fail(where + ": must be an object");
    const json::object& o = entry.get_object();
    VideoServer s;
    auto str = [&](std::string_view key, std::string& out) -> bool {
      const json::value* v = o.if_contains(key);
      if (v == nullptr || !v->is_string() || v->get_string().empty()) return false;
      out.assign(v->get_string().data(), v->get_string().size());
      return true;
    };
    if (!str("id", s.id) || !proto::IsValidId(s.id)) {
      return base::Fail(where + ": 'id' must be a string of 1-128 bytes");
    }
    if (!str("url", s.url) || s.url.size() > proto::kMaxUrlBytes) {
      return base::Fail(where + " (" + s.id + "): 'url' must be a string of 1-1024 bytes");
    }
    if (!str("region", s.region) || !proto::IsValidId(s.region) ||
        s.region.size() > proto::kMaxRegionBytes) {
      return base::Fail(where + " (" + s.id + "): 'region' must be a string of 1-64 bytes");
    }
    const json::value* cap = o.if_contains("capacity");
    if (cap == nullptr || !(cap->is_int64() || cap->is_uint64())) {
      return base::Fail(where + " (" + s.id + "): 'capacity' must be a positive integer");
    }
    const std::int64_t c = cap->is_int64() ? cap->get_int64() : 0;
    if ((cap->is_int64() && (c <= 0 || c > 1'000'000)) || cap->is_uint64()) {
      return base::Fail(where + " (" + s.id + "): 'capacity' must be in [1, 1000000]");
    }
    s.capacity = static_cast<std::uint32_t>(c);
    if (const json::value* m = o.if_contains("monitored")) {
      if (!m->is_bool())
        return base::Fail(where + " (" + s.id + "): 'monitored' must be true or false");
      s.monitored = m->get_bool();
    }
    if (!seen.emplace(s.id, 0).second) return base::Fail(where + ": duplicate id '" + s.id + "'");
    servers.push_back(std::move(s));
  }
  return servers;
}

proto::ServerRef ServerRefFor(const DirectorySnapshot& directory, const std::string& server_id) {
  if (const VideoServer* s = directory.Find(server_id)) return {s->id, s->url, s->region};
  return {server_id, "", ""};
}

}  // namespace vrouter::fleet
