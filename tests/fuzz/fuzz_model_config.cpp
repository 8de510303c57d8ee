// config.json of Hugging Face backbone folders (framework/model/backbone_registry.cpp, bert_loader.cpp,
// hf_llama_loader.cpp): the input is written as config.json beside the weights of the
// committed tiny BERT and tiny LLaMA fixtures and loaded through load_backbone, so
// every key check, the architecture dispatch and the weight-shape checks it drives run.
#include <filesystem>

#include "fuzz_util.h"
#include "model/backbone_registry.h"

using namespace graft;
namespace fs = std::filesystem;

namespace {

fs::path model_folder(const std::string& name, const fs::path& weights) {
  const auto dir = fuzz::folder(name);
  if (!fs::exists(dir / "model.safetensors")) fs::create_symlink(weights, dir / "model.safetensors");
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path folders[] = {
      model_folder("bert", fuzz::source_dir() / "tests/golden/backbones/tiny_bert/model.safetensors"),
      model_folder("llama", fuzz::source_dir() / "tests/golden/backbones/tiny_llama/model.safetensors"),
  };
  for (const auto& dir : folders) {
    fuzz::write_file(dir / "config.json", data, size);
    fuzz::expect_errors([&] { (void)model::load_backbone(dir); });
  }
  return 0;
}
