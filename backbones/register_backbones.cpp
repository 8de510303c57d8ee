// The backbone families this build ships, registered with framework's backbone
// registry when libgraft loads (framework/ never includes a model's header).
#include <fmt/format.h>

#include "bert/bert_model.h"
#include "graft/error.h"
#include "llama/llama_model.h"
#include "model/backbone_registry.h"
#include "text/tokenizer_files.h"

namespace graft::backbones {
namespace {
namespace fs = std::filesystem;

// A llama2.c model file in `folder`: the one .bin that is not a tokenizer.
std::optional<fs::path> find_llama2c_file(const fs::path& folder) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const auto name = entry.path().filename().string();
    if (entry.path().extension() == ".bin" && name.rfind("tok", 0) != 0 && name != "pytorch_model.bin")
      found.push_back(entry.path());
  }
  if (found.size() > 1)
    throw IoError("backbone", fmt::format("'{}' has no config.json and {} llama2.c .bin files", folder.string(), found.size()),
                  "pass one llama2.c .bin file");
  if (found.empty()) return std::nullopt;
  return found[0];
}

model::LoadedBackbone load_llama2c_with_tokenizer(const fs::path& file, DType dtype) {
  model::LoadedBackbone out;
  out.model = load_llama2c(file, dtype);
  out.tokenizer = text::load_llama2c_tokenizer_beside(file, out.model->info().vocab_size);
  return out;
}

const bool registered = [] {
  for (const char* type : {"bert", "roberta"})
    model::register_model_type(type, [](const fs::path& f, DType d) -> std::unique_ptr<Backbone> { return load_hf_bert(f, d); });
  for (const char* type : {"llama", "mistral"})
    model::register_model_type(type, [](const fs::path& f, DType d) -> std::unique_ptr<Backbone> { return load_hf_llama(f, d); });
  model::register_file_format({"llama2.c", find_llama2c_file, load_llama2c_with_tokenizer});
  return true;
}();

}  // namespace
}  // namespace graft::backbones
