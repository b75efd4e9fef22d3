// Structured JSON logs: one object per line, {"ts","level","event",...fields}. Lives in base so
// every layer can log; the pure folders (edge, fleet, assign) never do (they return values,
// callers log).
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <variant>

namespace vrouter::log {

struct Field {
  using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;
  std::string_view key;
  Value value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int v) : key(k), value(std::int64_t{v}) {}
  Field(std::string_view k, long v) : key(k), value(std::int64_t{v}) {}
  Field(std::string_view k, long long v) : key(k), value(std::int64_t{v}) {}
  Field(std::string_view k, unsigned v) : key(k), value(std::uint64_t{v}) {}
  Field(std::string_view k, unsigned long v) : key(k), value(std::uint64_t{v}) {}
  Field(std::string_view k, unsigned long long v) : key(k), value(std::uint64_t{v}) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
};

// Installs the JSON logger on stdout at `level` ("trace".."critical", "off").
// Returns false (and changes nothing) for an unknown level name.
bool Init(std::string_view level);

void Write(spdlog::level::level_enum level, std::string_view event,
           std::initializer_list<Field> fields);

inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::debug)) Write(spdlog::level::debug, event, fields);
}
inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::info)) Write(spdlog::level::info, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::warn)) Write(spdlog::level::warn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  if (spdlog::should_log(spdlog::level::err)) Write(spdlog::level::err, event, fields);
}

}  // namespace vrouter::log
