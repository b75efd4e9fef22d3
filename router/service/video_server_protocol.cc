#include "router/service/video_server_protocol.h"

#include "proto/video_server_codec.h"
#include "router/base/log.h"
#include "router/edge/token.h"
#include "router/service/fleet_controller.h"

namespace vrouter::service {

using proto::ErrorCode;

VideoServerProtocol::VideoServerProtocol(Service& service, SessionTransport& transport,
                                         std::weak_ptr<SessionHandle> self,
                                         std::uint64_t connection_id)
    : service_(service),
      transport_(transport),
      self_(std::move(self)),
      connection_id_(connection_id) {}

void VideoServerProtocol::OnText(std::string_view text) {
  proto::VideoServerDecodeResult decoded = proto::DecodeVideoServerMessage(text);
  if (auto* err = std::get_if<proto::DecodeError>(&decoded)) {
    service_.metrics.stats_invalid->Increment();
    log::Debug("video_server_bad_message",
               {{"server", server_}, {"code", proto::ErrorCodeName(err->code)}});
    SendError(err->id, err->code, std::move(err->message));
    return;
  }
  std::visit(
      [this](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Register>) OnRegister(m);
        if constexpr (std::is_same_v<T, proto::Stats>) OnStats(m);
      },
      std::get<proto::VideoServerMessage>(decoded));
}

void VideoServerProtocol::OnRegister(const proto::Register& m) {
  if (authenticated()) {
    SendError(std::nullopt, ErrorCode::kAlreadyRegistered,
              "this connection already registered as '" + server_ + "'");
    return;
  }
  auto verified = edge::VerifyServerToken(m.token, service_.video_server_secret,
                                          service_.unix_seconds(), service_.token_leeway_seconds);
  if (auto* err = std::get_if<edge::TokenError>(&verified)) {
    log::Warn("video_server_auth_failed",
              {{"server", m.id}, {"code", proto::ErrorCodeName(err->code)}});
    SendError(std::nullopt, err->code, std::move(err->message));
    transport_.Close(proto::close_code::kAuthFailed, "authentication failed");
    return;
  }
  const auto& claims = std::get<edge::ServerTokenClaims>(verified);
  if (claims.server != m.id) {
    log::Warn("video_server_auth_failed", {{"server", m.id}, {"credential_for", claims.server}});
    SendError(std::nullopt, ErrorCode::kForbidden,
              "this credential is for server '" + claims.server + "', not '" + m.id + "'");
    transport_.Close(proto::close_code::kAuthFailed, "authentication failed");
    return;
  }
  const fleet::VideoServer info{m.id, m.url, m.region, m.capacity, /*monitored=*/true};
  auto registration = service_.fleet_control.Register(info, connection_id_, self_);
  if (registration.refused) {
    SendError(std::nullopt, ErrorCode::kForbidden, std::move(registration.refused->detail));
    transport_.Close(proto::close_code::kAuthFailed, "registration refused");
    return;
  }
  server_ = m.id;
  if (registration.replaced) {
    registration.replaced->CloseAsync(proto::close_code::kSessionReplaced,
                                      std::string(proto::close_reason::kSessionReplaced));
  }
  Send(proto::Registered{
      server_, service_.replica_id,
      static_cast<std::uint32_t>(service_.fleet_control.report_interval().count()),
      std::string(fleet::ServerStateName(registration.state))});
  transport_.Authenticated();
}

void VideoServerProtocol::OnStats(const proto::Stats& m) {
  if (!authenticated()) {
    SendError(m.seq, ErrorCode::kNotRegistered, "send 'register' with a credential first");
    return;
  }
  service_.fleet_control.OnStats(server_, m);
}

void VideoServerProtocol::OnClosed() {
  if (!authenticated()) return;
  service_.fleet_control.Disconnected(server_, connection_id_);
  log::Info("video_server_disconnected", {{"server", server_}});
}

void VideoServerProtocol::Send(const proto::RouterToVideoServerMessage& message) {
  transport_.Send(std::make_shared<const std::string>(proto::Encode(message)));
}

void VideoServerProtocol::SendError(const proto::RequestId& id, ErrorCode code,
                                    std::string message) {
  Send(proto::Error{id, code, std::move(message)});
}

}  // namespace vrouter::service
