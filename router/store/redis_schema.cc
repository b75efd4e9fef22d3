#include "router/store/redis_schema.h"

#include <charconv>
#include <vector>

#include "proto/decode_error.h"

namespace vrouter::store::redis {

namespace {

constexpr std::uint64_t kMax = proto::kMaxSafeInteger;

// Splits on '\t' into exactly `n` fields (the last one takes the rest); false otherwise.
bool Split(std::string_view text, std::size_t n, std::vector<std::string_view>& out) {
  out.clear();
  while (out.size() + 1 < n) {
    const auto tab = text.find('\t');
    if (tab == std::string_view::npos) return false;
    out.push_back(text.substr(0, tab));
    text.remove_prefix(tab + 1);
  }
  out.push_back(text);
  return true;
}

// Decimal digits only (no sign, no space), 0..2^53-1: what the scripts accept too.
template <typename T>
bool Number(std::string_view s, T& out) {
  if (s.empty() || s.size() > 16 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  if (v > kMax) return false;
  out = static_cast<T>(v);
  return true;
}

bool DecodeRecordFields(const std::vector<std::string_view>& f, std::size_t at, Record& r) {
  return Number(f[at], r.epoch) && r.epoch > 0 && proto::IsValidId(f[at + 1]) &&
         proto::IsValidId(f[at + 2]) && Number(f[at + 3], r.session) &&
         Number(f[at + 4], r.detached_ms) && (r.server = f[at + 1], r.replica = f[at + 2], true);
}

constexpr std::string_view kDefectNames[kDefectCount] = {"record", "sequence", "wrong_type",
                                                         "pointer", "other"};

}  // namespace

std::string_view DefectName(Defect d) { return kDefectNames[static_cast<std::size_t>(d)]; }

std::optional<Defect> DefectFromName(std::string_view name) {
  for (std::size_t i = 0; i < kDefectCount; ++i) {
    if (kDefectNames[i] == name) return static_cast<Defect>(i);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> DecodeNumber(std::string_view text) {
  std::uint64_t v = 0;
  if (!Number(text, v)) return std::nullopt;
  return v;
}

std::string SpaceKey(std::string_view space) { return "vr:{" + std::string(space) + "}"; }
std::string UserKey(std::string_view user) { return "vr:u:{" + std::string(user) + "}"; }
std::string HelloUserKey(std::string_view user) { return "vr:h:{" + std::string(user) + "}"; }
std::string AdmissionKey(std::string_view server) { return "vr:adm:{" + std::string(server) + "}"; }
std::string AdmissionRecentKey(std::string_view server) {
  return "vr:admr:{" + std::string(server) + "}";
}
std::string HelloAddressKey(std::string_view address) {
  return "vr:ha:{" + std::string(address) + "}";
}
namespace {
// What follows `prefix` in `channel`, if that is a valid id (a shard channel: inside the braces).
std::optional<std::string_view> NameOf(std::string_view channel, std::string_view prefix,
                                       PubSub mode) {
  if (!channel.starts_with(prefix)) return std::nullopt;
  channel.remove_prefix(prefix.size());
  if (mode == PubSub::kSharded) {
    if (channel.size() < 2 || channel.front() != '{' || channel.back() != '}') return std::nullopt;
    channel = channel.substr(1, channel.size() - 2);
  }
  if (channel.empty()) return std::nullopt;
  return channel;
}
}  // namespace

// A shard channel is named exactly as the key whose slot it must share: the same string hashes
// to the same slot whatever the name holds (a name starting with '}' has an empty hash tag, and
// then the whole string is hashed). Channels and keys are separate namespaces in Redis.
std::string SpaceChannel(std::string_view space, PubSub mode) {
  if (mode == PubSub::kSharded) return SpaceKey(space);
  return std::string(kSpaceChannelPrefix) + std::string(space);
}
std::string UserChannel(std::string_view user, PubSub mode) {
  if (mode == PubSub::kSharded) return UserKey(user);
  return std::string(kUserChannelPrefix) + std::string(user);
}
std::optional<std::string_view> SpaceOfChannel(std::string_view channel, PubSub mode) {
  return NameOf(channel, mode == PubSub::kSharded ? "vr:" : kSpaceChannelPrefix, mode);
}
std::optional<std::string_view> UserOfChannel(std::string_view channel, PubSub mode) {
  return NameOf(channel, mode == PubSub::kSharded ? "vr:u:" : kUserChannelPrefix, mode);
}
std::string ReplicaSpacesKey(std::string_view replica) {
  return "vr:rs:{" + std::string(replica) + "}";
}

std::string ReplicaLoadKey(std::string_view replica) {
  return "vr:rl:{" + std::string(replica) + "}";
}
std::string ReapLockKey(std::string_view replica) {
  return "vr:reap:{" + std::string(replica) + "}";
}

std::string EncodeRecord(const Record& r) {
  return std::to_string(r.epoch) + '\t' + r.server + '\t' + r.replica + '\t' +
         std::to_string(r.session) + '\t' + std::to_string(r.detached_ms);
}

std::optional<Record> DecodeRecord(std::string_view text) {
  std::vector<std::string_view> f;
  Record r;
  if (!Split(text, 5, f) || !DecodeRecordFields(f, 0, r)) return std::nullopt;
  return r;
}

std::optional<ChangeMessage> DecodeChange(std::string_view text) {
  std::vector<std::string_view> f;
  ChangeMessage m;
  if (!Split(text, 10, f) || !Number(f[0], m.seq) || f[1].size() != 1) return std::nullopt;
  switch (f[1][0]) {
    case 'a':
      m.kind = ChangeMessage::Kind::kAssigned;
      break;
    case 'o':
      m.kind = ChangeMessage::Kind::kOwner;
      break;
    case 'r':
      m.kind = ChangeMessage::Kind::kRemoved;
      break;
    default:
      return std::nullopt;
  }
  if (!proto::IsValidId(f[2]) || !proto::IsValidId(f[3]) || !DecodeRecordFields(f, 4, m.record)) {
    return std::nullopt;
  }
  if (!f[9].empty() && !proto::IsValidId(f[9])) return std::nullopt;
  m.space = f[2];
  m.user = f[3];
  m.from_server = f[9];
  return m;
}

std::string EncodeChange(const ChangeMessage& m) {
  return std::to_string(m.seq) + '\t' + static_cast<char>(m.kind) + '\t' + m.space + '\t' + m.user +
         '\t' + EncodeRecord(m.record) + '\t' + m.from_server;
}

assign::Assignment ToAssignment(std::string_view user, std::string_view space, const Record& r,
                                base::SteadyTime since) {
  return assign::Assignment{std::string(user), std::string(space), r.server, r.epoch,
                            r.replica,         r.session,          since};
}

// ---- scripts ----
// Shared prelude of the space scripts. Numbers stay below 2^53 (epochs are microseconds since
// 1970, ~2^51), so Lua's doubles hold them exactly; '%.0f' prints them without an exponent.
// `int`, `id` and `dec` accept exactly what DecodeNumber, proto::IsValidId and DecodeRecord
// accept (RedisStoreTrustTest, tests/router/store/store_contract_test.cc, writes bad values into
// a real Redis and checks both sides agree). `found` collects the defects seen, which `reply`
// appends to the script's answer for the replica to count and log. SHARDED is rewritten by
// SpaceScriptFor; `told` collects the user changes a sharded script hands back (VRTELL).
#define VR_LUA_PRELUDE                                                                          \
  "local SHARDED = false\n"                                                                     \
  "local MAX = 9007199254740991\n"                                                              \
  "local found = {}\n"                                                                          \
  "local told = {}\n"                                                                           \
  "local function num(x) return string.format('%.0f', x) end\n"                                 \
  "local function int(s)\n"                                                                     \
  "  if type(s) ~= 'string' or #s > 16 or not string.find(s, '^%d+$') then return nil end\n"    \
  "  local n = tonumber(s)\n"                                                                   \
  "  if n > MAX then return nil end\n"                                                          \
  "  return n\n"                                                                                \
  "end\n"                                                                                       \
  "local function id(s)\n"                                                                      \
  "  return type(s) == 'string' and #s >= 1 and #s <= 128 and "                                 \
  "not string.find(s, '[%z\\1-\\31\\127]')\n"                                                   \
  "end\n"                                                                                       \
  "local function dec(v)\n"                                                                     \
  "  if not v then return nil end\n"                                                            \
  "  local e, srv, rep, ses, det = string.match(v, "                                            \
  "'^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)$')\n"                            \
  "  local n = int(e)\n"                                                                        \
  "  if not n or n == 0 or not id(srv) or not id(rep) or not int(ses) or not int(det) then\n"   \
  "    table.insert(found, 'record')\n"                                                         \
  "    return nil\n"                                                                            \
  "  end\n"                                                                                     \
  "  return {e = n, srv = srv, rep = rep, ses = ses, det = det}\n"                              \
  "end\n"                                                                                       \
  "local function enc(c)\n"                                                                     \
  "  return num(c.e) .. '\\t' .. c.srv .. '\\t' .. c.rep .. '\\t' .. c.ses .. '\\t' .. c.det\n" \
  "end\n"                                                                                       \
  "local function reply(t)\n"                                                                   \
  "  for _, m in ipairs(told) do table.insert(t, {ok = 'VRTELL ' .. m}) end\n"                  \
  "  if #found > 0 then table.insert(t, {ok = 'VRDEFECTS ' .. table.concat(found, ',')}) end\n" \
  "  return t\n"                                                                                \
  "end\n"                                                                                       \
  "local function now_us()\n"                                                                   \
  "  local t = redis.call('TIME')\n"                                                            \
  "  return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                        \
  "end\n"                                                                                       \
  "local key_type = redis.call('TYPE', KEYS[1])['ok']\n"                                        \
  "if key_type ~= 'hash' and key_type ~= 'none' then\n"                                         \
  "  return redis.error_reply('VRCORRUPT wrong_type ' .. KEYS[1])\n"                            \
  "end\n"                                                                                       \
  "local function publish(space, user, kind, rec, from, to_user)\n"                             \
  "  local seq\n"                                                                               \
  "  local cur = redis.call('HGET', KEYS[1], '')\n"                                             \
  "  local n = int(cur)\n"                                                                      \
  "  if cur and (not n or n >= MAX) then\n"                                                     \
  "    seq = now_us()\n"                                                                        \
  "    redis.call('HSET', KEYS[1], '', num(seq))\n"                                             \
  "    table.insert(found, 'sequence')\n"                                                       \
  "  else\n"                                                                                    \
  "    seq = redis.call('HINCRBY', KEYS[1], '', 1)\n"                                           \
  "  end\n"                                                                                     \
  "  local msg = num(seq) .. '\\t' .. kind .. '\\t' .. space .. '\\t' .. user .. '\\t' .. "     \
  "rec .. '\\t' .. from\n"                                                                      \
  "  if SHARDED then\n"                                                                         \
  "    redis.call('SPUBLISH', KEYS[1], msg)\n"                                                  \
  "    if to_user then table.insert(told, msg) end\n"                                           \
  "  else\n"                                                                                    \
  "    redis.call('PUBLISH', 'vr:space:' .. space, msg)\n"                                      \
  "    if to_user then redis.call('PUBLISH', 'vr:user:' .. user, msg) end\n"                    \
  "  end\n"                                                                                     \
  "  return seq\n"                                                                              \
  "end\n"

// ARGV: user expected_epoch min_epoch server replica session space previous_server
const std::string_view kPutScript = VR_LUA_PRELUDE R"lua(
local user, expected, min_epoch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[1], user)
local c = dec(cur)
local cur_epoch = 0
if c then cur_epoch = c.e else cur = false end  -- an invalid record counts as none
if cur_epoch ~= expected then return reply({0, cur}) end
-- Only the owner (its session, or a migration on its behalf) rewrites a user.
if c and (c.rep ~= ARGV[5] or c.ses ~= ARGV[6]) then return reply({0, cur}) end
local epoch = math.max(cur_epoch + 1, min_epoch + 1, now_us())
if epoch > MAX then
  -- An epoch at the top of the range cannot grow: start again from the clock.
  table.insert(found, 'record')
  epoch = math.max(min_epoch + 1, now_us())
end
local rec = enc({e = epoch, srv = ARGV[4], rep = ARGV[5], ses = ARGV[6], det = '0'})
redis.call('HSET', KEYS[1], user, rec)
local from = ARGV[8]
if c then from = c.srv end
local seq = publish(ARGV[7], user, 'a', rec, from, true)
return reply({1, rec, seq, from})
)lua";

// ARGV: user replica session space
const std::string_view kAttachScript = VR_LUA_PRELUDE R"lua(
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local c = dec(cur)
if not c then return reply({0}) end
if c.rep == ARGV[2] and c.ses == ARGV[3] and c.det == '0' then return reply({1, cur}) end
c.rep = ARGV[2]
c.ses = ARGV[3]
c.det = '0'
local rec = enc(c)
redis.call('HSET', KEYS[1], ARGV[1], rec)
publish(ARGV[4], ARGV[1], 'o', rec, '', false)
return reply({1, rec})
)lua";

// ARGV: user replica session space
const std::string_view kDetachScript = VR_LUA_PRELUDE R"lua(
local c = dec(redis.call('HGET', KEYS[1], ARGV[1]))
if not c or c.rep ~= ARGV[2] or c.ses ~= ARGV[3] then return reply({0}) end
c.ses = '0'
c.det = num(math.floor(now_us() / 1000))
local rec = enc(c)
redis.call('HSET', KEYS[1], ARGV[1], rec)
publish(ARGV[4], ARGV[1], 'o', rec, '', false)
return reply({1})
)lua";

