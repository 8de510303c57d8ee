#include "cli/method_options.h"

#include <fmt/format.h>

#include "graft/error.h"
#include "io/json_config.h"

namespace graft::cli {

MethodConfig method_config(const Args& args) {
  if (!args.has("config")) return {"", "defaults"};
  const std::string value = args.get("config");
  if (value.empty() || value[0] != '@') return {value, "--config"};
  const std::string path = value.substr(1);
  if (path.empty()) throw ConfigError("cli", "--config @ names no file", "--config takes JSON text or @FILE");
  return {io::read_text_file(path, "cli"), path};
}

plugin::PluginRegistry load_plugins(const Args& args) {
  plugin::PluginRegistry registry;
  std::vector<std::filesystem::path> dirs;
  for (const auto& dir : args.values("plugin-dir")) dirs.emplace_back(dir);
  registry.scan(plugin::search_path(dirs));
  // A plugin that lost its name to another is never used, but its author should know.
  for (const auto& conflict : registry.conflicts()) fmt::print(stderr, "graft: warning: {}\n", conflict.message);
  return registry;
}

}  // namespace graft::cli
