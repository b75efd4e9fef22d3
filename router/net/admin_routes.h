// The admin API's routes as a function of (method, path) -> response, with no sockets: the HTTP
// transport (admin_http.cc) calls it, tests call it directly.
#pragma once

#include <string>
#include <string_view>

#include "router/net/service.h"

namespace vrouter::net {

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

AdminResponse HandleAdmin(std::string_view method, std::string_view target, Service& service);

}  // namespace vrouter::net
