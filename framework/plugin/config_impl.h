// Internal: what a graft::Config holds, and validation of a config against a plugin's
// JSON schema.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "graft/config.h"

namespace graft {

struct Config::Impl {
  nlohmann::json value;
  std::string origin;
};

Config make_config(nlohmann::json value, std::string origin);

// Checks `given` (an object) against `schema` (JSON Schema subset: type object,
// properties with type integer/number/boolean/string/array, default, minimum, maximum,
// enum, items.type) and returns it with defaults filled in. Unknown keys, wrong types
// and out-of-range values are ConfigErrors naming `method`, `origin` and the key, and
// listing the accepted keys.
Config validate_config(const nlohmann::json& schema, const nlohmann::json& given, const std::string& method,
                       const std::string& origin);

// The schema text of a plugin, parsed; a FormatError naming the plugin if it is not a
// valid schema of that subset.
nlohmann::json parse_schema(const std::string& schema_text, const std::string& method);

}  // namespace graft
