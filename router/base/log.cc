#include "router/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string_view.hpp>
#include <boost/json/value.hpp>
#include <string>

namespace vrouter::log {

bool Init(std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to `off`; only accept `off` when asked for.
  if (parsed == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::stdout_logger_mt("vrouter");
  logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                      spdlog::pattern_time_type::utc);
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return true;
}

void Write(spdlog::level::level_enum level, std::string_view event,
           std::initializer_list<Field> fields) {
  std::string line = "\"event\":";
  line += boost::json::serialize(boost::json::string_view(event.data(), event.size()));
  for (const Field& f : fields) {
    line += ',';
    line += boost::json::serialize(boost::json::string_view(f.key.data(), f.key.size()));
    line += ':';
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            line += boost::json::serialize(boost::json::string_view(v.data(), v.size()));
          } else {
            line += boost::json::serialize(boost::json::value(v));
          }
        },
        f.value);
  }
  spdlog::log(level, "{}", line);
}

}  // namespace vrouter::log
