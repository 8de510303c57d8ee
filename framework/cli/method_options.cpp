#include "cli/method_options.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "graft/error.h"

namespace graft::cli {

MethodConfig method_config(const Args& args) {
  if (!args.has("config")) return {"", "defaults"};
  const std::string value = args.get("config");
  if (value.empty() || value[0] != '@') return {value, "--config"};
  const std::string path = value.substr(1);
  std::ifstream in(path);
  if (!in) throw IoError("cli", fmt::format("cannot read config file '{}'", path), "--config takes JSON text or @FILE");
  std::stringstream text;
  text << in.rdbuf();
  return {text.str(), path};
}

plugin::PluginRegistry load_plugins(const Args& args) {
  plugin::PluginRegistry registry;
  std::vector<std::filesystem::path> dirs;
  if (args.has("plugin-dir")) dirs.emplace_back(args.get("plugin-dir"));
  registry.scan(plugin::search_path(dirs));
  return registry;
}

}  // namespace graft::cli
