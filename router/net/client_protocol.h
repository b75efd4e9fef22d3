// What a client session means, independent of the socket it arrives on: authentication, join,
// resume, lookups, watches, reports, leave. One instance per session, used only on the session's
// thread. The transport (ws or wss) feeds it text frames and gives it a way to send and to close;
// tests drive it directly with a fake transport.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "proto/messages.h"
#include "router/core/assignment.h"
#include "router/net/service.h"
#include "router/net/session_protocol.h"

namespace vrouter::net {

class ClientProtocol final : public SessionProtocol {
 public:
  // `self` is the session's own handle: the watch hub pushes to it, a newer session closes it.
  ClientProtocol(Service& service, SessionTransport& transport, std::weak_ptr<SessionHandle> self,
                 std::uint64_t session_id);
  ClientProtocol(const ClientProtocol&) = delete;
  ClientProtocol& operator=(const ClientProtocol&) = delete;

  void OnText(std::string_view text) override;
  // The connection is gone: drop watches, detach the assignment (it now waits for a resume).
  void OnClosed() override;

  bool authenticated() const override { return !user_.empty(); }

 private:
  void OnHello(const proto::Hello& m);
  void OnJoin(const proto::Join& m);
  void OnResume(const proto::Resume& m);
  void OnLookup(const proto::Lookup& m);
  void OnWatch(const proto::Watch& m);
  void OnUnwatch(const proto::Unwatch& m);
  void OnReport(const proto::Report& m);
  void OnLeave(const proto::Leave& m);

  // Finds or makes this user's assignment. `resume_server`/`resume_epoch` come from `resume`.
  std::variant<core::Assignment, proto::ErrorCode> Place(const std::string* resume_server,
                                                         std::uint64_t resume_epoch);
  void AnswerPlacement(const proto::RequestId& id, const std::string* resume_server,
                       std::uint64_t resume_epoch);
  void Locate(std::span<const std::string> users, std::vector<proto::UserLocation>& out) const;

  void Send(const proto::ServerMessage& message);
  void SendError(const proto::RequestId& id, proto::ErrorCode code, std::string message);

  Service& service_;
  SessionTransport& transport_;
  std::weak_ptr<SessionHandle> self_;
  const std::uint64_t session_id_;

  std::string user_;  // empty until `hello` succeeds
  std::string space_;
  std::string region_;  // from the token, when it names one
  bool joined_ = false;
  absl::flat_hash_set<std::string> watching_;
};

// Turns assignment changes into `moved` / `left` pushes to watchers: encoded once per change,
// shared by every watcher. Installed as the store's change listener by the app.
void PublishChange(const core::AssignmentChange& change, const core::FleetSnapshot& fleet,
                   core::WatchHub& hub, core::Metrics& metrics);

proto::ServerRef ServerRefFor(const core::FleetSnapshot& fleet, const std::string& server_id);

}  // namespace vrouter::net
