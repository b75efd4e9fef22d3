// The one shape of "a value or why not" across the layers: base::Result<T, E>, a value of T or a
// typed error E. E defaults to base::Error (a message naming what was wrong, for parsers of
// configuration and files, whose callers show it to an operator); layers with a closed set of
// failures use their own enum (store::StoreError, store::GossipError, ...).
//
// C++23's std::expected is what this stands in for (GCC 12 ships it only with -std=c++2b). It is a
// std::variant<T, E> underneath, so std::get_if / std::holds_alternative / std::visit work on it
// too, but code reads better with ok(), value() and error().
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace vrouter::base {

struct Error {
  std::string message;
  bool operator==(const Error&) const = default;
};

// Wraps an error for returning it from a function whose result is a Result (as std::unexpected):
// `return base::Fail(StoreError::kUnavailable);`, `return base::Fail("bad port");`.
template <class E>
struct Failure {
  E error;
};
template <class E>
Failure<std::decay_t<E>> Fail(E&& error) {
  return {std::forward<E>(error)};
}
inline Failure<Error> Fail(const char* message) { return {Error{message}}; }
inline Failure<Error> Fail(std::string message) { return {Error{std::move(message)}}; }

template <class T, class E = Error>
class Result : public std::variant<T, E> {
  static_assert(!std::is_same_v<T, E>, "a Result's value and error types must differ");
  using Base = std::variant<T, E>;

 public:
  // clang-format 14 does not lay out requires-clauses:
  // clang-format off
  // Success, for a Status (a result with no value: `return {};`).
  Result()
    requires std::is_same_v<T, std::monostate>
      : Base(std::in_place_index<0>) {}
  // A value: anything that converts to T implicitly (not merely constructs it: C++20 builds an
  // aggregate from parentheses, and a message must never become a value by accident).
  template <class U = T>
    requires std::is_convertible_v<U&&, T> &&
             (!std::is_same_v<std::remove_cvref_t<U>, Result>) &&
             (!std::is_same_v<std::remove_cvref_t<U>, E>)
  // NOLINTNEXTLINE(bugprone-forwarding-reference-overload): constrained not to take a Result
  Result(U&& value)  // NOLINT(google-explicit-constructor)
      : Base(std::in_place_index<0>, std::forward<U>(value)) {}
  // An error, given as itself (an enum, say) or through Fail().
  Result(E error)  // NOLINT(google-explicit-constructor)
    requires(!std::is_convertible_v<E, T>)
      : Base(std::in_place_index<1>, std::move(error)) {}
  template <class F>
    requires std::is_constructible_v<E, F&&>
  Result(Failure<F> failure)  // NOLINT(google-explicit-constructor)
      : Base(std::in_place_index<1>, std::move(failure.error)) {}
  // clang-format on

  bool ok() const { return this->index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(*this); }
  const T& value() const& { return std::get<0>(*this); }
  T&& value() && { return std::get<0>(std::move(*this)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const { return std::get<1>(*this); }
  // The error's message, or null when it holds a value (E = Error).
  // clang-format off
  const std::string* error_message() const
    requires std::is_same_v<E, Error>
  {
    return ok() ? nullptr : &error().message;
  }
  // clang-format on
};

// Success or why not, for operations with nothing to return (callbacks that check or store a
// value): `return {};` on success, `return base::Fail("...")` otherwise.
template <class E = Error>
using Status = Result<std::monostate, E>;

}  // namespace vrouter::base
