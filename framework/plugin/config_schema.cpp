// Validation of a method's config against the JSON schema its plugin declares — a
// small, strict subset of JSON Schema, enough for flat method configs.
#include <fmt/format.h>

#include "graft/error.h"
#include "io/json_config.h"
#include "plugin/config_impl.h"

namespace graft {
namespace {

bool type_matches(const std::string& type, const nlohmann::json& v, const nlohmann::json& spec) {
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "string") return v.is_string();
  if (type == "null") return v.is_null();
  if (type == "object") return v.is_object();  // e.g. PEFT's "rank_pattern": {} (checked with enum)
  if (type == "array") {
    if (!v.is_array()) return false;
    const std::string item = spec.contains("items") ? spec["items"].value("type", "") : "";
    for (const auto& e : v)
      if (!item.empty() && !type_matches(item, e, nlohmann::json::object())) return false;
    return true;
  }
  return false;
}

// A property's "type" may be one name or a list of names (["string", "array"]).
std::vector<std::string> types_of(const nlohmann::json& spec) {
  const auto& t = spec.at("type");
  if (t.is_string()) return {t.get<std::string>()};
  return t.get<std::vector<std::string>>();
}

std::string accepted_keys(const nlohmann::json& properties) {
  std::vector<std::string> names;
  for (auto it = properties.begin(); it != properties.end(); ++it) names.push_back(it.key());
  return fmt::format("accepted keys: {}", fmt::join(names, ", "));
}

}  // namespace

nlohmann::json parse_schema(const std::string& schema_text, const std::string& method) {
  nlohmann::json schema;
  try {
    schema = nlohmann::json::parse(schema_text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("plugin", fmt::format("plugin '{}' declares a config schema that is not JSON: {}", method, e.what()),
                      "fix the schema string the plugin exports");
  }
  if (!schema.is_object() || !schema.contains("properties") || !schema["properties"].is_object())
    throw FormatError("plugin", fmt::format("plugin '{}' declares a schema without an object of \"properties\"", method),
                      "the schema must be {\"type\": \"object\", \"properties\": {...}}");
  for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it)
    if (!it->is_object() || !it->contains("type"))
      throw FormatError("plugin", fmt::format("plugin '{}': schema property '{}' has no \"type\"", method, it.key()),
                        "give every property a type (integer, number, boolean, string, array)");
  return schema;
}

Config validate_config(const nlohmann::json& schema, const nlohmann::json& given, const std::string& method,
                       const std::string& origin) {
  const nlohmann::json& properties = schema.at("properties");
  const std::string where = fmt::format("{} (method '{}')", origin, method);
  if (!given.is_object())
    throw ConfigError("config", fmt::format("{} must be a JSON object", where), accepted_keys(properties));
  nlohmann::json out = nlohmann::json::object();
  for (auto it = given.begin(); it != given.end(); ++it) {
    if (!properties.contains(it.key()))
      throw ConfigError("config", fmt::format("{}: unknown key '{}'", where, it.key()), accepted_keys(properties));
    const nlohmann::json& spec = properties[it.key()];
    const nlohmann::json& v = *it;
    bool ok = false;
    for (const auto& t : types_of(spec)) ok = ok || type_matches(t, v, spec);
    if (!ok)
      throw ConfigError("config", fmt::format("{}: key '{}' must be {}, got {}", where, it.key(), spec.at("type").dump(), v.dump()),
                        spec.value("description", ""));
    if (v.is_number()) {
      const double x = v.get<double>();
      if ((spec.contains("minimum") && x < spec["minimum"].get<double>()) ||
          (spec.contains("maximum") && x > spec["maximum"].get<double>()))
        throw ConfigError("config",
                          fmt::format("{}: key '{}' = {} is out of range [{}, {}]", where, it.key(), v.dump(),
                                      spec.contains("minimum") ? spec["minimum"].dump() : "-inf",
                                      spec.contains("maximum") ? spec["maximum"].dump() : "inf"),
                          spec.value("description", ""));
    }
    if (spec.contains("enum")) {
      bool listed = false;
      for (const auto& allowed : spec["enum"]) listed = listed || allowed == v;
      if (!listed)
        throw ConfigError("config", fmt::format("{}: key '{}' = {} is not one of {}", where, it.key(), v.dump(), spec["enum"].dump()),
                          spec.value("description", ""));
    }
    out[it.key()] = v;
  }
  for (auto it = properties.begin(); it != properties.end(); ++it)
    if (!out.contains(it.key())) out[it.key()] = it->contains("default") ? it->at("default") : nlohmann::json();
  return make_config(std::move(out), origin);
}

}  // namespace graft
