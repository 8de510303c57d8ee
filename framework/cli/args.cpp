#include "cli/args.h"

#include <fmt/format.h>

#include <cmath>

#include "graft/error.h"

namespace graft::cli {

Args::Args(const std::string& command, const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs)
    : command_(command) {
  auto find = [&](const std::string& name) -> const OptionSpec* {
    for (const auto& s : specs)
      if (s.name == name) return &s;
    return nullptr;
  };
  auto accepted = [&] {
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back("--" + s.name);
    return fmt::format("accepted: {}", fmt::join(names, ", "));
  };
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = find(name);
    if (!spec) throw ConfigError(command_, fmt::format("unknown option '--{}'", name), accepted());
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= argv.size()) throw ConfigError(command_, fmt::format("option '--{}' needs a value", name), spec->help);
      value = argv[++i];
    }
    values_[name] = spec->takes_value ? value : "1";
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw ConfigError(command_, fmt::format("option '--{}' is required", name));
  return it->second;
}

double Args::number(const std::string& name, double fallback, double min, double max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
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

std::int64_t Args::integer(const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
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

std::size_t Args::count(const std::string& name, std::size_t fallback, std::int64_t max) const {
  return static_cast<std::size_t>(integer(name, static_cast<std::int64_t>(fallback), 1, max));
}

}  // namespace graft::cli
