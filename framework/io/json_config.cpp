#include "io/json_config.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "graft/error.h"

namespace graft::io {

namespace {

// 1-based line and column of byte `at` of `text`.
std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t at) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < std::min(at, text.size()); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

std::string read_text_file(const std::filesystem::path& path, const std::string& component) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(component, fmt::format("cannot read '{}': it is a folder, not a file", path.string()),
                  "pass the file inside it");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw IoError(component, fmt::format("cannot read '{}': {}", path.string(), std::strerror(errno)),
                  "check that the file exists and is readable");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(component, fmt::format("error while reading '{}'", path.string()), "check the file system");
  return text.str();
}

nlohmann::json load_json(const std::filesystem::path& path) { return parse_json(read_text_file(path, "json"), path.string()); }

void check_json_depth(std::string_view text, const std::string& origin, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) {
        const auto [line, column] = line_column(text, i);
        throw FormatError("json", fmt::format("'{}' nests arrays and objects more than {} levels deep (line {}, column {})",
                                              origin, limit, line, column),
                          "configuration files nest a few levels; this one is corrupt or hostile");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

nlohmann::json parse_json(const std::string& text, const std::string& origin) {
  check_json_depth(text, origin);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Turn the byte offset into a line and column a person can go to.
    const auto [line, column] = line_column(text, e.byte ? e.byte - 1 : 0);
    throw FormatError("json", fmt::format("'{}' is not valid JSON (line {}, column {})", origin, line, column),
                      "fix the syntax at that position");
  } catch (const nlohmann::json::out_of_range& e) {
    // 406: a number literal beyond a double's range (1e400); nlohmann names the literal.
    const std::string what = e.what();
    throw FormatError("json", fmt::format("'{}' is not valid JSON: {}", origin, what.substr(what.find("] ") + 2)),
                      "numbers must lie within the range of a double (about ±1.8e308)");
  }
}

void require_range(const std::string& origin, const std::string& key, double value, double min, double max) {
  if (value >= min && value <= max) return;
  throw FormatError("json", fmt::format("'{}': key '{}' is {}, outside [{}, {}]", origin, key, value, min, max),
                    "the file is corrupt or not what its loader expects: compare it with the model's published config");
}

void throw_key_error(const std::string& origin, const std::string& key, const std::string& problem) {
  throw FormatError("json", fmt::format("'{}': key '{}' {}", origin, key, problem),
                    "compare the file with the format its loader expects (see docs/)");
}

}  // namespace graft::io
