// Command-line settings declared once, as a table. Each row names a setting's flag, its
// environment variable (derived from a prefix: --max-batch -> VROUTER_MAX_BATCH), its range or
// choices, its help text and the member of the options struct it fills; the struct's own
// default member initializers are the defaults. From the one table come parsing (a flag wins
// over its variable), validation with messages generated from the same range and naming the flag
// and its variable, --help, and a JSON dump that documentation and deploy checks compare against.
// The router (router/app/settings.cc) and the benchmark tools (bench/load, bench/sim) each declare
// their own table. Pure: no I/O (the environment is a lookup function).
//
// Not Boost.program_options underneath: it knows no environment variables, ranges or typed
// errors (each tool wrapped it in its own validation code, written twice per range), its
// error texts looped forever on values holding its %placeholders% (Boost 1.81), and a table of
// rows is simpler to parse than to translate into option descriptions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

// The member a row fills, as an accessor that works on the struct and on a const one:
//   table.Integer("max-batch", VROUTER_FIELD(limits.max_batch), Range::In(1, 100000), "...");
// The expansion is a lambda and `path` a member path: neither can be parenthesized.
#define VROUTER_FIELD(path) \
  [](auto& target) -> auto& { return target.path; }  // NOLINT(bugprone-macro-parentheses)

#include "router/base/result.h"

namespace vrouter::base::options {

// Why a command line or environment was refused.
enum class ErrorCode {
  kUnknownOption,       // --bogus
  kGivenTwice,          // a single-valued flag given more than once on the command line
  kMissingValue,        // --threads as the last word, or followed by another option
  kUnexpectedArgument,  // a word that is not an option
  kRequired,            // a required setting given neither as a flag nor as a variable
  kBadSyntax,           // not a number, not a boolean, not one of the choices
  kOutOfRange,          // a number outside its setting's range
  kInvalid,             // refused by the setting's own parser
  kConflict,            // settings that do not fit together
};
std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInvalid;
  std::string setting;  // the flag without dashes ("max-batch"); empty when none is at fault
  std::string message;  // for people: names the flag and its environment variable
};

// What one row's parser says about a value it refuses; `text` follows "--flag (VAR): ".
struct Problem {
  ErrorCode code = ErrorCode::kInvalid;
  std::string text;
};
using Outcome = std::optional<Problem>;

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The values a number may take, both ends inclusive unless `min_exclusive`. Absent ends are the
// member's type's (whole numbers) or unbounded (real numbers).
struct Range {
  std::optional<double> min;
  std::optional<double> max;
  bool min_exclusive = false;

  static Range In(double lo, double hi) { return {lo, hi, false}; }
  static Range AtLeast(double lo) { return {lo, std::nullopt, false}; }
  static Range Above(double lo) { return {lo, std::nullopt, true}; }
  static Range AtMost(double hi) { return {std::nullopt, hi, false}; }
  static Range Any() { return {}; }
};

// One row as people see it: --help, the JSON dump, error messages.
struct Setting {
  std::string flag;        // without the dashes: "max-batch"
  std::string env;         // "VROUTER_MAX_BATCH"; empty: the tool reads no environment
  std::string section;     // the heading --help lists it under
  std::string type;        // integer, number, milliseconds, switch, choice, list or text
  std::string value_name;  // --help shows "--max-batch N"; empty for switches
  std::string help;
  std::string min, max;  // ends of a number's range, exact; empty: unbounded
  bool min_exclusive = false;
  bool ranged = false;  // the table gave a range (else the ends are the type's): --help shows it
  std::vector<std::string> choices;
  bool required = false;
  bool repeatable = false;  // each occurrence adds a value; otherwise a second one is an error
  bool is_switch = false;   // "--flag" alone means true; a value only as --flag=BOOL

  // How messages name it: "--max-batch (VROUTER_MAX_BATCH)".
  std::string Display() const;
  // What a value outside the range is told, generated from the range: "must be in [1, 100000]".
  std::string RangeText() const;

  // For the table's declarations: table.Text("urls", ...).Required().
  Setting& Required() {
    required = true;
    return *this;
  }
  Setting& Repeatable() {
    repeatable = true;
    return *this;
  }
  Setting& Value(std::string name) {
    value_name = std::move(name);
    return *this;
  }
};

