// Command-line options: `--key value`, `--key=value` and `--flag`, checked against the
// options a command accepts, so that a misspelt option is an error listing them.
#pragma once
#include <cstdint>
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
  // Numbers are finite; a value outside [min, max] is a ConfigError naming the option
  // and the range, so nothing absurd (0, negative, NaN, 1e30) reaches the code below.
  double number(const std::string& name, double fallback, double min = -1e300, double max = 1e300) const;
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min = INT64_MIN,
                       std::int64_t max = INT64_MAX) const;
  // An optional count that must be at least 1 when given (rows, steps, epochs...).
  std::size_t count(const std::string& name, std::size_t fallback, std::int64_t max) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace graft::cli
