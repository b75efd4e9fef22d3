// The operator dashboard's static files (router/admin/dashboard/), embedded in the binary at build
// time by cmake/embed_assets.cmake: the admin port serves them with no files beside the binary and
// no external CDN.
#pragma once

#include <span>
#include <string_view>

namespace vrouter::admin {

struct StaticAsset {
  std::string_view path;  // "/index.html", "/dashboard.js", ...
  std::string_view content_type;
  std::string_view body;
};

std::span<const StaticAsset> DashboardAssets();

}  // namespace vrouter::admin
