#include "router/app/auth_keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "router/app/file_fingerprint.h"
#include "tests/support/ec_keys.h"

namespace vrouter::app {
namespace {

namespace fs = std::filesystem;
constexpr std::int64_t kNow = 1'800'000'000;

class AuthKeysTest : public ::testing::Test {
 protected:
  AuthKeysTest() {
    dir_ = fs::temp_directory_path() /
           ("vrouter-keys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~AuthKeysTest() override { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  edge::TokenKeyRing Load(const std::string& secret = "") {
    auto r = LoadClientKeys(secret, dir_.string());
    if (auto* err = r.error_message()) ADD_FAILURE() << *err;
    return std::holds_alternative<edge::TokenKeyRing>(r) ? std::get<edge::TokenKeyRing>(r)
                                                         : edge::TokenKeyRing{};
  }
  std::string Error(const std::string& secret = "") {
    auto r = LoadClientKeys(secret, dir_.string());
    return !r.ok() ? r.error().message : "";
  }

  fs::path dir_;
};

TEST_F(AuthKeysTest, FilesNamedByKidMakeTheRing) {
  const auto es = testing::MakeP256KeyPair();
  Write("issuer-1.pem", es.public_pem);
  Write("legacy.secret", "hs-secret\n");  // the newline `echo` adds is not part of the secret
  Write("..data", "ignored");             // Kubernetes' mount internals
  Write("README.txt", "ignored");
  const auto ring = Load("plain-secret");
  ASSERT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.count(edge::TokenAlg::kEs256), 1u);
  const auto es_token = edge::MintToken(
      "alice", "s", edge::SigningKey{"issuer-1", edge::TokenAlg::kEs256, es.private_pem}, kNow,
      kNow + 60);
  const auto hs_token = edge::MintToken(
      "bob", "s", edge::SigningKey{"legacy", edge::TokenAlg::kHs256, "hs-secret"}, kNow, kNow + 60);
  const auto plain = edge::MintToken("carol", "s", "plain-secret", kNow, kNow + 60);
  for (const auto& t : {es_token, hs_token, plain}) {
    auto r = edge::VerifyToken(t, ring, kNow, 0);
    EXPECT_TRUE(std::holds_alternative<edge::TokenClaims>(r))
        << std::get<edge::TokenError>(r).message;
  }
}

TEST_F(AuthKeysTest, ABadFileFailsTheWholeLoadNamingIt) {
  Write("good.secret", "s");
  Write("broken.pem", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
  const std::string err = Error();
  EXPECT_NE(err.find("broken"), std::string::npos) << err;
  fs::remove(dir_ / "broken.pem");
  Write("empty.secret", "\n");
  EXPECT_NE(Error().find("empty"), std::string::npos);
}

TEST_F(AuthKeysTest, MissingDirectoryIsAnError) {
  EXPECT_NE(LoadClientKeys("", (dir_ / "nope").string()).error().message.find("nope"),
            std::string::npos);
}

TEST_F(AuthKeysTest, FingerprintChangesWhenAKeyIsAddedOrReplaced) {
  Write("a.secret", "one");
  const std::string before = FilesFingerprint({dir_.string()});
  EXPECT_EQ(before, FilesFingerprint({dir_.string()}));
  Write("b.secret", "two");
  const std::string added = FilesFingerprint({dir_.string()});
  EXPECT_NE(before, added);
  // Replaced by rename, as `kubectl` and cert-manager do: a new inode.
  Write("a.secret.tmp", "three");
  fs::rename(dir_ / "a.secret.tmp", dir_ / "a.secret");
  EXPECT_NE(added, FilesFingerprint({dir_.string()}));
  EXPECT_NE(FilesFingerprint({(dir_ / "missing").string()}), "");
}

}  // namespace
}  // namespace vrouter::app
