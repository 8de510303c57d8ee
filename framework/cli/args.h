// Command-line options, parsed by CLI11 (one CLI::App per command): `--key value`,
// `--key=value`, `--flag`, positional arguments, `--` before texts that begin with '-',
// and `-h`/`--help`. Each command lists its options as OptionSpecs; the spec's default
// is what --help shows and what the accessors without a fallback return.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graft/error.h"

namespace graft::cli {

struct OptionSpec {
  std::string name;          // without the dashes
  bool takes_value = true;   // false: a flag
  std::string help;
  std::string value;         // the default, as typed ("3", "f32"); "" when none
  std::string example;       // a value shown in --help
  std::string default_note;  // a default that depends on the run, in words (shown instead of value)
  bool required = false;     // checked when the command line is parsed
};

// An unknown option (or command): exit status 2.
struct UsageError : ConfigError { using ConfigError::ConfigError; };
// --help was printed: exit status 0.
struct HelpShown {};

class Args {
 public:
  // Throws HelpShown after printing the help, UsageError for an unknown option, and
  // ConfigError for a missing value or a missing required option.
  Args(const std::string& command, const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // The last value given, else `fallback`; without a fallback, the spec's default.
  std::string get(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  // Every value given (repeatable options such as --plugin-dir).
  std::vector<std::string> values(const std::string& name) const;
  std::string require(const std::string& name) const;
  // Numbers are finite; a value outside [min, max] is a ConfigError naming the option
  // and the range, so nothing absurd (0, negative, NaN, 1e30) reaches the code below.
  // The overloads without a fallback use the spec's default.
  double number(const std::string& name, double min, double max) const;
  double number(const std::string& name, double fallback, double min, double max) const;
  std::int64_t integer(const std::string& name, std::int64_t min, std::int64_t max) const;
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) const;
  // A count must be at least 1 (rows, steps, epochs...).
  std::size_t count(const std::string& name, std::int64_t max) const;
  std::size_t count(const std::string& name, std::size_t fallback, std::int64_t max) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  const OptionSpec& spec(const std::string& name) const;
  std::string given_or_default(const std::string& name) const;
  double parse_number(const std::string& name, const std::string& text, double min, double max) const;
  std::int64_t parse_integer(const std::string& name, const std::string& text, std::int64_t min, std::int64_t max) const;

  std::string command_;
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Options several commands share.
OptionSpec dtype_option();
OptionSpec plugin_dir_option();

// The candidate nearest to `word` by edit distance ("" when none is close).
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace graft::cli