// Helpers the rows' parsers share (and that tools may call for values they split themselves).
// "a, b,,c" -> {"a", "b", "c"}: items trimmed of spaces, empty ones dropped.
std::vector<std::string> SplitList(std::string_view text);
// true/false, 1/0, yes/no, on/off (any case); empty means true.
std::optional<bool> ParseBool(std::string_view text);
// Whole numbers print as such (1e9 -> "1000000000"); others in the shortest exact form.
std::string FormatNumber(double value);

// Bounds of a whole-number row: the range given, clipped to the member's type.
struct WholeBounds {
  std::int64_t min = 0;
  std::uint64_t max = 0;
};
WholeBounds ClipRange(const Range& range, std::int64_t type_min, std::uint64_t type_max);
// A whole number within `bounds`: negative values as int64, the others as uint64.
std::variant<Problem, std::int64_t, std::uint64_t> ParseWhole(std::string_view text,
                                                              WholeBounds bounds);
// A finite real number within `range`.
std::variant<Problem, double> ParseReal(std::string_view text, const Range& range);

// The untyped half of a table: its rows, the reading of a command line and environment, --help
// and the JSON dump.
class Schema {
 public:
  // `usage` opens --help; `env_prefix` ("VROUTER_") names every row's variable, or none if empty.
  Schema(std::string usage, std::string env_prefix);

  // Rows declared after this are listed under `title` in --help.
  void Section(std::string title) { section_ = std::move(title); }
  const std::vector<Setting>& settings() const { return settings_; }
  const Setting* Find(std::string_view flag) const;
  // --max-batch -> VROUTER_MAX_BATCH (empty without a prefix).
  std::string EnvName(std::string_view flag) const;

 protected:
  // What the command line said (or else the environment), per row.
  struct Collected {
    std::vector<std::vector<std::string>> values;
    bool help = false;
  };
  Setting& AddSetting(Setting setting);
  std::variant<Collected, Error> Collect(const std::vector<std::string>& args,
                                         const EnvLookup& env) const;
  // `defaults` holds each row's default as text, in row order.
  std::string RenderHelp(const std::vector<std::string>& defaults) const;
  std::string RenderJson(const std::vector<std::string>& defaults) const;
  Error Refuse(std::size_t row, const Problem& problem) const;

 private:
  std::string usage_;
  std::string env_prefix_;
  std::string section_;
  std::vector<Setting> settings_;
};

template <class T>
struct Parsed {
  std::optional<T> value;      // set on success
  std::optional<Error> error;  // set on failure
  std::string help;            // set when --help (or -h) was given
};

// What a command-line tool does with its arguments: run with `options`, or print `message` (the
// help, or the error) and exit with `exit_code`: 0 after --help, 2 on a usage error.
template <class T>
struct Invocation {
  std::optional<T> options;
  std::string message;
  int exit_code = 0;
};

// A table of rows filling a T. Rows are declared with the adders below, each taking the flag, an
// accessor of the member (VROUTER_FIELD), what the value may be, and the help text; rules over
// several settings with Check.
template <class T>
class Table : public Schema {
  // The type of the member an accessor reaches.
  template <class F>
  using Member = std::remove_cvref_t<std::invoke_result_t<F, T&>>;

 public:
  using Schema::Schema;
  using Rule = std::function<std::optional<Error>(const T&)>;

