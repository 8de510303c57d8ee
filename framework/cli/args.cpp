#include "cli/args.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cli/commands.h"

namespace graft::cli {

namespace {

// "(default: 3; e.g. --epochs 10)", "(required; e.g. ...)" or "(flag)".
std::string default_and_example(const OptionSpec& s) {
  if (!s.takes_value) return "(flag)";
  const std::string what = s.required               ? "required"
                           : !s.default_note.empty() ? "default: " + s.default_note
                           : !s.value.empty()        ? "default: " + s.value
                                                     : "default: none";
  return s.example.empty() ? "(" + what + ")" : fmt::format("({}; e.g. --{} {})", what, s.name, s.example);
}

std::string help_text(const std::string& command, const std::vector<OptionSpec>& specs) {
  const CommandInfo* info = find_command(command);
  std::string out = fmt::format("usage: graft {}\n{}\n\noptions:\n", info ? info->usage : command, info ? info->summary : "");
  std::size_t width = 10;
  for (const auto& s : specs) width = std::max(width, s.name.size() + 2);
  for (const auto& s : specs) out += fmt::format("  {:<{}}  {} {}\n", "--" + s.name, width, s.help, default_and_example(s));
  out += fmt::format("  {:<{}}  print this help and exit\n", "-h, --help", width);
  return out + "\n--key value and --key=value both work; -- ends the options (for texts that begin with '-').\n";
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 2) + 1;  // farther is no suggestion
  for (const auto& c : candidates) {
    // A prefix ("--lr-scale" for "--lr-scales", "--max" for "--max-steps") counts as near.
    const std::size_t d = c.rfind(word, 0) == 0 ? 1 : edit_distance(word, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  return best;
}

Args::Args(const std::string& command, const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs)
    : command_(command), specs_(specs) {
  CLI::App app("", "graft " + command);
  app.set_help_flag("-h,--help");
  app.formatter_fn([&](const CLI::App*, std::string, CLI::AppFormatMode) { return help_text(command, specs); });
  app.allow_extras();  // unknown options are reported below, with a suggestion
  std::map<std::string, CLI::Option*> options;
  for (const auto& s : specs)
    options[s.name] = s.takes_value ? app.add_option("--" + s.name)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
                                    : app.add_flag("--" + s.name);
  app.add_option("positional", positional_)->group("");
  std::vector<std::string> reversed(argv.rbegin(), argv.rend());  // CLI11 parses from the back
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    throw HelpShown{};
  } catch (const CLI::ArgumentMismatch& e) {  // "--name: 1 required TEXT missing"
    const std::string what = e.what(), name = what.substr(0, what.find(':'));
    const auto it = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) { return "--" + s.name == name; });
    throw ConfigError(command_, fmt::format("option '{}' needs a value", name),
                      it == specs.end() || it->example.empty() ? "" : fmt::format("e.g. {} {}", name, it->example));
  } catch (const CLI::ParseError& e) {
    throw UsageError(command_, e.what(), fmt::format("graft {} --help lists the options", command_));
  }
  for (const std::string& extra : app.remaining()) {
    if (extra == "--") continue;
    const std::string name = extra.substr(0, extra.find('='));
    std::vector<std::string> known;
    for (const auto& s : specs) known.push_back("--" + s.name);
    const std::string near = closest(name, known);
    // One line: the message is the whole of what graft prints.
    throw UsageError(command_, fmt::format("unknown option '{}'; {}", name,
                                           near.empty() ? fmt::format("graft {} --help lists the options", command_)
                                                        : fmt::format("did you mean {}?", near)));
  }
  for (const auto& s : specs)
    if (options.at(s.name)->count() > 0) values_[s.name] = s.takes_value ? options.at(s.name)->results() : std::vector<std::string>{"1"};
  std::vector<std::string> missing;
  for (const auto& s : specs)
    if (s.required && !has(s.name)) missing.push_back(fmt::format("'--{}'", s.name));
  if (!missing.empty()) {
    const CommandInfo* info = find_command(command_);
    throw ConfigError(command_,
                      fmt::format("option{} {} {} required", missing.size() > 1 ? "s" : "", fmt::join(missing, ", "),
                                  missing.size() > 1 ? "are" : "is"),
                      info ? fmt::format("usage: graft {}", info->usage) : "");
  }
}

