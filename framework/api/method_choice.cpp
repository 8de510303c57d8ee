#include "api/method_choice.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "io/json_config.h"

namespace graft::api {

namespace {
// The host's rate for a method that declares none (bottleneck adapters and LoRA train
// well there on BERT-size models).
constexpr float kHostDefaultLr = 1e-3f;
}  // namespace

MethodChoice resolve_method(const plugin::PluginRegistry& plugins, const std::string& method, const std::string& user_config,
                            const std::string& origin) {
  nlohmann::json config = user_config.empty() ? nlohmann::json::object() : io::parse_json(user_config, origin);
  if (!config.is_object()) throw ConfigError("session", fmt::format("{} must be a JSON object", origin));
  std::string plugin = method, preset;
  if (!plugins.lookup(method))
    if (const plugin::PluginRecord* owner = plugins.find_alias(method, &preset)) {
      plugin = owner->name;
      nlohmann::json merged = nlohmann::json::parse(preset);  // the loader checked it is an object
      merged.update(config);  // the user's keys win
      config = std::move(merged);
    }
  return {plugin, config.empty() ? std::string() : config.dump(), origin};
}

float default_lr(const plugin::PluginRegistry& plugins, const std::string& plugin) {
  const plugin::PluginRecord* record = plugins.lookup(plugin);  // null: creating it will say why
  return record && record->default_lr > 0 ? static_cast<float>(record->default_lr) : kHostDefaultLr;
}

}  // namespace graft::api
