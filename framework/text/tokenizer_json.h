// Reading Hugging Face's tokenizer.json with errors that name the file and the key.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace graft::text::tokenizer_json {

using nlohmann::json;

json read(const std::filesystem::path& path);
[[noreturn]] void bad_key(const std::filesystem::path& file, const std::string& key, const std::string& what,
                          const std::string& hint);
// A token written either as a string or as an AddedToken object {"content": ...}.
std::string token_text(const json& value, const std::filesystem::path& file, const std::string& key);
bool get_bool(const json& obj, const char* key, bool fallback, const std::filesystem::path& file,
              const std::string& prefix = "");
// The "type" string of a component ("" when absent or not a string).
std::string type_of(const json& component);

}  // namespace graft::text::tokenizer_json
