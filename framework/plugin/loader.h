// The run-time plugin loader: finds plugin libraries, gates them on the ABI before
// touching anything else in them, and creates PEFT methods from them. A bad plugin
// never takes the host down: scan() records it and goes on, load() and create() throw
// a graft::PluginError (or the ConfigError of a rejected config) naming the file.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graft/peft.h"

namespace graft::plugin {

struct PluginRecord {
  std::string name, version, description, schema_json;
  std::filesystem::path file;
  // Metadata (ABI 2): the PEFT peft_types it reads, its aliases with their preset
  // configs (JSON), the learning rate it suits (0: the host's default).
  std::vector<std::string> peft_types;
  std::vector<std::pair<std::string, std::string>> aliases;
  double default_lr = 0;
};

struct LoadFailure {
  std::filesystem::path file;  // the library, or the directory that could not be listed
  std::string message;         // the full error text, hint included
  bool conflict = false;       // a valid plugin not used: another one has its name
};

// The directories searched, in order, duplicates dropped: each of `plugin_dirs`
// (--plugin-dir), each entry of GRAFT_PLUGIN_PATH (':'-separated), then the build
// tree's and the install prefix's plugin directories where they exist.
std::vector<std::filesystem::path> search_path(const std::vector<std::filesystem::path>& plugin_dirs);
// The folders of the plugins shipped with this libgraft: the build tree's plugins/ when
// it runs from the build tree, <libdir>/graft/plugins when installed.
std::vector<std::filesystem::path> shipped_plugin_dirs();

class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;
  PluginRegistry(PluginRegistry&&) noexcept;
  PluginRegistry& operator=(PluginRegistry&&) noexcept;

  // Loads every *.so in `dirs` (not recursive; by file name within a directory). Never
  // throws for a bad plugin, directory or entry: each failure is recorded and the scan
  // goes on. Loading a library runs its code (static constructors): scan only folders
  // you trust.
  void scan(const std::vector<std::filesystem::path>& dirs);
  // Loads one file (again: returns the record already loaded); PluginError on failure.
  // Two plugins of one name: a shipped one (shipped_plugin_dirs()) wins over any other,
  // whatever the order; otherwise the first loaded wins. The loser is a PluginError
  // here, and a failure marked `conflict` (a shipped plugin displacing one loaded
  // before it records the displaced one so).
  // Records are returned by reference: valid until the next load() or scan().
  const PluginRecord& load(const std::filesystem::path& file);

  // The plugins loaded from libraries, and the built-in methods ("head", "full": see
  // plugin/builtin_methods.h), which find() and create() offer as well.
  const std::vector<PluginRecord>& plugins() const { return records_; }
  const std::vector<PluginRecord>& builtins() const { return builtin_records_; }
  const std::vector<LoadFailure>& failures() const { return failures_; }
  // The failures that are name conflicts: every command warns about them.
  std::vector<LoadFailure> conflicts() const;
  // PluginError "no plugin named X" listing what was loaded and what failed.
  const PluginRecord& find(const std::string& name) const;
  // The built-in method or loaded plugin named `name`, or null.
  const PluginRecord* lookup(const std::string& name) const;
  // The plugin that reads adapter_config.json's `peft_type`, or null.
  const PluginRecord* find_peft_type(const std::string& peft_type) const;
  // The plugin with alias `alias` and the alias's preset config (JSON), or null.
  const PluginRecord* find_alias(const std::string& alias, std::string* preset_json) const;

  // Validates `config_json` ("" means {}) against the plugin's schema (ConfigError
  // naming the key), then calls the plugin's create. The method's deleter holds the
  // library, so it stays loaded while the method lives, even past this registry.
  // `resolved_config`, when given, receives the validated config with defaults filled.
  std::shared_ptr<PeftMethod> create(const std::string& name, const std::string& config_json, const std::string& origin,
                                     std::string* resolved_config = nullptr) const;

 private:
  struct Loaded;  // the library handle, the gated info and the parsed schema
  std::vector<PluginRecord> records_;
  std::vector<std::shared_ptr<const Loaded>> loaded_;  // parallel to records_
  std::vector<LoadFailure> failures_;
  std::vector<PluginRecord> builtin_records_;
  std::vector<std::shared_ptr<const Loaded>> builtin_loaded_;  // no library: their code is libgraft's
};

}  // namespace graft::plugin
