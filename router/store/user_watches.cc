#include "router/store/user_watches.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <utility>

#include "router/store/redis_replies.h"

namespace vrouter::store {
namespace asio = boost::asio;

using redis::ChangeMessage;

UserWatches::UserWatches(asio::io_context& io, RedisGateway& gw, const RedisStoreOptions& opt,
                         std::function<void(const assign::AssignmentChange&)> notify)
    : io_(io),
      gw_(gw),
      client_(&gw.client()),
      opt_(opt),
      pubsub_(gw.pubsub()),
      notify_(std::move(notify)) {}

void UserWatches::DoWatch(std::vector<std::string> users, ReadyDone ready) {
  std::vector<std::string> fresh, unconfirmed;
  for (auto& u : users) {
    Watched& w = watched_[u];
    if (w.refs++ == 0) {
      fresh.push_back(std::move(u));
    } else if (!w.confirmed) {
      unconfirmed.push_back(std::move(u));  // an earlier watch's SUBSCRIBE is on its way
    }
  }
  if (fresh.empty() && unconfirmed.empty()) return ready();
  if (!client_->up()) {
    for (auto& u : fresh) gw_.Listen(redis::UserChannel(u, pubsub_), Confirmer(u));
    return ready();  // the resync after the outage (or a shard's) re-reads them, tells changes
  }
  // Ready when every SUBSCRIBE is confirmed, or after the command timeout (an outage began:
  // the resync covers it), whichever comes first.
  struct Wait {
    std::size_t left;
    ReadyDone ready;
    asio::steady_timer timer;
    void Fire() {
      if (!ready) return;
      timer.cancel();
      auto r = std::move(ready);
      ready = nullptr;
      r();
    }
  };
  auto wait = std::make_shared<Wait>(
      Wait{fresh.size() + unconfirmed.size(), std::move(ready), asio::steady_timer(io_)});
  wait->timer.expires_after(opt_.redis.command_timeout);
  wait->timer.async_wait([wait](boost::system::error_code ec) {
    if (!ec) wait->Fire();
  });
  auto one_done = [wait] {
    if (--wait->left == 0) wait->Fire();
  };
  for (auto& u : unconfirmed) watched_[u].on_confirmed.emplace_back(one_done);
  for (auto& u : fresh) {
    gw_.Listen(redis::UserChannel(u, pubsub_), [confirm = Confirmer(u), one_done] {
      confirm();
      one_done();
    });
  }
}

void UserWatches::DoUnwatch(const std::vector<std::string>& users) {
  for (const auto& u : users) {
    auto it = watched_.find(u);
    if (it == watched_.end()) continue;
    if (--it->second.refs > 0) continue;
    watched_.erase(it);
    gw_.StopListening(redis::UserChannel(u, pubsub_));
  }
}

void UserWatches::NotifyWatchers(const ChangeMessage& m) {
  if (m.kind == ChangeMessage::Kind::kOwner) return;
  auto it = watched_.find(m.user);
  if (it == watched_.end()) return;
  if (m.record.epoch > gw_.EpochCeiling()) {
    // Ahead of Redis's clock: a forged `left` or `moved` would silence every later change of
    // the user for its watchers (their epochs would look stale). Tell them what Redis holds.
    gw_.RejectChange(ChangeRejection::kEpochAhead, redis::UserChannel(m.user, pubsub_));
    gw_.ReadRemote({m.user}, [this, user = m.user](StoreResult<Assignments> r) {
      if (auto* found = std::get_if<Assignments>(&r)) ReconcileWatched(user, found->front());
    });
    return;
  }
  Watched& w = it->second;
  const bool removed = m.kind == ChangeMessage::Kind::kRemoved;
  if (m.record.epoch < w.last_epoch) return;
  if (m.record.epoch == w.last_epoch && (!removed || w.removed)) return;
  // The space the user was in, as its watchers last heard it: a move to another space is
  // published as an assignment in the new space only (the old space's removal tells nobody).
  std::optional<std::string> from_space;
  if (!removed && w.last && !w.removed) from_space = w.last->space;
  w.last_epoch = m.record.epoch;
  w.removed = removed;
  assign::AssignmentChange change{
      removed ? assign::AssignmentChange::Kind::kRemoved
              : assign::AssignmentChange::Kind::kAssigned,
      redis::ToAssignment(m.user, m.space, m.record, gw_.Now()),
      m.from_server.empty() ? std::nullopt : std::optional<std::string>(m.from_server),
      std::move(from_space)};
  w.last = change.assignment;
  notify_(change);
}

std::function<void()> UserWatches::Confirmer(const std::string& user) {
  return [this, user] {
    auto it = watched_.find(user);
    if (it == watched_.end()) return;
    it->second.confirmed = true;
    for (auto& f : std::exchange(it->second.on_confirmed, {})) f();
  };
}

void UserWatches::ReconcileWatched(const std::string& user,
                                   const std::optional<assign::Assignment>& now) {
  auto it = watched_.find(user);
  if (it == watched_.end()) return;
  Watched& w = it->second;
  if (now && (now->epoch > w.last_epoch || w.removed)) {
    std::optional<std::string> from, from_space;
    if (w.last && !w.removed) {
      from = w.last->server;
      from_space = w.last->space;
    }
    w.last_epoch = now->epoch;
    w.removed = false;
    w.last = now;
    notify_({assign::AssignmentChange::Kind::kAssigned, *now, from, from_space});
  } else if (!now && w.last && !w.removed) {
    w.removed = true;
    notify_({assign::AssignmentChange::Kind::kRemoved, *w.last, std::nullopt, std::nullopt});
  }
}

void UserWatches::OnDown() {
  for (auto& [user, w] : watched_) w.confirmed = false;
}

void UserWatches::Resync() {
  for (const auto& [user, w] : watched_) {
    if (!w.confirmed) gw_.Listen(redis::UserChannel(user, pubsub_), Confirmer(user));
  }
  // Watchers may have missed changes during the outage: read each watched user again.
  std::vector<std::string> users;
  for (const auto& [u, w] : watched_) users.push_back(u);
  gw_.ReadRemote(users, [this, users](StoreResult<Assignments> r) {
    auto* found = std::get_if<Assignments>(&r);
    if (found == nullptr) return;
    for (std::size_t i = 0; i < users.size(); ++i) ReconcileWatched(users[i], (*found)[i]);
  });
}

void UserWatches::OnLost(const std::string& user) {
  auto it = watched_.find(user);
  if (it == watched_.end()) return;
  it->second.confirmed = false;
  gw_.Listen(redis::UserChannel(user, pubsub_), [this, user] {
    Confirmer(user)();
    gw_.ReadRemote({user}, [this, user](StoreResult<Assignments> r) {
      if (auto* found = std::get_if<Assignments>(&r)) ReconcileWatched(user, found->front());
    });
  });
}

}  // namespace vrouter::store
