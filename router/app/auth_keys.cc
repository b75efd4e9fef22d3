#include "router/app/auth_keys.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

#include "proto/codec.h"
#include "router/base/result.h"

namespace vrouter::app {
namespace fs = std::filesystem;

namespace {

// Key files are small; a huge one is a mistake (a wrong mount), not a key.
constexpr std::uintmax_t kMaxKeyFileBytes = std::uintmax_t{64} * 1024;

base::Result<std::string> ReadKeyFile(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return base::Fail(ec.message());
  if (size > kMaxKeyFileBytes) {
    return base::Fail("larger than 64 KiB");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return base::Fail("cannot read");
  }
  return base::Result<std::string>(std::move(text));
}

}  // namespace

base::Result<edge::TokenKeyRing> LoadClientKeys(const std::string& secret,
                                                const std::string& keys_dir) {
  std::vector<edge::VerificationKey> keys;
  if (!secret.empty()) keys.push_back({"", edge::TokenAlg::kHs256, secret});
  if (!keys_dir.empty()) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(keys_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      const std::string name = p.filename().string();
      if (name.starts_with('.')) continue;
      if (p.extension() != ".pem" && p.extension() != ".secret") continue;
      if (!fs::is_regular_file(p, ec)) continue;  // follows symlinks, as mounted Secrets use
      files.push_back(p);
    }
    if (ec) return base::Fail("--auth-keys-dir " + keys_dir + ": " + ec.message());
    std::sort(files.begin(), files.end());  // a stable order: logs and tests see the same ring
    for (const fs::path& p : files) {
      const std::string kid = p.stem().string();
      if (!proto::IsValidId(kid)) {
        return base::Fail(p.string() + ": the file name (the kid) is not a valid id");
      }
      auto text = ReadKeyFile(p);
      if (!text.ok()) return base::Fail(p.string() + ": " + text.error().message);
      std::string material = std::move(text).value();
      const bool es256 = p.extension() == ".pem";
      if (!es256) {  // a secret written with `echo` ends with a newline that is not part of it
        while (!material.empty() && (material.back() == '\n' || material.back() == '\r')) {
          material.pop_back();
        }
      }
      keys.push_back(
          {kid, es256 ? edge::TokenAlg::kEs256 : edge::TokenAlg::kHs256, std::move(material)});
    }
  }
  auto ring = edge::TokenKeyRing::Make(std::move(keys));
  if (auto* err = ring.error_message()) {
    return base::Fail(
        (keys_dir.empty() ? "--auth-secret: " : "--auth-keys-dir " + keys_dir + ": ") + *err);
  }
  return ring;
}

}  // namespace vrouter::app
