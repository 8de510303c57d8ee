// A method's configuration as the host hands it over: already validated against the
// plugin's JSON schema, with defaults filled in, so every declared key is present.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace graft {

class Config {
 public:
  Config();  // {}
  // Parses JSON text; `origin` (a file name, "--config") is named in errors.
  static Config parse(const std::string& json_text, const std::string& origin = "config");

  bool has(const std::string& key) const;
  std::int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  bool boolean(const std::string& key) const;
  std::string string(const std::string& key) const;
  std::vector<std::string> strings(const std::string& key) const;  // a string or a list of strings
  std::vector<std::int64_t> integers(const std::string& key) const;  // an integer or a list of them
  // The JSON type of a key's value, for keys the schema lets take several types; false
  // when the key is absent. is_number is true for integers too, is_null for null only.
  bool is_null(const std::string& key) const;
  bool is_boolean(const std::string& key) const;
  bool is_integer(const std::string& key) const;
  bool is_number(const std::string& key) const;
  bool is_string(const std::string& key) const;
  bool is_list(const std::string& key) const;
  bool is_object(const std::string& key) const;
  std::vector<std::string> keys() const;
  std::string origin() const;

  std::string to_json(int indent = -1) const;

  // Internal: the host builds Configs from parsed JSON.
  struct Impl;
  explicit Config(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace graft
