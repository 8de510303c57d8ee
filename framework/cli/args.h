// Command-line options: `--key value`, `--key=value` and `--flag`, checked against the
// options a command accepts, so that a misspelt option is an error listing them.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace graft::cli {

struct OptionSpec {
  std::string name;  // without the dashes
  bool takes_value = true;
  std::string help;
};

class Args {
 public:
  Args(const std::string& command, const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = {}) const;
  std::string require(const std::string& name) const;
  double number(const std::string& name, double fallback) const;
  std::int64_t integer(const std::string& name, std::int64_t fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace graft::cli
