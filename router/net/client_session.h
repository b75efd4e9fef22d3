// Client connections on /v1/client: the HTTP upgrade (with admission control), the WebSocket
// session, its bounded send queue, and its timers. The protocol itself is ClientProtocol.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "router/core/metrics.h"
#include "router/net/service.h"

namespace boost::asio::ssl {
class context;
}

namespace vrouter::net {

// Takes ownership of an accepted socket and runs the session on the socket's executor.
// `tls` is null for plain ws.
void StartClientSession(boost::asio::ip::tcp::socket socket, Service& service,
                        core::Transport transport, boost::asio::ssl::context* tls);

}  // namespace vrouter::net
