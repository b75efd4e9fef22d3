// Why this file is longer than ~600 lines: routing, redirections, the slot map's refreshes and
// the subscriptions (classic on one primary, shard channels on their slot's primary) all follow
// the same map and the same per-node clients, and are easier to check together.
#include "router/store/redis_cluster_client.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "router/store/cluster_slots.h"

namespace vrouter::store {
namespace {

namespace asio = boost::asio;

// How long a lost shard channel waits before its owner is told (and subscribes again): long
// enough for the refreshed map to say where the slot went, short next to a resync.
constexpr std::chrono::milliseconds kLostDelay{100};
// The same when the cluster answered TRYAGAIN or CLUSTERDOWN: no sooner than this.
constexpr std::chrono::milliseconds kBusyLostDelay{1000};

// Commands the store sends that name no key: any primary takes them.
bool Keyless(const std::string& name) {
  static constexpr std::string_view kNames[] = {"publish", "ping", "time",
                                                "script",  "info", "cluster"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](std::string_view n) {
    return n.size() == name.size() &&
           std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
             return a == static_cast<char>(std::tolower(static_cast<unsigned char>(b)));
           });
  });
}

bool IsScriptCall(const std::vector<std::string>& args) {
  if (args.empty()) return false;
  std::string name = args[0];
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro";
}

}  // namespace

class RedisClusterClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, RedisClusterOptions options, RedisHooks hooks)
      : io_(io), options_(std::move(options)), hooks_(std::move(hooks)), timer_(io) {}

  // ---- any thread ----

  void Start() {
    asio::dispatch(io_, [w = weak_from_this()] {
      if (auto self = w.lock()) self->DoStart();
    });
  }
  void Stop() {
    asio::dispatch(io_, [w = weak_from_this()] {
      if (auto self = w.lock()) self->DoStop();
    });
  }
  bool up() const { return up_.load(); }
  std::size_t pending() const { return pending_.load(); }

  // ---- the io thread ----

  struct Request {
    std::vector<std::string> args;      // Command
    std::optional<RedisScript> script;  // Eval: with `keys` and `args`
    std::vector<std::string> keys;
    RedisCallback cb;
    int redirects = 0;
  };

  // Any thread: counts `req` as pending and routes it on the io thread.
  void Submit(std::shared_ptr<Request> req) {
    pending_.fetch_add(1);
    asio::dispatch(io_, [w = weak_from_this(), req = std::move(req)]() mutable {
      if (auto self = w.lock()) return self->Route(std::move(req));
      req->cb(RedisFailure{RedisFailureKind::kStopped, "destroyed"});
    });
  }

  void Route(std::shared_ptr<Request> req) {
    if (stopped_) return Finish(*req, RedisFailure{RedisFailureKind::kStopped, "stopped"});
    const std::string* key = nullptr;
    if (req->script) {
      if (!req->keys.empty()) key = &req->keys[0];
    } else if (IsScriptCall(req->args)) {  // EVAL script numkeys key...: by its first key
      if (req->args.size() >= 4 && req->args[2] != "0") key = &req->args[3];
    } else if (req->args.size() >= 2 && !Keyless(req->args[0])) {
      key = &req->args[1];
    }
    const cluster::Node* owner = nullptr;
    if (key != nullptr && have_map_) {
      owner = map_.OwnerOf(cluster::KeySlot(*key));
    } else if (key == nullptr && have_map_) {
      owner = LivePrimary();  // keyless (PUBLISH, SCRIPT LOAD): any primary that answers
    }
    if (owner == nullptr) {
      return Finish(*req, RedisFailure{RedisFailureKind::kDisconnected,
                                       have_map_ ? "no primary serves that slot"
                                                 : "no slot map from the cluster yet" + Because()});
    }
    SendTo(cluster::ToString(*owner), std::move(req), /*asking=*/false);
  }

  void Subscribe(std::string channel, std::function<void()> confirmed) {
    wanted_.insert(channel);
    if (RedisClient* c = PubSubClient()) {
      c->Subscribe(std::move(channel), std::move(confirmed));
    } else if (confirmed) {
      waiting_confirms_[channel].push_back(std::move(confirmed));
    }
  }

  void Unsubscribe(const std::string& channel) {
    wanted_.erase(channel);
    waiting_confirms_.erase(channel);
    if (RedisClient* c = PubSubClient()) c->Unsubscribe(channel);
  }

  // ---- shard channels: each on the primary that serves its slot ----

  void SubscribeShard(const std::string& channel, std::function<void()> confirmed) {
    ShardChannel& sc = shard_wanted_[channel];
    if (confirmed) sc.waiting.push_back(std::move(confirmed));
    PlaceShard(channel, sc);
  }

  void UnsubscribeShard(const std::string& channel) {
    const auto it = shard_wanted_.find(channel);
    if (it == shard_wanted_.end()) return;
    if (NodeState* n = Find(it->second.on)) n->client->UnsubscribeShard(channel);
    shard_wanted_.erase(it);
  }

  std::vector<std::string> Primaries() const {
    std::vector<std::string> out;
    for (const auto& n : map_.primaries) out.push_back(cluster::ToString(n));
    return out;
  }

  void Shutdown() {
    DoStop();
    hooks_ = {};
    nodes_.clear();
    probe_.reset();
  }

 private:
  struct NodeState {
    cluster::Node address;
    std::unique_ptr<RedisClient> client;
    bool up = false;
    std::string down_why;  // why its client went down (empty: up, or not tried yet)
  };

  // A shard channel the owner wants: the node it is subscribed on (empty: not placed yet, no map
  // or no owner for its slot), and confirmations that wait for it to be placed.
  struct ShardChannel {
    std::string on;
    std::vector<std::function<void()>> waiting;
  };

  // A primary whose connections are up (the classic pub/sub node first), or null.
  const cluster::Node* LivePrimary() {
    const cluster::Node* fallback = nullptr;
    for (const auto& p : map_.primaries) {
      const std::string endpoint = cluster::ToString(p);
      const NodeState* n = Find(endpoint);
      if (n == nullptr || !n->up || !n->client->up()) continue;
      if (endpoint == pubsub_node_) return &p;
      if (fallback == nullptr) fallback = &p;
    }
    if (fallback == nullptr && !map_.primaries.empty()) fallback = &map_.primaries.front();
    return fallback;
  }

  NodeState* Find(const std::string& endpoint) {
    if (endpoint.empty()) return nullptr;
    const auto it = nodes_.find(endpoint);
    return it == nodes_.end() ? nullptr : it->second.get();
  }

  // Subscribes `channel` on its slot's owner, if the map names one; otherwise it waits for the
  // next map (OnSlots). Already placed there: SSUBSCRIBE again, which confirms again.
  void PlaceShard(const std::string& channel, ShardChannel& sc) {
    if (!have_map_ || stopped_) return;
    const cluster::Node* owner = map_.OwnerOf(cluster::KeySlot(channel));
    if (owner == nullptr) return;
    const std::string endpoint = cluster::ToString(*owner);
    if (!sc.on.empty() && sc.on != endpoint) {
      if (NodeState* old = Find(sc.on)) old->client->ForgetShard(channel);  // not its slot now
    }
    sc.on = endpoint;
    NodeState* n = Ensure(endpoint);
    auto waiting = std::exchange(sc.waiting, {});
    if (waiting.empty()) {
      n->client->SubscribeShard(channel, {});
    } else {
      for (auto& f : waiting) n->client->SubscribeShard(channel, std::move(f));
    }
  }

  // The node `endpoint` no longer holds `channel` (its slot moved, or it redirected the
  // SSUBSCRIBE). The channel is dropped and the owner told, a little later (after the map is
  // refreshed, so that subscribing again goes where the slot is now): messages published in
  // between may be lost, and only the owner knows what to read again.
  void OnShardLost(const std::string& endpoint, const std::string& channel,
                   const std::string& redirect) {
    const auto it = shard_wanted_.find(channel);
    if (it == shard_wanted_.end() || it->second.on != endpoint) return;
    shard_wanted_.erase(it);
    const auto moved = cluster::ParseRedirect(redirect);
    if (moved && moved->kind == cluster::RedirectKind::kMoved && !moved->to.host.empty()) {
      Own(moved->slot, moved->to);
    }
    RefreshSoon();
    // A busy or failing cluster (TRYAGAIN, CLUSTERDOWN) is asked again less often than a slot
    // that moved, whose new owner the next map names.
    const bool busy = !redirect.empty() && !moved;
    (busy ? slow_lost_ : lost_).push_back(channel);
    TellLost(busy);
  }

  // Tells the owner about the lost channels of one list, after a delay, in one batch.
  void TellLost(bool busy) {
    std::vector<std::string>& list = busy ? slow_lost_ : lost_;
    if (list.size() > 1) return;  // a timer is already on its way
    auto t = std::make_shared<asio::steady_timer>(io_, busy ? kBusyLostDelay : kLostDelay);
    t->async_wait([w = weak_from_this(), t, busy](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->stopped_) return;
      for (const auto& ch : std::exchange(busy ? self->slow_lost_ : self->lost_, {})) {
        if (self->shard_wanted_.contains(ch)) continue;  // subscribed again meanwhile
        if (self->hooks_.on_shard_lost) self->hooks_.on_shard_lost(ch, {});
      }
    });
  }

  // After a new map: channels whose slot is served elsewhere now are lost on the old node
  // (Redis also says so with `sunsubscribe`, unless the node died); unplaced ones are placed.
  void ReplaceShards() {
    std::vector<std::string> moved;
    for (auto& [channel, sc] : shard_wanted_) {
      if (sc.on.empty()) {
        PlaceShard(channel, sc);
        continue;
      }
      const cluster::Node* owner = map_.OwnerOf(cluster::KeySlot(channel));
      if (owner == nullptr || cluster::ToString(*owner) != sc.on) moved.push_back(channel);
    }
    for (const auto& channel : moved) {
      const std::string on = shard_wanted_[channel].on;
      if (NodeState* old = Find(on)) old->client->ForgetShard(channel);  // not its slot now
      OnShardLost(on, channel, {});
    }
  }

  std::string Because() const { return last_why_.empty() ? "" : ": " + last_why_; }

  void Finish(Request& req, RedisResult result) {
    pending_.fetch_sub(1);
    // Never inline in the caller's call: RedisClient's callbacks already are not, and failures
    // found here are posted.
    asio::post(io_, [cb = std::move(req.cb), result = std::move(result)]() mutable {
      cb(std::move(result));
    });
  }

  void SendTo(const std::string& endpoint, std::shared_ptr<Request> req, bool asking) {
    NodeState* n = Ensure(endpoint);
    if (n != nullptr && !n->client->up() && !n->down_why.empty()) {
      // The shard's primary is down (until the cluster promotes its replica): its slots fail at
      // once, the other shards' keep working.
      return Finish(*req, RedisFailure{RedisFailureKind::kDisconnected,
                                       "the primary " + endpoint + " is down: " + n->down_why});
    }
    if (n == nullptr || !n->client->up()) {
      // A node this client has not reached (yet): wait a little, within the redirect budget.
      if (++req->redirects > kMaxRedirects) {
        return Finish(*req, RedisFailure{RedisFailureKind::kDisconnected,
                                         "cannot reach " + endpoint + Because()});
      }
      return Later(std::move(req));
    }
    RedisClient& client = *n->client;
    if (asking) client.Command({"ASKING"}, [](const RedisResult&) {});
    auto done = [w = weak_from_this(), req, endpoint](RedisResult r) mutable {
      auto self = w.lock();
      if (!self) {
        req->cb(std::move(r));
        return;
      }
      self->OnAnswer(endpoint, std::move(req), std::move(r));
    };
    if (req->script) {
      client.Eval(*req->script, req->keys, req->args, std::move(done));
    } else {
      client.Command(req->args, std::move(done));
    }
  }

  void OnAnswer(const std::string& endpoint, std::shared_ptr<Request> req, RedisResult r) {
    const auto* reply = std::get_if<RedisReply>(&r);
    if (reply != nullptr && reply->type == RedisReply::Type::kError) {
      const bool busy = reply->str.starts_with("TRYAGAIN") || reply->str.starts_with("CLUSTERDOWN");
      auto redirect = cluster::ParseRedirect(reply->str);
      if (redirect || busy) {
        if (++req->redirects > kMaxRedirects) {
          return Finish(*req, RedisFailure{RedisFailureKind::kDisconnected,
                                           "gave up after " + std::to_string(kMaxRedirects) +
                                               " redirections: " + reply->str});
        }
        if (busy) return Later(std::move(req));
        if (redirect->to.host.empty()) {  // the node that answered, another port
          const auto it = nodes_.find(endpoint);
          if (it != nodes_.end()) redirect->to.host = it->second->address.host;
        }
        const std::string target = cluster::ToString(redirect->to);
        if (redirect->kind == cluster::RedirectKind::kMoved) {
          Own(redirect->slot, redirect->to);
          RefreshSoon();
          return SendTo(target, std::move(req), /*asking=*/false);
        }
        return SendTo(target, std::move(req), /*asking=*/true);
      }
    }
    Finish(*req, std::move(r));
  }

  void Later(std::shared_ptr<Request> req) {
    auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
    t->async_wait([w = weak_from_this(), t, req](const boost::system::error_code& ec) mutable {
      auto self = w.lock();
      if (!self) return req->cb(RedisFailure{RedisFailureKind::kStopped, "destroyed"});
      if (ec) return self->Finish(*req, RedisFailure{RedisFailureKind::kStopped, "stopped"});
      self->Route(std::move(req));
    });
  }

  // A MOVED names the slot's new owner: believed until the next map says otherwise.
  void Own(std::uint16_t slot, const cluster::Node& node) {
    auto it = std::find(map_.primaries.begin(), map_.primaries.end(), node);
    if (it == map_.primaries.end()) {
      map_.primaries.push_back(node);
      it = map_.primaries.end() - 1;
    }
    map_.owner[slot] = static_cast<std::int16_t>(it - map_.primaries.begin());
  }

  NodeState* Ensure(const std::string& endpoint) {
    if (auto it = nodes_.find(endpoint); it != nodes_.end()) return it->second.get();
    const auto colon = endpoint.rfind(':');
    std::string host = endpoint.substr(0, colon);
    if (host.starts_with('[')) host = host.substr(1, host.size() - 2);
    const auto port = static_cast<std::uint16_t>(std::stoul(endpoint.substr(colon + 1)));
    auto n = std::make_unique<NodeState>();
    n->address = {host, port};
    RedisOptions o = options_.node;
    o.host = host;
    o.port = port;
    o.db = 0;
    n->client = std::make_unique<RedisClient>(io_, std::move(o), NodeHooks(endpoint));
    n->client->Start();
    return nodes_.emplace(endpoint, std::move(n)).first->second.get();
  }

  RedisHooks NodeHooks(const std::string& endpoint) {
    RedisHooks h;
    std::weak_ptr<Impl> w = weak_from_this();
    h.on_up = [w, endpoint] {
      if (auto self = w.lock()) self->OnNodeUp(endpoint);
    };
    h.on_down = [w, endpoint](const std::string& why) {
      if (auto self = w.lock()) self->OnNodeDown(endpoint, why);
    };
    h.on_message = [w, endpoint](std::string_view channel, std::string_view payload) {
      auto self = w.lock();
      if (!self) return;
      const std::string name(channel);
      const auto shard = self->shard_wanted_.find(name);
      const bool from_owner = shard != self->shard_wanted_.end()
                                  ? shard->second.on == endpoint
                                  : endpoint == self->pubsub_node_ && self->wanted_.contains(name);
      if (from_owner && self->hooks_.on_message) self->hooks_.on_message(channel, payload);
    };
    h.on_shard_lost = [w, endpoint](const std::string& channel, const std::string& redirect) {
      if (auto self = w.lock()) self->OnShardLost(endpoint, channel, redirect);
    };
    h.on_command = [w](double seconds, bool ok) {
      auto self = w.lock();
      if (self && self->hooks_.on_command) self->hooks_.on_command(seconds, ok);
    };
    h.on_reconnect_attempt = [w] {
      auto self = w.lock();
      if (self && self->hooks_.on_reconnect_attempt) self->hooks_.on_reconnect_attempt();
    };
    return h;
  }

  void OnNodeUp(const std::string& endpoint) {
    NodeState* n = Find(endpoint);
    if (n == nullptr) return;
    n->up = true;
    const bool was_down = !n->down_why.empty();
    n->down_why.clear();
    if (!have_map_) Refresh();
    // Back after an outage (a restart, maybe without its data): what was published meanwhile,
    // or lost with it, is read again by the channels' owner.
    if (was_down) LoseShardsOn(endpoint);
    Evaluate();
  }

  void OnNodeDown(const std::string& endpoint, const std::string& why) {
    if (NodeState* n = Find(endpoint)) {
      n->up = false;
      n->down_why = why;
    }
    last_why_ = endpoint + ": " + why;
    Evaluate();
    RefreshSoon();
  }

  // Every shard channel placed on `endpoint` is lost (and its owner told).
  void LoseShardsOn(const std::string& endpoint) {
    std::vector<std::string> channels;
    for (const auto& [channel, sc] : shard_wanted_) {
      if (sc.on == endpoint) channels.push_back(channel);
    }
    for (const auto& channel : channels) {
      if (NodeState* n = Find(endpoint)) n->client->ForgetShard(channel);
      OnShardLost(endpoint, channel, {});
    }
  }

  // ---- the slot map ----

  void DoStart() {
    if (started_ || stopped_) return;
    started_ = true;
    Probe();
    Tick();
  }

  // Connects to the next seed to ask for the map (when no primary is up to ask).
  void Probe() {
    if (options_.seeds.empty() || stopped_) return;
    const auto& [host, port] = options_.seeds[next_seed_++ % options_.seeds.size()];
    RedisOptions o = options_.node;
    o.host = host;
    o.port = port;
    o.db = 0;
    RedisHooks h;
    std::weak_ptr<Impl> w = weak_from_this();
    h.on_up = [w] {
      if (auto self = w.lock()) self->Refresh();
    };
    h.on_down = [w](const std::string& why) {
      auto self = w.lock();
      if (!self) return;
      self->last_why_ = "seed: " + why;
      self->Evaluate();
    };
    probe_ = std::make_unique<RedisClient>(io_, std::move(o), std::move(h));
    probe_->Start();
  }

  RedisClient* Asker() {
    for (auto& [endpoint, n] : nodes_) {
      if (n->up && n->client->up()) return n->client.get();
    }
    if (probe_ && probe_->up()) return probe_.get();
    return nullptr;
  }

  void Refresh() {
    if (refreshing_ || stopped_) return;
    RedisClient* asker = Asker();
    if (asker == nullptr) {
      // Nobody to ask: a new probe, to the next seed (the old one keeps failing otherwise).
      Probe();
      return;
    }
    refreshing_ = true;
    std::string answered;
    for (auto& [endpoint, n] : nodes_) {
      if (n->client.get() == asker) answered = endpoint;
    }
    cluster::Node who;
    if (!answered.empty()) {
      who = nodes_[answered]->address;
    } else {
      const auto& seed =
          options_.seeds[(next_seed_ + options_.seeds.size() - 1) % options_.seeds.size()];
      who = {seed.first, seed.second};
    }
    asker->Command({"CLUSTER", "SLOTS"}, [w = weak_from_this(), who](const RedisResult& r) {
      auto self = w.lock();
      if (!self) return;
      self->refreshing_ = false;
      self->OnSlots(r, who);
    });
  }

  void OnSlots(const RedisResult& r, const cluster::Node& who) {
    const auto* reply = std::get_if<RedisReply>(&r);
    if (reply == nullptr) return;  // the asker went down: the tick asks again
    auto map = cluster::ParseClusterSlots(*reply, who);
    if (!map.ok()) {
      last_why_ = "bad CLUSTER SLOTS from " + cluster::ToString(who) + ": " +
                  std::string(cluster::SlotMapErrorName(map.error()));
      return Evaluate();
    }
    map_ = std::move(map.value());
    have_map_ = true;
    std::set<std::string> primaries;
    for (const auto& n : map_.primaries) primaries.insert(cluster::ToString(n));
    for (const auto& endpoint : primaries) Ensure(endpoint);
    ReplaceShards();
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (primaries.contains(it->first)) {
        ++it;
        continue;
      }
      if (it->first == pubsub_node_) pubsub_node_.clear();
      it = nodes_.erase(it);  // a replica now, or gone: its client stops
    }
    if (map_.unassigned() > 0) {
      last_why_ = std::to_string(map_.unassigned()) + " slots have no primary";
    }
    Evaluate();
  }

  void RefreshSoon() {
    if (!refresh_soon_) {
      refresh_soon_ = true;
      asio::post(io_, [w = weak_from_this()] {
        auto self = w.lock();
        if (!self) return;
        self->refresh_soon_ = false;
        self->Refresh();
      });
    }
  }

  // Periodic: every refresh_interval while up, every 250 ms while down.
  void Tick() {
    timer_.expires_after(up_ ? options_.refresh_interval : std::chrono::milliseconds(250));
    timer_.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      auto self = w.lock();
      if (!self || self->stopped_) return;
      self->Refresh();
      self->Tick();
    });
  }

  // ---- up and down ----

  // Up while the client has a map and at least one primary to talk to: a shard whose primary is
  // down fails its own slots' commands (kDisconnected, at once) and the others work on
  // (on_partial says which are down). Down when no primary is reachable, or no map.
  void Evaluate() {
    std::size_t live = 0, primaries_down = 0;
    std::string down;
    for (const auto& p : map_.primaries) {
      const std::string endpoint = cluster::ToString(p);
      const NodeState* n = Find(endpoint);
      if (n != nullptr && n->up && n->client->up()) {
        ++live;
      } else if (n == nullptr || !n->down_why.empty()) {  // not merely still connecting
        ++primaries_down;
        down += (down.empty() ? "" : ", ") + endpoint;
      }
    }
    const bool serving = have_map_ && live > 0;
    if (serving) EnsurePubSub();  // classic channels on a primary that answers (first: on_up)
    if (serving && !up_) {
      up_ = true;
      outage_reported_ = false;
      if (hooks_.on_up) hooks_.on_up();
    } else if (!serving && (up_ || !outage_reported_) && started_ && !stopped_) {
      const bool was_up = up_;
      up_ = false;
      if (was_up || !last_why_.empty()) {
        outage_reported_ = true;
        if (hooks_.on_down) {
          hooks_.on_down(last_why_.empty() ? "no primary is reachable" : last_why_);
        }
      }
    }
    if (!serving) return;
    std::string partial;
    if (primaries_down > 0) partial = "primaries down: " + down;
    if (map_.unassigned() > 0) {
      partial += (partial.empty() ? "" : "; ") + std::to_string(map_.unassigned()) +
                 " slots have no primary";
      primaries_down = std::max<std::size_t>(primaries_down, 1);
    }
    if (partial != partial_) {
      partial_ = partial;
      if (hooks_.on_partial) hooks_.on_partial(primaries_down, partial);
    }
  }

  RedisClient* PubSubClient() {
    if (pubsub_node_.empty()) return nullptr;
    const auto it = nodes_.find(pubsub_node_);
    return it == nodes_.end() ? nullptr : it->second->client.get();
  }

  // Classic channels live on one primary that is up; when it goes down, they move to another
  // (messages published meanwhile are lost: vr:fleet only, whose reports repeat every second).
  void EnsurePubSub() {
    const NodeState* current = Find(pubsub_node_);
    if (current != nullptr && current->down_why.empty()) return;
    std::string next;
    for (const auto& p : map_.primaries) {
      const NodeState* n = Find(cluster::ToString(p));
      if (n != nullptr && n->up && n->client->up()) {
        next = cluster::ToString(p);
        break;
      }
    }
    if (next.empty()) return;
    if (RedisClient* old = PubSubClient()) {
      for (const auto& channel : wanted_) old->Unsubscribe(channel);
    }
    pubsub_node_ = next;
    RedisClient* c = PubSubClient();
    if (c == nullptr) return;
    for (const auto& channel : wanted_) {
      auto waiting = waiting_confirms_.find(channel);
      std::vector<std::function<void()>> confirms;
      if (waiting != waiting_confirms_.end()) confirms = std::move(waiting->second);
      if (confirms.empty()) {
        c->Subscribe(channel, {});
      } else {
        for (auto& f : confirms) c->Subscribe(channel, std::move(f));
      }
    }
    waiting_confirms_.clear();
  }

  void DoStop() {
    if (stopped_) return;
    stopped_ = true;
    up_ = false;
    timer_.cancel();
    for (auto& [endpoint, n] : nodes_) n->client->Stop();
    if (probe_) probe_->Stop();
  }

  asio::io_context& io_;
  const RedisClusterOptions options_;
  RedisHooks hooks_;
  asio::steady_timer timer_;
  std::atomic<bool> up_{false};
  std::atomic<std::size_t> pending_{0};
  bool started_ = false, stopped_ = false, refreshing_ = false, refresh_soon_ = false;
  bool outage_reported_ = false;
  std::string last_why_;
  std::string partial_;  // what on_partial last said
  cluster::SlotMap map_;
  bool have_map_ = false;
  std::map<std::string, std::unique_ptr<NodeState>> nodes_;  // by "host:port"
  std::unique_ptr<RedisClient> probe_;
  std::size_t next_seed_ = 0;
  std::string pubsub_node_;
  std::set<std::string> wanted_;
  std::map<std::string, std::vector<std::function<void()>>> waiting_confirms_;
  std::map<std::string, ShardChannel> shard_wanted_;
  std::vector<std::string> lost_, slow_lost_;  // shard channels to tell the owner about

  friend class RedisClusterClient;
};

