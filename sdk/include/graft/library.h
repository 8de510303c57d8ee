// Library-level calls that need no Session: the plugins the search path holds and the
// task-data readers, for front ends that see only public headers (the Python module).
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "graft/dataset.h"

namespace graft {

struct PluginSummary {
  std::string name, version, description;
  std::filesystem::path file;                                // empty for the built-in methods
  std::vector<std::string> peft_types;                       // the PEFT peft_types it reads
  std::vector<std::pair<std::string, std::string>> aliases;  // alias -> preset config (JSON)
  double default_lr = 0;                                     // 0: the host's default
  std::string schema_json;                                   // its config schema ("" for built-ins)
  bool builtin = false;                                      // "head", "full"
};

struct PluginListing {
  std::vector<std::filesystem::path> search_path;  // the folders scanned, in order
  std::vector<PluginSummary> plugins;              // loaded plugins, then the built-ins
  std::vector<std::pair<std::filesystem::path, std::string>> failures;  // file, why
};

// What `graft plugins` lists: `plugin_dirs` first, then GRAFT_PLUGIN_PATH, then the
// plugins shipped beside this libgraft. Never throws for a bad plugin (a failure).
PluginListing list_plugins(const std::vector<std::filesystem::path>& plugin_dirs = {});

// Reads one task-data file as the CLI does: task is a GLUE task (sst2, cola, mrpc,
// stsb, rte, qnli, wnli: its TSV), conll2003, csv, jsonl (text, text_pair, label;
// `regression`: labels are numbers) or text (a causal-LM row per line). `label_names`
// fixes the classes of a csv/jsonl file (pass the training set's to a dev file).
data::Dataset read_task_data(const std::string& task, const std::filesystem::path& file, bool regression = false,
                             const std::vector<std::string>& label_names = {});

}  // namespace graft