// ARGV: user replica session space epoch tell_watchers. Removes when the session owns the record,
// or, with epoch > 0, when the record has that epoch (a user moving to another space).
const std::string_view kRemoveScript = VR_LUA_PRELUDE R"lua(
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local c = dec(cur)
if not c then return reply({0}) end
local epoch = tonumber(ARGV[5])
local owned = c.rep == ARGV[2] and c.ses == ARGV[3]
if not owned and not (epoch > 0 and c.e == epoch) then return reply({0}) end
redis.call('HDEL', KEYS[1], ARGV[1])
publish(ARGV[4], ARGV[1], 'r', cur, '', ARGV[6] == '1')
return reply({1, cur})
)lua";

// ARGV: space grace_ms user... -> the users removed
const std::string_view kExpireScript = VR_LUA_PRELUDE R"lua(
local grace = tonumber(ARGV[2])
local now_ms = math.floor(now_us() / 1000)
local removed = {}
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local c = dec(cur)
  if c and c.ses == '0' and tonumber(c.det) + grace <= now_ms then
    redis.call('HDEL', KEYS[1], ARGV[i])
    publish(ARGV[1], ARGV[i], 'r', cur, '', true)
    table.insert(removed, ARGV[i])
  end
end
return reply(removed)
)lua";

// ARGV: space dead_replica user... -> {count}
const std::string_view kOrphanScript = VR_LUA_PRELUDE R"lua(
local now_ms = math.floor(now_us() / 1000)
local n = 0
for i = 3, #ARGV do
  local c = dec(redis.call('HGET', KEYS[1], ARGV[i]))
  if c and c.rep == ARGV[2] and c.ses ~= '0' then
    c.ses = '0'
    c.det = num(now_ms)
    local rec = enc(c)
    redis.call('HSET', KEYS[1], ARGV[i], rec)
    publish(ARGV[1], ARGV[i], 'o', rec, '', false)
    n = n + 1
  end
