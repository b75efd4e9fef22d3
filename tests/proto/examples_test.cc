// The examples under proto/examples are the spec's test vectors: every valid example decodes,
// every invalid one yields exactly the error code the spec's index names.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/codec.h"

namespace vrouter::proto {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool IsClientType(std::string_view type) {
  return std::find(std::begin(kClientTypeNames), std::end(kClientTypeNames), type) !=
         std::end(kClientTypeNames);
}

TEST(ProtocolExamplesTest, EveryValidExampleDecodes) {
  const fs::path dir = fs::path(VROUTER_PROTO_DIR) / "examples" / "valid";
  ASSERT_TRUE(fs::exists(dir)) << dir;
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string text = Slurp(entry.path());
    const std::string type = entry.path().stem().string();
    ++seen;
    if (IsClientType(type)) {
      auto r = DecodeClientMessage(text);
      ASSERT_TRUE(std::holds_alternative<ClientMessage>(r))
          << entry.path() << ": " << std::get<DecodeError>(r).message;
      EXPECT_EQ(kClientTypeNames[std::get<ClientMessage>(r).index()], type);
    } else {
      auto r = DecodeServerMessage(text);
      ASSERT_TRUE(std::holds_alternative<ServerMessage>(r))
          << entry.path() << ": " << std::get<DecodeError>(r).message;
      EXPECT_EQ(kServerTypeNames[std::get<ServerMessage>(r).index()], type);
    }
  }
  EXPECT_EQ(seen, static_cast<int>(std::size(kClientTypeNames) + std::size(kServerTypeNames)));
}

TEST(ProtocolExamplesTest, EveryInvalidExampleGetsItsErrorCode) {
  const fs::path dir = fs::path(VROUTER_PROTO_DIR) / "examples" / "invalid";
  const auto index = boost::json::parse(Slurp(dir / "index.json"));
  ASSERT_TRUE(index.is_object());
  ASSERT_GE(index.get_object().size(), 15u);
  for (const auto& [file, expected] : index.get_object()) {
    const std::string text = Slurp(dir / std::string(file));
    auto r = DecodeClientMessage(text);
    ASSERT_TRUE(std::holds_alternative<DecodeError>(r)) << file << " was accepted";
    EXPECT_EQ(ErrorCodeName(std::get<DecodeError>(r).code), expected.as_string()) << file;
  }
}

}  // namespace
}  // namespace vrouter::proto
