// JSON files read as configuration (config.json, adapter_config.json): parse errors
// and missing or mistyped keys name the file and the key.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace graft::io {

// Parses `path`; IoError if unreadable, FormatError (with line and column) if not JSON.
nlohmann::json load_json(const std::filesystem::path& path);
// Parses `text` that came from `origin` (a file name or "--config").
nlohmann::json parse_json(const std::string& text, const std::string& origin);

// `key` of object `j` as T: FormatError naming `origin` and the key when missing or of
// another type.
template <class T>
T require_key(const nlohmann::json& j, const std::string& key, const std::string& origin);
// Like require_key, but `fallback` when the key is absent or null.
template <class T>
T optional_key(const nlohmann::json& j, const std::string& key, const T& fallback, const std::string& origin);

[[noreturn]] void throw_key_error(const std::string& origin, const std::string& key, const std::string& problem);

template <class T>
T require_key(const nlohmann::json& j, const std::string& key, const std::string& origin) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) throw_key_error(origin, key, "is missing");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw_key_error(origin, key, "has the wrong type (" + std::string(j.at(key).type_name()) + ")");
  }
}

template <class T>
T optional_key(const nlohmann::json& j, const std::string& key, const T& fallback, const std::string& origin) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return fallback;
  return require_key<T>(j, key, origin);
}

}  // namespace graft::io
