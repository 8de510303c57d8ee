// What a method name means, from the plugins' own metadata (ABI 2): a plugin, an alias
// of one with a preset config (houlsby's "pfeiffer"), or a built-in baseline ("head",
// "full"); and the learning rate it suits.
#pragma once
#include <string>

#include "plugin/loader.h"

namespace graft::api {

struct MethodChoice {
  std::string plugin;       // plugin name, or "head" / "full"
  std::string config_json;  // the alias's preset merged with the user's config
  std::string origin;
};
MethodChoice resolve_method(const plugin::PluginRegistry& plugins, const std::string& method, const std::string& user_config,
                            const std::string& origin);
// The plugin's default_lr (its metadata), the built-ins' own, else the host's 1e-3.
float default_lr(const plugin::PluginRegistry& plugins, const std::string& plugin);

}  // namespace graft::api
