#include "io/json_config.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "graft/error.h"

namespace graft::io {

nlohmann::json load_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("json", fmt::format("cannot read '{}'", path.string()), "check that the file exists and is readable");
  std::stringstream text;
  text << in.rdbuf();
  return parse_json(text.str(), path.string());
}

nlohmann::json parse_json(const std::string& text, const std::string& origin) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Turn the byte offset into a line and column a person can go to.
    const std::size_t at = std::min<std::size_t>(e.byte ? e.byte - 1 : 0, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw FormatError("json", fmt::format("'{}' is not valid JSON (line {}, column {})", origin, line, column),
                      "fix the syntax at that position");
  }
}

void throw_key_error(const std::string& origin, const std::string& key, const std::string& problem) {
  throw FormatError("json", fmt::format("'{}': key '{}' {}", origin, key, problem),
                    "compare the file with the format its loader expects (see docs/)");
}

}  // namespace graft::io
