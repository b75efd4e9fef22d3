// Client messages read in place, without a DOM: the fast path of DecodeClientMessage and of the
// router's lookups.
//
// Why not Boost.JSON's DOM here: every client frame would be parsed into a json::value tree (one
// node per field, strings copied into it) only to be copied again into the message structs; on
// the lookup path that was ~2,500 of the ~12,000 user-space instructions per request. This reader
// walks the frame once, validating it as JSON (the grammar, UTF-8, nesting depth) and keeping
// views of the few fields vrouter.v1 defines.
//
// It is deliberately partial. It answers only for frames it can prove are a valid v1 client
// message whose kept strings need no unescaping; for anything else (an error of any kind, an
// escape sequence in a field it keeps, a duplicated known key, an unusual number) it declines,
// and the caller decodes with the DOM decoder, which says exactly what is wrong. So the error
// codes and messages are the DOM decoder's by construction, and the reader's only obligation is
// that whenever it answers, the DOM decoder gives the same message (tests/proto/client_view_test.cc
// and tests/fuzz/codec_fuzz.cc check that on every input they see).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "proto/messages.h"

namespace vrouter::proto {

// A valid client message; the views point into the frame it was read from.
struct ClientView {
  std::size_t type = 0;  // the ClientMessage alternative (kClientTypeNames[type])
  RequestId id;
  std::string_view token;                          // hello
  std::string_view server;                         // resume, report
  std::uint64_t epoch = 0;                         // resume
  FailureReason reason = FailureReason::kOther;    // report
  std::string_view detail;                         // report
  absl::InlinedVector<std::string_view, 8> users;  // lookup, watch, unwatch
};

// Fills `out` and returns true when `text` is a valid client message this reader can read in
// place; false otherwise (then `out` is unspecified and the DOM decoder must decide).
bool ReadClientView(std::string_view text, ClientView& out);

// The owning message `view` stands for.
ClientMessage ToMessage(const ClientView& view);

}  // namespace vrouter::proto
