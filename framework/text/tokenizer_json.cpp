#include "text/tokenizer_json.h"

#include "graft/error.h"
#include "io/json_config.h"

namespace graft::text::tokenizer_json {
namespace fs = std::filesystem;

namespace {
constexpr const char* kComponent = "tokenizer";
}

json read(const fs::path& path) {
  const std::string text = io::read_text_file(path, kComponent);
  io::check_json_depth(text, path.string());
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw FormatError(kComponent,
                      path.string() + ": not valid JSON (parse error at byte " + std::to_string(e.byte) + ")",
                      "the file is truncated or corrupt; download it again");
  } catch (const json::out_of_range& e) {  // 406: a number beyond a double's range (1e400)
    throw FormatError(kComponent, path.string() + ": not valid JSON (" + e.what() + ")",
                      "the file is truncated or corrupt; download it again");
  }
}

void bad_key(const fs::path& file, const std::string& key, const std::string& what, const std::string& hint) {
  throw FormatError(kComponent, file.string() + ": key \"" + key + "\" " + what, hint);
}

std::string token_text(const json& value, const fs::path& file, const std::string& key) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  bad_key(file, key, "is neither a string nor an object with \"content\"", "write the token as a string, e.g. \"[UNK]\"");
}

bool get_bool(const json& obj, const char* key, bool fallback, const fs::path& file, const std::string& prefix) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) bad_key(file, prefix + key, "is not a boolean", "use true or false");
  return obj[key].get<bool>();
}

std::string type_of(const json& component) {
  if (!component.is_object() || !component.contains("type") || !component["type"].is_string()) return {};
  return component["type"].get<std::string>();
}

}  // namespace graft::text::tokenizer_json
