// The admin HTTP transport (its own port): keep-alive HTTP/1.1, bounded request size and time.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "router/service/service.h"

namespace vrouter::admin {

void StartAdminSession(boost::asio::ip::tcp::socket socket, service::Service& service);

}  // namespace vrouter::admin
