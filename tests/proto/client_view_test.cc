// The in-place reader of client messages (proto/client_view.h) against the DOM decoder: whenever
// the reader answers, the DOM decoder must give the same message, and DecodeClientMessage (reader,
// else DOM) must return exactly what the DOM decoder returns, error code and message included.
// Checked on hand-written edge cases, on the spec's examples, on the codec fuzz corpus, and on
// every one-byte deletion and a few one-byte substitutions of the valid frames.
#include "proto/client_view.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "proto/codec.h"
#include "proto/json_scan.h"

namespace vrouter::proto {
namespace {

namespace fs = std::filesystem;

std::string Describe(const ClientDecodeResult& r) {
  if (const auto* e = std::get_if<DecodeError>(&r)) {
    return "error " + std::string(ErrorCodeName(e->code)) + " '" + e->message + "' id " +
           (e->id ? std::to_string(*e->id) : "none");
  }
  const auto& m = std::get<ClientMessage>(r);
  return "message " + std::to_string(m.index()) + " " + Encode(m);
}

// The reader agrees with the DOM decoder on `text`. Returns whether the reader answered.
bool ExpectAgrees(std::string_view text) {
  const ClientDecodeResult dom = DecodeClientMessageDom(text);
  EXPECT_EQ(Describe(DecodeClientMessage(text)), Describe(dom)) << text;
  ClientView view;
  if (!ReadClientView(text, view)) return false;
  EXPECT_EQ(Describe(ToMessage(view)), Describe(dom)) << "the reader accepted: " << text;
  return true;
}

// The word-at-a-time scan finds exactly the first byte a byte-by-byte scan finds, wherever it
// sits in a word and whatever surrounds it.
TEST(JsonScanTest, EndOfPlainRunMatchesByteByByte) {
  for (bool non_ascii : {false, true}) {
    for (int special = 0; special < 256; ++special) {
      for (std::size_t at = 0; at < 19; ++at) {
        std::string s(19, 'a');
        s[at] = static_cast<char>(special);
        if (at + 1 < s.size()) s[at + 1] = '\x1f';  // a later special must not be found first
        const char* end = s.data() + s.size();
        const char* expected = s.data();
        while (expected != end) {
          const auto c = static_cast<unsigned char>(*expected);
          if (c < 0x20 || c == '"' || c == '\\' || (non_ascii && c >= 0x80)) break;
          ++expected;
        }
        EXPECT_EQ(internal::EndOfPlainRun(s.data(), end, non_ascii) - s.data(), expected - s.data())
            << special << " at " << at;
      }
    }
  }
}

TEST(ClientViewTest, ReadsTheUsualFramesInPlace) {
  for (std::string_view text : {
           R"({"type":"lookup","id":3,"users":["alice","bob"]})",
           R"({"type":"lookup","users":[]})",
           R"( {"id":null, "type" : "watch", "users" : [ "a" ] } )",
           R"({"type":"unwatch","id":0,"users":["ü-ser"]})",
           R"({"type":"hello","id":1,"token":"eyJ.eyJ.sig"})",
           R"({"type":"join","id":7,"extra":{"a":[1,2.5e3,-0,true,false,null,"x\n"]}})",
           R"({"type":"resume","server":"sfu-1","epoch":42})",
           R"({"type":"report","server":"sfu-2","reason":"ice_failed","detail":"x"})",
           R"({"type":"report","server":"sfu-2","reason":"other","detail":null})",
           R"({"type":"leave","id":9007199254740991})",
       }) {
    EXPECT_TRUE(ExpectAgrees(text)) << "declined: " << text;
  }
  ClientView view;
  ASSERT_TRUE(ReadClientView(R"({"type":"lookup","id":3,"users":["alice","bob"]})", view));
  EXPECT_EQ(view.type, kClientTypeIndex<Lookup>);
  EXPECT_EQ(view.id, 3u);
  ASSERT_EQ(view.users.size(), 2u);
  EXPECT_EQ(view.users[1], "bob");
}

TEST(ClientViewTest, DeclinesWhatTheDomMustDecide) {
  for (std::string_view text : {
           "",
           "[]",
           "{",
           R"({"type":"lookup","users":["a"]} x)",
           R"({"type":"lookup","users":["a"],})",
           R"({"type":"lookup","users":["a\u0062"]})",            // escaped: left to the DOM
           R"({"type":"look\u0075p","users":["a"]})",             // escaped type
           R"({"t\u0079pe":"join"})",                             // escaped key
           R"({"type":"join","type":"leave"})",                   // duplicate key
           R"({"type":"join","id":-0})",                          // negative zero
           R"({"type":"join","id":1.0})",                         // not an integer literal
           R"({"type":"join","id":1e2})",                         //
           R"({"type":"join","id":9007199254740992})",            // above 2^53-1
           R"({"type":"join","id":"1"})",                         // wrong type
           R"({"type":"join","id":01})",                          // leading zero
           R"({"type":"join","x":1e99999})",                      // exponent too long to judge
           R"({"type":"join","x":"\ud83d\ude00"})",               // escaped surrogate pair
           "{\"type\":\"join\",\"x\":\"\xed\xa0\x80\"}",          // UTF-8 surrogate
           "{\"type\":\"join\",\"x\":\"\xc0\xaf\"}",              // overlong
           "{\"type\":\"join\",\"x\":\"\x01\"}",                  // raw control character
           R"({"type":"join","x":[[[[[[[[1]]]]]]]]})",            // nine deep
           R"({"type":"lookup","users":["a",1]})",                // not an id
           R"({"type":"lookup","users":[""]})",                   //
           "{\"type\":\"lookup\",\"users\":[\"\x7f\"]}",          //
           R"({"type":"hello","token":""})",                      // empty token
           R"({"type":"resume","server":"s","epoch":null})",      // missing epoch
           R"({"type":"report","server":"s","reason":"bored"})",  // unknown reason
           R"({"type":"frobnicate"})",                            // unknown type
           R"({"id":3})",                                         // no type
       }) {
    EXPECT_FALSE(ExpectAgrees(text)) << "answered: " << text;
  }
  // Eight deep is still JSON the DOM takes (kMaxJsonDepth): the reader may answer.
  ExpectAgrees(R"({"type":"join","x":[[[[[[[1]]]]]]]})");
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> FilesUnder(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(Slurp(e.path()));
  }
  return out;
}

TEST(ClientViewTest, AgreesOnExamplesAndFuzzCorpus) {
  std::size_t answered = 0, total = 0;
  for (const fs::path& dir : {fs::path(VROUTER_PROTO_DIR) / "examples",
                              fs::path(VROUTER_TESTS_DIR) / "fuzz" / "corpus" / "codec"}) {
    for (const std::string& text : FilesUnder(dir)) {
      ++total;
      answered += ExpectAgrees(text) ? 1 : 0;
    }
  }
  EXPECT_GT(total, 100u);
  EXPECT_GT(answered, 0u);
}

// Every one-byte deletion and a few substitutions of each valid client frame.
TEST(ClientViewTest, AgreesOnMutationsOfValidFrames) {
  std::vector<std::string> frames = FilesUnder(fs::path(VROUTER_PROTO_DIR) / "examples" / "valid");
  frames.push_back(R"({"type":"report","id":5,"server":"sfu-2","reason":"no_media","detail":"d"})");
  frames.push_back(R"({"type":"lookup","id":12,"users":["a","bb","ccc"],"x":[{"y":null}]})");
  constexpr std::string_view kSubstitutes = "\"\\{}[],:0-9. \x01\x7f\xc3\xed\xff";
  for (const std::string& frame : frames) {
    if (std::holds_alternative<DecodeError>(DecodeClientMessageDom(frame))) continue;
    for (std::size_t i = 0; i < frame.size(); ++i) {
      std::string deleted = frame;
      deleted.erase(i, 1);
      ExpectAgrees(deleted);
      for (char c : kSubstitutes) {
        std::string changed = frame;
        changed[i] = c;
        ExpectAgrees(changed);
      }
    }
  }
}

}  // namespace
}  // namespace vrouter::proto
