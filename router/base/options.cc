#include "router/base/options.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <charconv>
#include <cmath>

namespace vrouter::base::options {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnknownOption:
      return "unknown_option";
    case ErrorCode::kGivenTwice:
      return "given_twice";
    case ErrorCode::kMissingValue:
      return "missing_value";
    case ErrorCode::kUnexpectedArgument:
      return "unexpected_argument";
    case ErrorCode::kRequired:
      return "required";
    case ErrorCode::kBadSyntax:
      return "bad_syntax";
    case ErrorCode::kOutOfRange:
      return "out_of_range";
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kConflict:
      return "conflict";
  }
  return "?";
}

namespace {

// "in [1, 100000]", "at least 1", "> 0", "at most 9"; empty without a range.
std::string RangeSpan(const Setting& s) {
  if (!s.min.empty() && !s.max.empty()) {
    return std::string("in ") + (s.min_exclusive ? "(" : "[") + s.min + ", " + s.max + "]";
  }
  if (!s.min.empty()) return (s.min_exclusive ? "> " : "at least ") + s.min;
  if (!s.max.empty()) return "at most " + s.max;
  return {};
}

// A word that is an option rather than a value: "--x", "-h"; but "-1" and "-" are values.
bool LooksLikeOption(std::string_view word) {
  return word.size() > 1 && word[0] == '-' &&
         !(std::isdigit(static_cast<unsigned char>(word[1])) != 0 || word[1] == '.');
}

// Lines of at most `width` characters, broken at spaces.
std::vector<std::string> Wrap(std::string_view text, std::size_t width) {
  std::vector<std::string> lines;
  std::string line;
  while (!text.empty()) {
    const auto space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(std::move(line));
      line.clear();
    }
    line += (line.empty() ? "" : " ") + std::string(word);
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

}  // namespace

std::string Setting::Display() const { return "--" + flag + (env.empty() ? "" : " (" + env + ")"); }

std::string Setting::RangeText() const {
  const std::string span = RangeSpan(*this);
  return span.empty() ? span : "must be " + span;
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::optional<bool> ParseBool(std::string_view text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.empty() || lower == "true" || lower == "1" || lower == "yes" || lower == "on") {
    return true;
  }
  if (lower == "false" || lower == "0" || lower == "no" || lower == "off") return false;
  return std::nullopt;
}

std::string FormatNumber(double value) {
  char buffer[64];
  const bool whole = std::isfinite(value) && std::fabs(value) < 1e15 && value == std::trunc(value);
  const auto result =
      whole ? std::to_chars(buffer, buffer + sizeof(buffer), static_cast<std::int64_t>(value))
            : std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

WholeBounds ClipRange(const Range& range, std::int64_t type_min, std::uint64_t type_max) {
  WholeBounds b{type_min, type_max};
  if (range.min) {
    const double lo = range.min_exclusive ? std::floor(*range.min) + 1 : std::ceil(*range.min);
    if (lo > static_cast<double>(type_min)) b.min = static_cast<std::int64_t>(lo);
  }
  if (range.max && *range.max < static_cast<double>(type_max)) {
    b.max = *range.max < 0 ? 0 : static_cast<std::uint64_t>(std::floor(*range.max));
  }
  return b;
}

std::variant<Problem, std::int64_t, std::uint64_t> ParseWhole(std::string_view text,
                                                              WholeBounds bounds) {
  const Problem out_of_range{ErrorCode::kOutOfRange, "'" + std::string(text) + "'"};
  const Problem not_whole{ErrorCode::kBadSyntax,
                          "'" + std::string(text) + "' is not a whole number"};
  const char* end = text.data() + text.size();
  if (text.starts_with('-')) {
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec == std::errc::result_out_of_range && ptr == end) return out_of_range;
    if (ec != std::errc() || ptr != end) return not_whole;
    if (v < bounds.min) return out_of_range;
    return v;
  }
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec == std::errc::result_out_of_range && ptr == end) return out_of_range;
  if (ec != std::errc() || ptr != end) return not_whole;
  if (v > bounds.max || (bounds.min > 0 && v < static_cast<std::uint64_t>(bounds.min))) {
    return out_of_range;
  }
  return v;
}

std::variant<Problem, double> ParseReal(std::string_view text, const Range& range) {
  double v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v)) {
    return Problem{ErrorCode::kBadSyntax, "'" + std::string(text) + "' is not a finite number"};
  }
  const bool low = range.min && (range.min_exclusive ? !(v > *range.min) : !(v >= *range.min));
  const bool high = range.max && !(v <= *range.max);
  if (low || high) return Problem{ErrorCode::kOutOfRange, "'" + std::string(text) + "'"};
  return v;
}

Schema::Schema(std::string usage, std::string env_prefix)
    : usage_(std::move(usage)), env_prefix_(std::move(env_prefix)) {}

const Setting* Schema::Find(std::string_view flag) const {
  for (const Setting& s : settings_) {
    if (s.flag == flag) return &s;
  }
  return nullptr;
}

