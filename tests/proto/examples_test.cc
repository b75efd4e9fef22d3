// The examples under proto/examples are the spec's test vectors: every valid example decodes,
// every invalid one yields exactly the error code the spec's index names. Client frames are in
// examples/invalid, video-server frames in examples/video_invalid; valid examples of both
// protocols share examples/valid (one per type; `error` is the same message on both).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/codec.h"
#include "proto/video_server_codec.h"

namespace vrouter::proto {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <class Names>
bool IsIn(const Names& names, std::string_view type) {
  return std::find(std::begin(names), std::end(names), type) != std::end(names);
}

// Decodes `text` with `decode` and checks it is a message of type `type` (named by `names`).
template <class Message, class Decode, class Names>
void ExpectDecodesAs(const fs::path& path, std::string_view type, Decode decode,
                     const Names& names) {
  const std::string text = Slurp(path);
  auto r = decode(text);
  ASSERT_TRUE(std::holds_alternative<Message>(r))
      << path << ": " << std::get<DecodeError>(r).message;
  EXPECT_EQ(names[std::get<Message>(r).index()], type) << path;
}

// Every file listed in `dir`/index.json is refused by `decode` with the code the index names.
template <class Decode>
void ExpectInvalidExamples(const fs::path& dir, Decode decode) {
  const auto index = boost::json::parse(Slurp(dir / "index.json"));
  ASSERT_TRUE(index.is_object());
  ASSERT_GE(index.get_object().size(), 15u);
  for (const auto& [file, expected] : index.get_object()) {
    auto r = decode(Slurp(dir / std::string(file)));
    ASSERT_TRUE(std::holds_alternative<DecodeError>(r)) << file << " was accepted";
    const auto& err = std::get<DecodeError>(r);
    EXPECT_EQ(ErrorCodeName(err.code), expected.as_string()) << file << ": " << err.message;
  }
}

TEST(ProtocolExamplesTest, EveryValidExampleDecodes) {
  const fs::path dir = fs::path(VROUTER_PROTO_DIR) / "examples" / "valid";
  ASSERT_TRUE(fs::exists(dir)) << dir;
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string type = entry.path().stem().string();
    ++seen;
    bool known = false;
    if (IsIn(kClientTypeNames, type)) {
      known = true;
      ExpectDecodesAs<ClientMessage>(entry.path(), type, DecodeClientMessage, kClientTypeNames);
    }
    if (IsIn(kServerTypeNames, type)) {
      known = true;
      ExpectDecodesAs<ServerMessage>(entry.path(), type, DecodeServerMessage, kServerTypeNames);
    }
    if (IsIn(kVideoServerTypeNames, type)) {
      known = true;
      ExpectDecodesAs<VideoServerMessage>(entry.path(), type, DecodeVideoServerMessage,
                                          kVideoServerTypeNames);
    }
    if (IsIn(kRouterToVideoServerTypeNames, type)) {  // `error` is decoded both ways
      known = true;
      ExpectDecodesAs<RouterToVideoServerMessage>(
          entry.path(), type, DecodeRouterToVideoServerMessage, kRouterToVideoServerTypeNames);
    }
    EXPECT_TRUE(known) << entry.path() << " names no message type";
  }
  // One example per type; `error` belongs to both protocols.
  EXPECT_EQ(seen, static_cast<int>(std::size(kClientTypeNames) + std::size(kServerTypeNames) +
                                   std::size(kVideoServerTypeNames) +
                                   std::size(kRouterToVideoServerTypeNames) - 1));
}

TEST(ProtocolExamplesTest, EveryInvalidExampleGetsItsErrorCode) {
  ExpectInvalidExamples(fs::path(VROUTER_PROTO_DIR) / "examples" / "invalid", DecodeClientMessage);
}

TEST(ProtocolExamplesTest, EveryInvalidVideoServerExampleGetsItsErrorCode) {
  ExpectInvalidExamples(fs::path(VROUTER_PROTO_DIR) / "examples" / "video_invalid",
                        DecodeVideoServerMessage);
}

}  // namespace
}  // namespace vrouter::proto