const OptionSpec& Args::spec(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return s;
  throw std::logic_error(fmt::format("graft {}: no option '--{}' declared", command_, name));
}

std::string Args::get(const std::string& name) const { return has(name) ? values_.at(name).back() : spec(name).value; }

std::string Args::get(const std::string& name, const std::string& fallback) const {
  return has(name) ? values_.at(name).back() : fallback;
}

std::vector<std::string> Args::values(const std::string& name) const {
  return has(name) ? values_.at(name) : std::vector<std::string>{};
}

std::string Args::require(const std::string& name) const {
  if (!has(name)) throw ConfigError(command_, fmt::format("option '--{}' is required", name));
  return get(name);
}

std::string Args::given_or_default(const std::string& name) const {
  const std::string text = get(name);
  if (text.empty()) throw std::logic_error(fmt::format("graft {}: option '--{}' has no default", command_, name));
  return text;
}

double Args::number(const std::string& name, double min, double max) const {
  return parse_number(name, given_or_default(name), min, max);
}

double Args::number(const std::string& name, double fallback, double min, double max) const {
  return has(name) ? parse_number(name, get(name), min, max) : fallback;
}

std::int64_t Args::integer(const std::string& name, std::int64_t min, std::int64_t max) const {
  return parse_integer(name, given_or_default(name), min, max);
}

std::int64_t Args::integer(const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
  return has(name) ? parse_integer(name, get(name), min, max) : fallback;
}

std::size_t Args::count(const std::string& name, std::int64_t max) const {
  return static_cast<std::size_t>(integer(name, 1, max));
}

std::size_t Args::count(const std::string& name, std::size_t fallback, std::int64_t max) const {
  return static_cast<std::size_t>(integer(name, static_cast<std::int64_t>(fallback), 1, max));
}

double Args::parse_number(const std::string& name, const std::string& text, double min, double max) const {
  double v = 0;
  try {
    std::size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw ConfigError(command_, fmt::format("option '--{}' wants a number, got '{}'", name, text));
  }
  if (!std::isfinite(v)) throw ConfigError(command_, fmt::format("option '--{}' wants a finite number, got '{}'", name, text));
  if (v < min || v > max)
    throw ConfigError(command_, fmt::format("option '--{}' is {}, outside [{}, {}]", name, text, min, max),
                      fmt::format("pass a value from {} to {}", min, max));
  return v;
}

std::int64_t Args::parse_integer(const std::string& name, const std::string& text, std::int64_t min, std::int64_t max) const {
  long long v = 0;
  try {
    std::size_t used = 0;
    v = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::out_of_range&) {
    throw ConfigError(command_, fmt::format("option '--{}' is {}: far too large", name, text),
                      fmt::format("pass a value from {} to {}", min, max));
  } catch (const std::exception&) {
    throw ConfigError(command_, fmt::format("option '--{}' wants a whole number, got '{}'", name, text));
  }
  if (v < min || v > max) {
    if (max == INT64_MAX) throw ConfigError(command_, fmt::format("option '--{}' is {}; it must be at least {}", name, text, min));
    throw ConfigError(command_, fmt::format("option '--{}' is {}, outside [{}, {}]", name, text, min, max),
                      fmt::format("pass a value from {} to {}", min, max));
  }
  return v;
}

OptionSpec dtype_option() {
  return {.name = "dtype", .help = "how the frozen weights are held: f32 or bf16", .value = "f32", .example = "bf16"};
}

OptionSpec plugin_dir_option() {
  return {.name = "plugin-dir", .help = "a plugin folder searched first; repeatable", .example = "build/plugins",
          .default_note = "none"};
}

}  // namespace graft::cli
