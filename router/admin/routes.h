// The admin API's routes as a function of (method, path) -> response, with no sockets: the HTTP
// transport (router/admin/http.cc) calls it, tests call it directly.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "router/edge/admin_auth.h"
#include "router/service/service.h"

namespace vrouter::admin {

struct AdminRequest {
  std::string_view method;
  std::string_view target;
  edge::AdminCaller caller;
  std::string_view origin;  // Origin header; empty when absent (not a browser request)
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
};

AdminResponse HandleAdmin(const AdminRequest& request, service::Service& service);

}  // namespace vrouter::admin
