// An adapter on disk is a folder:
//   adapter_config.json        the method's config (Hugging Face PEFT's keys and
//                              peft_type where PEFT has the method; AdapterHub's for
//                              bottleneck adapters)
//   adapter_model.safetensors  its tensors, named as PEFT names them
//   graft_adapter.json         graft's record: method (plugin) name, the exact method
//                              config, the backbone it was trained on, the task head
//   head.safetensors           the task head's weights, when the adapter has a head
// graft_adapter.json is graft's own: a folder saved by PEFT has none, and loads through
// adapter_config.json's peft_type. Folders are written atomically (a temporary folder,
// renamed into place).
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "peft/adapter_set.h"
#include "train/task_head.h"
#include "plugin/loader.h"

namespace graft {

struct SavedAdapter {
  std::string method;        // plugin name
  std::string config_json;   // the method config it was created with
  bool has_head = false;
  HeadConfig head;
};

// The built-in baselines (methods in plugin/builtin_methods), saved in the same folder
// layout: "head" (a linear probe: only head.safetensors) and "full" (full fine-tuning:
// every backbone weight in model.safetensors, plus the head). save_adapter writes them
// so; load_adapter attaches their method like any other.
inline constexpr const char* kHeadOnly = "head";
inline constexpr const char* kFullFineTuning = "full";
void save_baseline(const std::filesystem::path& folder, const std::string& kind, const Backbone& backbone, const TaskHead& head);

// Writes adapter `name` of `set` (and `head`, if given) to `folder`.
void save_adapter(const std::filesystem::path& folder, const AdapterSet& set, const std::string& name, const Backbone& backbone,
                  const TaskHead* head);

// Reads `folder`'s description without loading tensors.
SavedAdapter read_adapter_manifest(const std::filesystem::path& folder, const plugin::PluginRegistry& plugins);

// Creates the adapter's method from its plugin, attaches it to `set` as `name`, loads
// its tensors; builds and loads its head into `head_out` when it has one. Nothing is
// left attached on failure. Returns the manifest. A "full" folder overwrites the
// backbone's weights in place (load it onto a backbone of its own).
SavedAdapter load_adapter(const std::filesystem::path& folder, AdapterSet& set, const std::string& name,
                          const plugin::PluginRegistry& plugins, const Backbone& backbone, std::unique_ptr<TaskHead>* head_out,
                          std::uint64_t seed = 0);

}  // namespace graft

namespace graft {

// Creates `method` from its plugin with `config_json` (validated; "" = defaults) and
// attaches it to `set` as `name`. `origin` names where the config came from in errors.
void attach_method(AdapterSet& set, const plugin::PluginRegistry& plugins, const std::string& name, const std::string& method,
                   const std::string& config_json, const std::string& origin, std::uint64_t seed);

}  // namespace graft
