// What a video-server connection on /v1/video-server means (protocol vrouter.video.v1, see
// proto/PROTOCOL.md): `register` with the server's own credential, then `stats` every interval,
// fed to the FleetController. One instance per connection, used only on the session's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proto/video_server_messages.h"
#include "router/service/service.h"
#include "router/service/session_protocol.h"

namespace vrouter::service {

class VideoServerProtocol final : public SessionProtocol {
 public:
  VideoServerProtocol(Service& service, SessionTransport& transport,
                      std::weak_ptr<SessionHandle> self, std::uint64_t connection_id);

  void OnText(std::string_view text) override;
  void OnClosed() override;
  bool authenticated() const override { return !server_.empty(); }

 private:
  void OnRegister(const proto::Register& m);
  void OnStats(const proto::Stats& m);
  void SendError(const proto::RequestId& id, proto::ErrorCode code, std::string message);
  void Send(const proto::RouterToVideoServerMessage& message);

  Service& service_;
  SessionTransport& transport_;
  std::weak_ptr<SessionHandle> self_;
  const std::uint64_t connection_id_;
  std::string server_;  // empty until `register` succeeds
};

}  // namespace vrouter::service
