// graft plugins [--plugin-dir DIR]... [--json] — what the search path holds: every
// plugin that loaded, with its config keys, and every file that did not, with why.
// Failures are reported, not fatal: the exit code is 0 unless the usage is wrong.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "graft/error.h"
#include "plugin/loader.h"

namespace graft::cli {

namespace {

std::vector<std::filesystem::path> plugin_dirs(const Args& args) {
  const auto values = args.values("plugin-dir");
  return {values.begin(), values.end()};
}

// One line per config key: name, type, default, range or choices.
std::vector<std::string> config_lines(const nlohmann::json& schema) {
  std::vector<std::string> lines;
  const auto& properties = schema.at("properties");
  std::size_t width = 0;
  for (auto it = properties.begin(); it != properties.end(); ++it) width = std::max(width, it.key().size());
  for (auto it = properties.begin(); it != properties.end(); ++it) {
    const auto& spec = *it;
    std::string line = fmt::format("{:<{}}  {}", it.key(), width, spec.at("type").is_string() ? spec["type"].get<std::string>() : spec["type"].dump());
    if (spec.contains("default")) line += " = " + spec["default"].dump();
    if (spec.contains("minimum") || spec.contains("maximum"))
      line += fmt::format(" in [{}, {}]", spec.contains("minimum") ? spec["minimum"].dump() : "-inf",
                          spec.contains("maximum") ? spec["maximum"].dump() : "inf");
    if (spec.contains("enum")) line += " one of " + spec["enum"].dump();
    if (spec.contains("description")) line += "  — " + spec["description"].get<std::string>();
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

int cmd_plugins(const std::vector<std::string>& args) {
  const Args parsed("plugins", args, {plugin_dir_option(), {.name = "json", .takes_value = false, .help = "print one JSON document"}});
  if (!parsed.positional().empty())
    throw ConfigError("plugins", fmt::format("unexpected argument '{}'", parsed.positional()[0]),
                      "usage: graft plugins [--plugin-dir DIR]... [--json]");

  const auto dirs = plugin::search_path(plugin_dirs(parsed));
  plugin::PluginRegistry registry;
  registry.scan(dirs);

  if (parsed.has("json")) {
    nlohmann::json doc = {{"search_path", nlohmann::json::array()},
                          {"plugins", nlohmann::json::array()},
                          {"failures", nlohmann::json::array()}};
    for (const auto& dir : dirs) doc["search_path"].push_back(dir.string());
    for (const auto& p : registry.plugins()) {
      nlohmann::json aliases = nlohmann::json::object();
      for (const auto& [alias, preset] : p.aliases) aliases[alias] = nlohmann::json::parse(preset);
      doc["plugins"].push_back({{"name", p.name},
                                {"version", p.version},
                                {"description", p.description},
                                {"file", p.file.string()},
                                {"peft_types", p.peft_types},
                                {"aliases", aliases},
                                {"default_lr", p.default_lr},
                                {"config_schema", nlohmann::json::parse(p.schema_json)}});
    }
    for (const auto& f : registry.failures()) doc["failures"].push_back({{"file", f.file.string()}, {"message", f.message}});
    doc["builtins"] = nlohmann::json::array();
    for (const auto& b : registry.builtins())
      doc["builtins"].push_back({{"name", b.name}, {"description", b.description}, {"default_lr", b.default_lr}});
    fmt::print("{}\n", doc.dump(2));
    return 0;
  }

  std::vector<std::string> searched;
  for (const auto& dir : dirs) searched.push_back(dir.string());
  fmt::print("search path: {}\n", searched.empty() ? "(empty)" : fmt::format("{}", fmt::join(searched, ":")));
  fmt::print("{} plugin{}\n", registry.plugins().size(), registry.plugins().size() == 1 ? "" : "s");
  for (const auto& p : registry.plugins()) {
    fmt::print("\n{} {}  {}\n  {}\n", p.name, p.version, p.file.string(), p.description);
    if (!p.peft_types.empty()) fmt::print("  reads PEFT adapters of peft_type {}\n", fmt::join(p.peft_types, ", "));
    for (const auto& [alias, preset] : p.aliases) fmt::print("  alias {} = {} with {}\n", alias, p.name, preset);
    if (p.default_lr > 0) fmt::print("  default learning rate {:g}\n", p.default_lr);
    const auto lines = config_lines(nlohmann::json::parse(p.schema_json));  // the loader has validated it
    if (lines.empty()) fmt::print("  config: none\n");
    else fmt::print("  config:\n");
    for (const auto& line : lines) fmt::print("    {}\n", line);
  }
  fmt::print("\nbuilt-in methods:\n");
  for (const auto& b : registry.builtins()) fmt::print("  {:<6} {} (default learning rate {:g})\n", b.name, b.description, b.default_lr);
  if (!registry.failures().empty()) {
    std::fflush(stdout);
    fmt::print(stderr, "\n{} failed to load:\n", registry.failures().size());
    for (const auto& f : registry.failures()) {  // each message names its file
      std::string text = f.message;
      for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 3)) text.insert(at + 1, "  ");
      fmt::print(stderr, "  {}\n", text);
    }
  }
  return 0;
}

}  // namespace graft::cli
