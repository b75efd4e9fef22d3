// Helpers for the codec tests: unwrap a decode result (std::variant<SomeMessage, DecodeError>)
// into the message or the error the test expects, failing the test otherwise.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <variant>

#include "proto/codec.h"

namespace vrouter::proto::test_util {

// The message of type T in `result`; T{} (after a failure) when it holds anything else.
template <class T, class Result>
T ExpectMessage(const Result& result, std::string_view text) {
  using Message = std::variant_alternative_t<0, Result>;
  const auto* message = std::get_if<Message>(&result);
  EXPECT_TRUE(message != nullptr) << text << ": " << std::get<DecodeError>(result).message;
  if (message == nullptr) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*message)) << text;
  return std::holds_alternative<T>(*message) ? std::get<T>(*message) : T{};
}

// The error in `result`; a default DecodeError (after a failure) when the frame was accepted.
template <class Result>
DecodeError ExpectError(const Result& result, std::string_view text) {
  const auto* error = std::get_if<DecodeError>(&result);
  EXPECT_TRUE(error != nullptr) << "accepted: " << text;
  return error != nullptr ? *error : DecodeError{};
}

// One frame a decoder must refuse, and the code it must refuse it with.
struct BadInput {
  const char* name;
  std::string text;
  ErrorCode code;
};
inline void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

}  // namespace vrouter::proto::test_util
