#include "cli/method_options.h"

#include <fmt/format.h>

#include "graft/error.h"
#include "io/json_config.h"
#include "model/backbone_registry.h"

namespace graft::cli {

MethodConfig method_config(const Args& args) {
  if (!args.has("config")) return {"", "defaults"};
  const std::string value = args.get("config");
  if (value.empty() || value[0] != '@') return {value, "--config"};
  const std::string path = value.substr(1);
  if (path.empty()) throw ConfigError("cli", "--config @ names no file", "--config takes JSON text or @FILE");
  return {io::read_text_file(path, "cli"), path};
}

Session open_session(const Args& args) {
  SessionOptions options;
  options.dtype = model::parse_dtype(args.get("dtype"));
  for (const auto& dir : args.values("plugin-dir")) options.plugin_dirs.emplace_back(dir);
  return Session(args.require("backbone"), options);
}

void print_warnings(const Session& session) {
  // A plugin that lost its name to another is never used, but its author should know.
  for (const auto& warning : session.warnings()) fmt::print(stderr, "graft: warning: {}\n", warning);
}

}  // namespace graft::cli
