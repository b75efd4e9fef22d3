// The admin HTTP transport (its own port): keep-alive HTTP/1.1, bounded request size and time.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "router/net/service.h"

namespace vrouter::net {

void StartAdminSession(boost::asio::ip::tcp::socket socket, Service& service);

}  // namespace vrouter::net
