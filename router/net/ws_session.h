// WebSocket connections on the client listeners: the HTTP upgrade (routing by path, subprotocol
// check, admission control), the session, its bounded send queue, and its timers. What the
// frames mean is the SessionProtocol chosen by path: ClientProtocol on /v1/client,
// VideoServerProtocol on /v1/video-server.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "router/service/service.h"
#include "router/telemetry/metrics.h"

namespace boost::asio::ssl {
class context;
}

namespace vrouter::net {

// Takes ownership of an accepted socket, and of the handshake slot its listener reserved
// (Service::ReserveHandshake), and runs the session on the socket's executor.
// `tls` is null for plain ws.
void StartWsSession(boost::asio::ip::tcp::socket socket, service::Service& service,
                    telemetry::Transport transport,
                    const std::shared_ptr<boost::asio::ssl::context>& tls);

}  // namespace vrouter::net
