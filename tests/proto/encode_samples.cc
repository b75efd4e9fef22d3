// Prints one encoded sample of every message of both protocols (vrouter.v1 and
// vrouter.video.v1), one JSON object per line, for proto/check_examples.py to validate against the
// JSON Schemas: the schemas and the encoder cannot drift apart.
#include <iostream>
#include <limits>

#include "proto/codec.h"
#include "proto/video_server_codec.h"

int main() {
  using namespace vrouter::proto;
  const ServerRef s{"sfu-1", "wss://sfu-1.example/", "eu-west"};
  const std::vector<ClientMessage> client = {
      Hello{1, "eyJhbGciOiJIUzI1NiJ9.e30.sig"},
      Join{2},
      Join{std::nullopt},
      Resume{3, "sfu-1", 12},
      Lookup{4, {"bob", "carol"}},
      Watch{5, {"bob"}},
      Unwatch{6, {"bob"}},
      Report{7, "sfu-1", FailureReason::kNoMedia, "no frames for 5 s"},
      Report{8, "sfu-1", FailureReason::kOther, ""},
      Leave{9}};
  const std::vector<ServerMessage> server = {
      Welcome{1, "r-1", "42", "alice", "space-1", Limits{131072, 1000, 1000}},
      Assigned{2, s, 7, false},
      LookupResult{4, {UserLocation{"bob", s, 7}, UserLocation{"carol", std::nullopt, 0}}},
      WatchResult{5, {UserLocation{"bob", s, 7}}},
      Ack{6},
      Ack{std::nullopt},
      Moved{"bob", s, 8, std::string("sfu-0")},
      Moved{"bob", s, 8, std::nullopt},
      Left{"bob", 8},
      Migrate{s, 9, "drain"},
      GoAway{"shutdown", 2500},
      Error{4, ErrorCode::kBatchTooLarge, "lookup of 2000 users; the limit is 1000"},
      Error{std::nullopt, ErrorCode::kInvalidJson, "invalid JSON: syntax error"}};
  const std::vector<VideoServerMessage> video_server = {
      Register{"eyJhbGciOiJIUzI1NiJ9.e30.sig", "sfu-1", "wss://sfu-1.example/rtc", "eu-west", 500},
      Register{"t", std::string(kMaxIdBytes, 'i'), std::string(kMaxUrlBytes, 'u'),
               std::string(kMaxRegionBytes, 'r'), kMaxCapacity},
      Register{"t", "sfu-2", "wss://sfu-2.example/rtc", "us-east", 1},
      Stats{0, 0, 0, 0, 0, 0, 0, 0.0, std::nullopt, std::nullopt},
      Stats{42, 120, 118, 1843200, 5529600, 1658880000, 4976640000, 0.37, std::nullopt,
            std::nullopt},
      Stats{kMaxSafeInteger, std::numeric_limits<std::uint32_t>::max(),
            std::numeric_limits<std::uint32_t>::max(), kMaxSafeInteger, kMaxSafeInteger,
            kMaxSafeInteger, kMaxSafeInteger, 1.0, std::nullopt, std::nullopt},
      Stats{1, 1, 1, 1, 1, 1, 1, 1e-9, std::nullopt, std::nullopt}};
  const std::vector<RouterToVideoServerMessage> to_video_server = {
      Registered{"sfu-1", "r-1", 1000, "pending"},
      Registered{"sfu-1", "r-1", 1, "active"},
      StateChange{"active", "reporting"},
      StateChange{"ejected", "not_forwarding"},
      StateChange{"ejected", "ejection_renewed"},
      StateChange{"active", "reset"},
      StateChange{"draining", "drained"},
      StateChange{"gone", "gone"},
      Error{42, ErrorCode::kInvalidMessage, "stats: field 'cpu' must be a number in [0, 1]"},
      Error{std::nullopt, ErrorCode::kForbidden, "the token is for another server"},
      Error{7, ErrorCode::kNotRegistered, "send 'register' first"},
      Error{std::nullopt, ErrorCode::kAlreadyRegistered, "already registered"}};
  for (const auto& m : client) std::cout << Encode(m) << "\n";
  for (const auto& m : server) std::cout << Encode(m) << "\n";
  for (const auto& m : video_server) std::cout << Encode(m) << "\n";
  for (const auto& m : to_video_server) std::cout << Encode(m) << "\n";
}