end
return reply({n})
)lua";

// KEYS[1] = vr:replicas. ARGV: replica ttl_ms forget_ms
const std::string_view kLeaseScript = R"lua(
local key_type = redis.call('TYPE', KEYS[1])['ok']
if key_type ~= 'zset' and key_type ~= 'none' then
  return redis.error_reply('VRCORRUPT wrong_type ' .. KEYS[1])
end
local t = redis.call('TIME')
local now = math.floor((tonumber(t[1]) * 1000000 + tonumber(t[2])) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local out = {string.format('%.0f', now), #dead}
for _, r in ipairs(dead) do table.insert(out, r) end
for _, r in ipairs(live) do table.insert(out, r) end
return out
)lua";

// KEYS[1] = vr:u:{user}. ARGV: space. Deletes the pointer if it still names `space`.
const std::string_view kPointerDeleteScript = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// KEYS[1] = vr:rl:{replica}. ARGV: ttl_ms server count server count ...
const std::string_view kOwnLoadScript = R"lua(
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
)lua";

// A fixed window that starts at its first hello. A counter left without an expiry (a crash
// between the two calls cannot happen inside a script, but a key written by hand can) gets one.
const std::string_view kHelloCountScript = R"lua(
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
)lua";

// A fixed window per server that starts at its first placement, as the hello counters. A count
// that is not a number (a key written by hand) starts over; one at the cap refuses without
// counting, so the count never passes the cap.
//
// The room: the caller's view of the server's load is the users' counts as every replica last
// wrote them, read up to a housekeeping interval later; placements made since are missing from
// it, in every window. So each placement is also kept for `horizon` (the view's worst lag) in
// KEYS[2], and none is admitted once those fill the room the caller sees. The ones its view
// already holds count twice: near capacity a server fills a little slower, never past it.
const std::string_view kAdmitScript = R"lua(
local cap = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local room = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if n == nil or n < 0 or ttl < 0 then
  n = 0
  redis.call('SET', KEYS[1], 0, 'PX', window)
  ttl = window
end
if n >= cap then
  return {0, n, ttl}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - horizon)
if redis.call('ZCARD', KEYS[2]) >= room then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = window
  if oldest[2] then wait = math.max(1, tonumber(oldest[2]) + horizon - now) end
  return {0, n, wait}
end
n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], now, now .. ':' .. n)
redis.call('PEXPIRE', KEYS[2], horizon)
return {1, n, ttl}
)lua";

#undef VR_LUA_PRELUDE

std::string SpaceScriptFor(std::string_view script, PubSub mode) {
  std::string out(script);
  if (mode == PubSub::kClassic) return out;
  static constexpr std::string_view kClassicLine = "local SHARDED = false\n";
  const auto at = out.find(kClassicLine);
  if (at != std::string::npos) out.replace(at, kClassicLine.size(), "local SHARDED = true\n");
  return out;
}

}  // namespace vrouter::store::redis