RedisClusterClient::RedisClusterClient(boost::asio::io_context& io, RedisClusterOptions options,
                                       RedisHooks hooks)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(hooks))) {}

RedisClusterClient::~RedisClusterClient() { impl_->Shutdown(); }

void RedisClusterClient::Start() { impl_->Start(); }
void RedisClusterClient::Stop() { impl_->Stop(); }

void RedisClusterClient::Command(std::vector<std::string> args, RedisCallback cb) {
  auto req = std::make_shared<Impl::Request>();
  req->args = std::move(args);
  req->cb = std::move(cb);
  impl_->Submit(std::move(req));
}

void RedisClusterClient::Eval(const RedisScript& script, std::vector<std::string> keys,
                              std::vector<std::string> args, RedisCallback cb) {
  auto req = std::make_shared<Impl::Request>();
  req->script = script;
  req->keys = std::move(keys);
  req->args = std::move(args);
  req->cb = std::move(cb);
  impl_->Submit(std::move(req));
}

void RedisClusterClient::Subscribe(std::string channel, std::function<void()> confirmed) {
  asio::dispatch(impl_->io_, [w = std::weak_ptr<Impl>(impl_), channel = std::move(channel),
                              confirmed = std::move(confirmed)]() mutable {
    if (auto self = w.lock()) self->Subscribe(std::move(channel), std::move(confirmed));
  });
}

void RedisClusterClient::Unsubscribe(std::string channel) {
  asio::dispatch(impl_->io_, [w = std::weak_ptr<Impl>(impl_), channel = std::move(channel)] {
    if (auto self = w.lock()) self->Unsubscribe(channel);
  });
}

void RedisClusterClient::SubscribeShard(std::string channel, std::function<void()> confirmed) {
  asio::dispatch(impl_->io_, [w = std::weak_ptr<Impl>(impl_), channel = std::move(channel),
                              confirmed = std::move(confirmed)]() mutable {
    if (auto self = w.lock()) self->SubscribeShard(channel, std::move(confirmed));
  });
}

void RedisClusterClient::UnsubscribeShard(std::string channel) {
  asio::dispatch(impl_->io_, [w = std::weak_ptr<Impl>(impl_), channel = std::move(channel)] {
    if (auto self = w.lock()) self->UnsubscribeShard(channel);
  });
}

bool RedisClusterClient::up() const { return impl_->up(); }
std::size_t RedisClusterClient::pending() const { return impl_->pending(); }
std::vector<std::string> RedisClusterClient::Primaries() const { return impl_->Primaries(); }

}  // namespace vrouter::store
