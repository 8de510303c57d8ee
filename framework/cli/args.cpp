#include "cli/args.h"

#include <fmt/format.h>

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

double Args::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError(command_, fmt::format("option '--{}' wants a number, got '{}'", name, text));
}

std::int64_t Args::integer(const std::string& name, std::int64_t fallback) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError(command_, fmt::format("option '--{}' wants a whole number, got '{}'", name, text));
}

}  // namespace graft::cli
