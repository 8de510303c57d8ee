#include "graft/library.h"

#include "data/conll.h"
#include "data/glue.h"
#include "data/tabular.h"
#include "plugin/loader.h"

namespace graft {

PluginListing list_plugins(const std::vector<std::filesystem::path>& plugin_dirs) {
  PluginListing out;
  out.search_path = plugin::search_path(plugin_dirs);
  plugin::PluginRegistry registry;
  registry.scan(out.search_path);
  auto add = [&](const plugin::PluginRecord& p, bool builtin) {
    out.plugins.push_back({p.name, p.version, p.description, p.file, p.peft_types, p.aliases, p.default_lr, p.schema_json, builtin});
  };
  for (const auto& p : registry.plugins()) add(p, false);
  for (const auto& p : registry.builtins()) add(p, true);
  for (const auto& f : registry.failures()) out.failures.emplace_back(f.file, f.message);
  return out;
}

data::Dataset read_task_data(const std::string& task, const std::filesystem::path& file, bool regression,
                             const std::vector<std::string>& label_names) {
  if (task == "conll2003") return data::read_conll(file);
  if (task == "text") return data::read_text_lines(file);
  if (task == "csv") return data::read_csv(file, regression, label_names);
  if (task == "jsonl") return data::read_jsonl(file, regression, label_names);
  return data::read_glue_file(file, data::canonical_glue_task(task));  // ConfigError for an unknown task
}

}  // namespace graft
