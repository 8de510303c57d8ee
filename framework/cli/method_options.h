// Options shared by the commands that attach PEFT methods: --plugin-dir (repeatable,
// searched before GRAFT_PLUGIN_PATH) and --config (inline JSON, or @file).
#pragma once
#include <string>

#include "cli/args.h"
#include "plugin/loader.h"

namespace graft::cli {

struct MethodConfig {
  std::string json;    // "" for the method's defaults
  std::string origin;  // "--config" or the file name, for error messages
};

// --config '{"r": 8}' or --config @lora.json; absent: defaults.
MethodConfig method_config(const Args& args);
// The registry over the --plugin-dir folders (if given) and the default search path.
plugin::PluginRegistry load_plugins(const Args& args);

}  // namespace graft::cli