std::string Schema::EnvName(std::string_view flag) const {
  if (env_prefix_.empty()) return {};
  std::string name = env_prefix_;
  for (char c : flag) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

Setting& Schema::AddSetting(Setting setting) {
  setting.env = EnvName(setting.flag);
  setting.section = section_;
  settings_.push_back(std::move(setting));
  return settings_.back();
}

Error Schema::Refuse(std::size_t row, const Problem& problem) const {
  const Setting& s = settings_[row];
  std::string message = s.Display() + ": ";
  if (problem.code == ErrorCode::kOutOfRange) {
    message += s.RangeText() + ", not " + problem.text;
  } else {
    message += problem.text;
  }
  return {problem.code, s.flag, std::move(message)};
}

std::variant<Schema::Collected, Error> Schema::Collect(const std::vector<std::string>& args,
                                                       const EnvLookup& env) const {
  Collected out;
  out.values.resize(settings_.size());
  std::vector<bool> on_command_line(settings_.size(), false);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out.help = true;
      continue;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      if (LooksLikeOption(arg))
        return Error{ErrorCode::kUnknownOption, "", arg + ": unknown option"};
      return Error{ErrorCode::kUnexpectedArgument, "",
                   "unexpected argument '" + arg + "' (settings are --NAME VALUE or --NAME=VALUE)"};
    }
    const auto eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const Setting* setting = Find(name);
    if (setting == nullptr) {
      return Error{ErrorCode::kUnknownOption, "", "--" + name + ": unknown option"};
    }
    const std::size_t row = static_cast<std::size_t>(setting - settings_.data());
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (setting->is_switch) {
      value = "true";
    } else if (i + 1 < args.size() && !LooksLikeOption(args[i + 1])) {
      value = args[++i];
    } else {
      return Refuse(row, {ErrorCode::kMissingValue, "needs a value"});
    }
    if (on_command_line[row] && !setting->repeatable) {
      return Refuse(row, {ErrorCode::kGivenTwice, "given more than once"});
    }
    on_command_line[row] = true;
    out.values[row].push_back(std::move(value));
  }
  // The environment second, for what the command line left out: a flag wins.
  for (std::size_t row = 0; row < settings_.size() && env; ++row) {
    if (on_command_line[row] || settings_[row].env.empty()) continue;
    if (auto value = env(settings_[row].env)) out.values[row].push_back(std::move(*value));
  }
  return out;
}

std::string Schema::RenderHelp(const std::vector<std::string>& defaults) const {
  constexpr std::size_t kLeft = 36;
  constexpr std::size_t kWidth = 100;
  std::string out = usage_;
  auto row = [&out](std::string left, std::string_view text) {
    const std::vector<std::string> lines = Wrap(text, kWidth - kLeft);
    if (left.size() + 1 > kLeft) {
      out += left + "\n";
      left.clear();
    }
    left.resize(kLeft, ' ');
    for (std::size_t i = 0; i < lines.size(); ++i) {
      out += (i == 0 ? left : std::string(kLeft, ' ')) + lines[i] + "\n";
    }
    if (lines.empty()) out += left + "\n";
  };
  std::string section = "\x01";  // differs from every real heading
  for (std::size_t i = 0; i < settings_.size(); ++i) {
    const Setting& s = settings_[i];
    if (s.section != section) {
      section = s.section;
      out += "\n";
      for (const auto& line : Wrap((section.empty() ? "options" : section) + ":", kWidth)) {
        out += line + "\n";
      }
      if (i == 0) row("  -h [ --help ]", "print this help");
    }
    std::vector<std::string> notes;
    if (s.required) notes.emplace_back("required");
    if (!s.is_switch && !s.required && i < defaults.size() && !defaults[i].empty()) {
      notes.push_back("default " + defaults[i]);
    }
    if (s.ranged) notes.push_back(RangeSpan(s));
    if (!s.choices.empty()) {
      std::string names;
      for (const auto& c : s.choices) names += (names.empty() ? "" : ", ") + c;
      notes.push_back("one of " + names);
    }
    if (s.repeatable) notes.emplace_back("repeatable");
    std::string text = s.help;
    for (std::size_t n = 0; n < notes.size(); ++n) {
      text += (n == 0 ? " (" : "; ") + notes[n] + (n + 1 == notes.size() ? ")" : "");
    }
    row("  --" + s.flag + (s.value_name.empty() ? "" : " " + s.value_name), text);
  }
  return out;
}

std::string Schema::RenderJson(const std::vector<std::string>& defaults) const {
  namespace json = boost::json;
  auto number = [](const std::string& text) -> json::value {
    if (text.empty()) return nullptr;
    return json::parse(text);
  };
  json::array rows;
  for (std::size_t i = 0; i < settings_.size(); ++i) {
    const Setting& s = settings_[i];
    json::array choices;
    for (const auto& c : s.choices) choices.emplace_back(c);
    rows.push_back(json::object{
        {"flag", "--" + s.flag},
        {"env", s.env.empty() ? json::value(nullptr) : json::value(s.env)},
        {"section", s.section},
        {"type", s.type},
        {"value_name", s.value_name},
        {"default", i < defaults.size() ? defaults[i] : std::string()},
        {"min", number(s.min)},
        {"max", number(s.max)},
        {"min_exclusive", s.min_exclusive},
        {"choices", std::move(choices)},
        {"required", s.required},
        {"repeatable", s.repeatable},
        {"switch", s.is_switch},
        {"help", s.help},
    });
  }
  const json::object root{
      {"env_prefix", env_prefix_},
      {"builtins", json::array{"--help", "-h"}},
      {"settings", std::move(rows)},
  };
  return json::serialize(root) + "\n";
}

}  // namespace vrouter::base::options
