#include "router/app/file_fingerprint.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace vrouter::app {
namespace {

void Append(std::string& out, const std::string& path) {
  struct stat st {};
  out += path;
  if (::stat(path.c_str(), &st) != 0) {
    out += ":missing;";
    return;
  }
  out += ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
}

}  // namespace

std::string FilesFingerprint(const std::vector<std::string>& paths) {
  std::string out;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) {
      Append(out, path);
      continue;
    }
    std::vector<std::string> entries;
    for (std::filesystem::directory_iterator it(path, ec), end; !ec && it != end;
         it.increment(ec)) {
      entries.push_back(it->path().string());
    }
    std::sort(entries.begin(), entries.end());
    out += path + "{";
    for (const auto& e : entries) Append(out, e);
    out += "}";
  }
  return out;
}

}  // namespace vrouter::app
