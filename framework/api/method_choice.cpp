#include "api/method_choice.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "io/json_config.h"
#include "train/adapter_io.h"

namespace graft::api {

namespace {
// The built-in baselines' rates (BERT-size models), and the host's for a plugin that
// declares none (bottleneck adapters and LoRA train well there).
constexpr float kFullLr = 1e-4f, kHeadLr = 5e-3f, kHostDefaultLr = 1e-3f;
}  // namespace

MethodChoice resolve_method(const plugin::PluginRegistry& plugins, const std::string& method, const std::string& user_config,
                            const std::string& origin) {
  nlohmann::json config = user_config.empty() ? nlohmann::json::object() : io::parse_json(user_config, origin);
  if (!config.is_object()) throw ConfigError("session", fmt::format("{} must be a JSON object", origin));
  if (method == kHeadOnly || method == kFullFineTuning) {
    if (!config.empty()) throw ConfigError("session", fmt::format("the '{}' baseline takes no config", method), "drop --config");
    return {method, "", origin};
  }
  std::string plugin = method, preset;
  const bool is_plugin = std::any_of(plugins.plugins().begin(), plugins.plugins().end(),
                                     [&](const plugin::PluginRecord& r) { return r.name == method; });
  if (!is_plugin)
    if (const plugin::PluginRecord* owner = plugins.find_alias(method, &preset)) {
      plugin = owner->name;
      nlohmann::json merged = nlohmann::json::parse(preset);  // the loader checked it is an object
      merged.update(config);  // the user's keys win
      config = std::move(merged);
    }
  return {plugin, config.empty() ? std::string() : config.dump(), origin};
}

float default_lr(const plugin::PluginRegistry& plugins, const std::string& plugin) {
  if (plugin == kFullFineTuning) return kFullLr;
  if (plugin == kHeadOnly) return kHeadLr;
  for (const auto& r : plugins.plugins())
    if (r.name == plugin && r.default_lr > 0) return static_cast<float>(r.default_lr);
  return kHostDefaultLr;
}

}  // namespace graft::api
