// JSON files read as configuration (config.json, adapter_config.json): parse errors
// and missing or mistyped keys name the file and the key.
#pragma once
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>

namespace graft::io {

// Real configuration files nest a handful of levels; a hostile one nesting thousands
// would overflow the stack of every recursive consumer of the parsed value.
constexpr std::size_t kMaxJsonDepth = 256;

// The whole of a text file: IoError naming the file (and a hint) when it is missing, a
// folder or unreadable.
std::string read_text_file(const std::filesystem::path& path, const std::string& component);
// Parses `path`; IoError if unreadable, FormatError (with line and column) if not JSON.
nlohmann::json load_json(const std::filesystem::path& path);
// Parses `text` that came from `origin` (a file name or "--config"); FormatError when it
// is not JSON or nests deeper than kMaxJsonDepth.
nlohmann::json parse_json(const std::string& text, const std::string& origin);
// FormatError naming `origin` when `text` nests arrays/objects deeper than `limit`;
// checked on the raw text, before any parser recurses.
void check_json_depth(std::string_view text, const std::string& origin, std::size_t limit = kMaxJsonDepth);

// `key` of object `j` as T: FormatError naming `origin` and the key when missing or of
// another type.
template <class T>
T require_key(const nlohmann::json& j, const std::string& key, const std::string& origin);
// Like require_key, but `fallback` when the key is absent or null.
template <class T>
T optional_key(const nlohmann::json& j, const std::string& key, const T& fallback, const std::string& origin);

// FormatError naming `origin` and `key` unless min <= value <= max (NaN never is).
void require_range(const std::string& origin, const std::string& key, double value, double min, double max);

[[noreturn]] void throw_key_error(const std::string& origin, const std::string& key, const std::string& problem);

template <class T>
T require_key(const nlohmann::json& j, const std::string& key, const std::string& origin) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) throw_key_error(origin, key, "is missing");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // nlohmann would truncate 384.5 to 384 and wrap 2^64-1 to -1: a size must be exact.
    const nlohmann::json& v = j.at(key);
    if (v.is_number_float()) throw_key_error(origin, key, "is " + v.dump() + ", not a whole number");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
      throw_key_error(origin, key, "is " + v.dump() + ", too large");
    if (v.is_number_integer() && !v.is_number_unsigned() && std::is_unsigned_v<T> && v.get<std::int64_t>() < 0)
      throw_key_error(origin, key, "is " + v.dump() + ", but must not be negative");
  }
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