  // Whole numbers of any integer type.
  template <class F>
  Setting& Integer(std::string flag, F field, Range range, std::string help) {
    using I = Member<F>;
    static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>);
    return Whole<I>(
        std::move(flag), range, "integer", "N", std::move(help),
        [field](T& t, I v) { field(t) = v; },
        [field](const T& t) { return std::to_string(static_cast<I>(field(t))); });
  }
  // Milliseconds, as a whole number that fits 32 bits unless the range says less.
  template <class F>
  Setting& Millis(std::string flag, F field, Range range, std::string help) {
    static_assert(std::is_same_v<Member<F>, std::chrono::milliseconds>);
    return Whole<std::uint32_t>(
        std::move(flag), range, "milliseconds", "MS", std::move(help),
        [field](T& t, std::uint32_t v) { field(t) = std::chrono::milliseconds(v); },
        [field](const T& t) { return std::to_string(field(t).count()); });
  }
  // Finite real numbers.
  template <class F>
  Setting& Real(std::string flag, F field, Range range, std::string help) {
    static_assert(std::is_same_v<Member<F>, double>);
    Setting s = Row(std::move(flag), "number", "X", std::move(help));
    s.min = range.min ? FormatNumber(*range.min) : "";
    s.max = range.max ? FormatNumber(*range.max) : "";
    s.min_exclusive = range.min_exclusive;
    s.ranged = range.min || range.max;
    return Add(
        std::move(s),
        [field, range](std::string_view text, T& t) {
          return Store(ParseReal(text, range), [&](double v) { field(t) = v; });
        },
        [field](const T& t) { return FormatNumber(field(t)); });
  }
  // Text, taken as given, or refused by `check`.
  template <class F>
  Setting& Text(std::string flag, F field, std::string help,
                const std::function<Status<>(std::string_view)>& check = {}) {
    static_assert(std::is_same_v<Member<F>, std::string>);
    return Add(
        Row(std::move(flag), "text", "TEXT", std::move(help)),
        [field, check](std::string_view text, T& t) -> Outcome {
          if (check) {
            if (const auto st = check(text); !st.ok()) return Problem{.text = st.error().message};
          }
          field(t) = std::string(text);
          return std::nullopt;
        },
        [field](const T& t) { return field(t); });
  }
  // On or off: "--flag" alone, or --flag=BOOL, or the variable's true/false.
  template <class F>
  Setting& Switch(std::string flag, F field, std::string help) {
    static_assert(std::is_same_v<Member<F>, bool>);
    return Add(
        Row(std::move(flag), "switch", "", std::move(help), /*is_switch=*/true),
        [field](std::string_view text, T& t) -> Outcome {
          const auto v = ParseBool(text);
          if (!v) return BadBool(text);
          field(t) = *v;
          return std::nullopt;
        },
        [field](const T& t) { return std::string(field(t) ? "true" : "false"); });
  }
  // One of named values.
  template <class F, class V>
  Setting& Choice(std::string flag, F field, std::vector<std::pair<std::string, V>> choices,
                  std::string help) {
    Setting s = Row(std::move(flag), "choice", "NAME", std::move(help));
    for (const auto& choice : choices) s.choices.push_back(choice.first);
    return Add(
        std::move(s),
        [field, choices](std::string_view text, T& t) -> Outcome {
          for (const auto& [name, value] : choices) {
            if (text == name) {
              field(t) = value;
              return std::nullopt;
            }
          }
          return NotAChoice(text, choices);
        },
        [field, choices](const T& t) {
          for (const auto& [name, value] : choices) {
            if (field(t) == value) return name;
          }
          return std::string();
        });
  }
  // A comma-separated list of texts, each of which `check` may refuse.
  template <class F>
  Setting& List(std::string flag, F field, std::string help,
                const std::function<Status<>(std::string_view)>& check = {}) {
    static_assert(std::is_same_v<Member<F>, std::vector<std::string>>);
    return Add(
        Row(std::move(flag), "list", "A,B", std::move(help)),
        [field, check](std::string_view text, T& t) -> Outcome {
          std::vector<std::string> items = SplitList(text);
          for (const auto& item : items) {
            if (!check) break;
            if (const auto st = check(item); !st.ok()) return Problem{.text = st.error().message};
          }
          field(t) = std::move(items);
          return std::nullopt;
        },
        [field](const T& t) {
          std::string joined;
          for (const auto& item : field(t)) joined += (joined.empty() ? "" : ",") + item;
          return joined;
        });
  }
  // Anything else: `parse` reads the text into the member, or says why it cannot;
  // `show` prints a value (the default, in --help and the dump).
  template <class F>
  Setting& Custom(std::string flag, F field, std::string value_name, std::string help,
                  std::function<Status<>(std::string_view, Member<F>&)> parse,
                  std::function<std::string(const Member<F>&)> show) {
    return Add(
        Row(std::move(flag), "text", std::move(value_name), std::move(help)),
        [field, parse](std::string_view text, T& t) -> Outcome {
          if (const auto st = parse(text, field(t)); !st.ok()) {
            return Problem{.text = st.error().message};
          }
          return std::nullopt;
        },
        [field, show](const T& t) { return show(field(t)); });
  }

  // A rule over several settings, checked in declaration order after every row parsed.
  void Check(Rule rule) { rules_.push_back(std::move(rule)); }
  static Error Conflict(std::string setting, std::string message) {
    return {ErrorCode::kConflict, std::move(setting), std::move(message)};
  }

  // `args` without the program name. Starts from `defaults`; a setting given neither as a flag
  // nor as a variable keeps its default.
  Parsed<T> Parse(const std::vector<std::string>& args, const EnvLookup& env,
                  T defaults = T{}) const {
    Parsed<T> out;
    auto collected = Collect(args, env);
    if (auto* error = std::get_if<Error>(&collected)) {
      out.error = std::move(*error);
      return out;
    }
    const Collected& given = std::get<Collected>(collected);
    if (given.help) {
      out.help = Help(defaults);
      return out;
    }
    for (std::size_t row = 0; row < parsers_.size(); ++row) {
      if (settings()[row].required && given.values[row].empty()) {
        out.error = Refuse(row, {ErrorCode::kRequired, "required"});
        return out;
      }
    }
    for (std::size_t row = 0; row < parsers_.size(); ++row) {
      for (const std::string& value : given.values[row]) {
        if (auto problem = parsers_[row](value, defaults)) {
          out.error = Refuse(row, *problem);
          return out;
        }
      }
    }
    for (const Rule& rule : rules_) {
      if (auto error = rule(defaults)) {
        out.error = std::move(error);
        return out;
      }
    }
    out.value = std::move(defaults);
    return out;
  }

  // Each row's value in `t` as text, in row order (the defaults, for a default-made T).
  std::vector<std::string> Show(const T& t) const {
    std::vector<std::string> out;
    for (const auto& show : shows_) out.push_back(show(t));
    return out;
  }
  std::string Help(const T& defaults) const { return RenderHelp(Show(defaults)); }
  // {"env_prefix": ..., "settings": [{"flag", "env", "type", "default", "min", "max", ...}]}
  std::string Json(const T& defaults) const { return RenderJson(Show(defaults)); }

  // For a tool's main: argv[0] is the program; the environment is read only with a prefix.
  Invocation<T> ParseMain(int argc, const char* const* argv, const EnvLookup& env = {}) const {
    Invocation<T> out;
    Parsed<T> parsed = Parse(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc), env);
    if (parsed.error) {
      out.message = std::move(parsed.error->message);
      out.exit_code = 2;
    } else if (!parsed.value) {
      out.message = std::move(parsed.help);
    }
    out.options = std::move(parsed.value);
    return out;
  }

 private:
  using Parser = std::function<Outcome(std::string_view, T&)>;
  using Shower = std::function<std::string(const T&)>;

  static Setting Row(std::string flag, std::string type, std::string value_name, std::string help,
                     bool is_switch = false) {
    Setting s;
    s.flag = std::move(flag);
    s.type = std::move(type);
    s.value_name = std::move(value_name);
    s.help = std::move(help);
    s.is_switch = is_switch;
    return s;
  }

  // Hands what a value parser read to `set`, or returns its problem.
  template <class... Read, class Set>
  static Outcome Store(std::variant<Problem, Read...> read, Set set) {
    if (auto* problem = std::get_if<Problem>(&read)) return std::move(*problem);
    std::visit(
        [&set](auto& value) {
          if constexpr (!std::is_same_v<std::remove_cvref_t<decltype(value)>, Problem>) set(value);
        },
        read);
    return std::nullopt;
  }
  static Problem BadBool(std::string_view text) {
    return {ErrorCode::kBadSyntax, "'" + std::string(text) + "' is not true or false"};
  }
  template <class V>
  static Problem NotAChoice(std::string_view text,
                            const std::vector<std::pair<std::string, V>>& choices) {
    std::string names;
    for (const auto& choice : choices) names += (names.empty() ? "" : ", ") + choice.first;
    return {ErrorCode::kBadSyntax, "'" + std::string(text) + "' is not one of " + names};
  }

  template <class I, class Set, class ShowFn>
  Setting& Whole(std::string flag, Range range, std::string type, std::string value_name,
                 std::string help, Set set, ShowFn show) {
    const WholeBounds bounds =
        ClipRange(range, static_cast<std::int64_t>(std::numeric_limits<I>::min()),
                  static_cast<std::uint64_t>(std::numeric_limits<I>::max()));
    Setting s = Row(std::move(flag), std::move(type), std::move(value_name), std::move(help));
    s.min = std::to_string(bounds.min);
    s.max = std::to_string(bounds.max);
    s.ranged = range.min || range.max;
    return Add(
        std::move(s),
        [set, bounds](std::string_view text, T& t) {
          // Within `bounds`, which lie within I's range.
          return Store(ParseWhole(text, bounds), [&](auto v) { set(t, static_cast<I>(v)); });
        },
        std::move(show));
  }

  Setting& Add(Setting setting, Parser parse, Shower show) {
    parsers_.push_back(std::move(parse));
    shows_.push_back(std::move(show));
    return AddSetting(std::move(setting));
  }

  std::vector<Parser> parsers_;
  std::vector<Shower> shows_;
  std::vector<Rule> rules_;
};

}  // namespace vrouter::base::options
