// Adapter folders (framework/train/adapter_io.cpp, config_schema.cpp, the shipped
// plugins' configs), loaded onto the tiny BERT fixture. The input is written
//   - as graft_adapter.json (graft's manifest) into a folder holding the tensors and
//     head that graft itself saved for that method with its default config, and
//   - as adapter_config.json (a folder saved by Hugging Face PEFT, no manifest) beside
//     the tensors of the committed PEFT fixture for that peft_type,
// and each folder is loaded: manifest keys, the backbone fingerprint, peft_type
// dispatch, schema validation, the plugin's reading of its config, site selection
// (target_modules, layers_to_transform), the size checks, tensor and head checks.
// The folder is picked by the method name the input mentions (LoRA otherwise).
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "train/adapter_io.h"
#include "plugin/loader.h"
#include "model/backbone_registry.h"

using namespace graft;
namespace fs = std::filesystem;

namespace {

void link(const fs::path& target, const fs::path& link) {
  if (fs::exists(target) && !fs::exists(link)) fs::create_symlink(target, link);
}

struct World {
  plugin::PluginRegistry plugins;
  model::LoadedBackbone bert;
  std::vector<std::pair<std::string, fs::path>> manifest_dirs, peft_dirs;  // (name in the input, folder)

  World() : bert(model::load_backbone(fuzz::source_dir() / "tests/golden/backbones/tiny_bert")) {
    plugins.scan(plugin::search_path({}));
    if (plugins.plugins().empty()) {
      std::fprintf(stderr, "fuzz_adapter_config: no plugins found (build graft_all_plugins)\n");
      std::abort();
    }
    const fs::path model = fuzz::source_dir() / "tests/golden/backbones/tiny_bert/model.safetensors";
    for (const std::string method : {"lora", "houlsby", "prefix_tuning", "prompt_tuning"}) {
      const fs::path saved = fuzz::scratch() / ("saved_" + method);
      AdapterSet set(*bert.model);
      attach_method(set, plugins, "fuzz", method, "", "fuzz_adapter_config", 0);
      const TaskHead head(HeadConfig{}, *bert.model, 0);
      save_adapter(saved, set, "fuzz", *bert.model, &head);
      const fs::path dir = fuzz::folder("manifest_" + method);
      for (const char* file : {"adapter_config.json", "adapter_model.safetensors", "head.safetensors"})
        link(saved / file, dir / file);
      link(model, dir / "model.safetensors");  // for method "full": the backbone's own weights
      manifest_dirs.emplace_back(method, dir);
    }
    const fs::path golden = fuzz::source_dir() / "tests/golden";
    for (const auto& [type, fixture] : {std::pair<std::string, fs::path>{"LORA", golden / "peft_lora/tiny_bert_lora"},
                                        {"PREFIX_TUNING", golden / "peft_prompt/bert_prefix"},
                                        {"PROMPT_TUNING", golden / "peft_prompt/bert_prompt"}}) {
      const fs::path dir = fuzz::folder("peft_" + type);
      link(fixture / "adapter_model.safetensors", dir / "adapter_model.safetensors");
      peft_dirs.emplace_back(type, dir);
    }
  }

  static const fs::path& pick(const std::vector<std::pair<std::string, fs::path>>& dirs, std::string_view input) {
    for (std::size_t i = 1; i < dirs.size(); ++i)
      if (input.find(dirs[i].first) != std::string_view::npos) return dirs[i].second;
    return dirs.front().second;
  }

  void load(const fs::path& folder) const {
    AdapterSet set(*bert.model);
    const text::Tokenizer* tokenizer = bert.tokenizer.get();
    set.set_tokenizer([tokenizer](const std::string& text) { return tokenizer->encode(text).ids; });
    std::unique_ptr<TaskHead> head;
    load_adapter(folder, set, "fuzz", plugins, *bert.model, &head);
    if (set.contains("fuzz")) set.remove("fuzz");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const World world;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const fs::path& manifest_dir = World::pick(world.manifest_dirs, input);
  fuzz::write_file(manifest_dir / "graft_adapter.json", data, size);
  fuzz::expect_errors([&] { world.load(manifest_dir); });

  const fs::path& peft_dir = World::pick(world.peft_dirs, input);
  fuzz::write_file(peft_dir / "adapter_config.json", data, size);
  fuzz::expect_errors([&] { world.load(peft_dir); });
  return 0;
}
