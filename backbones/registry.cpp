#include "registry.h"

#include <fmt/format.h>

#include "bert/bert_model.h"
#include "graft/error.h"
#include "io/json_config.h"
#include "llama/llama_model.h"
#include "tokenizers/bpe.h"
#include "tokenizers/llama2c_tokenizer.h"
#include "tokenizers/wordpiece.h"

namespace graft::backbones {
namespace fs = std::filesystem;

namespace {

// A llama2.c model file in `folder`: the one .bin that is not a tokenizer.
fs::path find_llama2c_file(const fs::path& folder) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const auto name = entry.path().filename().string();
    if (entry.path().extension() == ".bin" && name.rfind("tok", 0) != 0 && name != "pytorch_model.bin")
      found.push_back(entry.path());
  }
  if (found.size() != 1)
    throw IoError("backbone", fmt::format("'{}' has no config.json and {} llama2.c .bin files", folder.string(), found.size()),
                  "pass a Hugging Face model folder (config.json + model.safetensors) or one llama2.c .bin file");
  return found[0];
}

LoadedBackbone load_llama2c_with_tokenizer(const fs::path& file, DType dtype) {
  LoadedBackbone out;
  auto model = load_llama2c(file, dtype);
  const std::int64_t vocab = model->info().vocab_size;
  for (const auto& name : {fmt::format("tok{}.bin", vocab), std::string("tokenizer.bin")}) {
    const fs::path candidate = file.parent_path() / name;
    if (fs::exists(candidate)) {
      out.tokenizer = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(candidate, vocab));
      break;
    }
  }
  out.model = std::move(model);
  return out;
}

// The folder's tokenizer: tokenizer.json (BPE or WordPiece, by its model type), else a
// RoBERTa vocab.json + merges.txt or a BERT vocab.txt; null when there is none (the model
// still runs on ids).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const fs::path& folder, const std::string& type) {
  const fs::path json = folder / "tokenizer.json";
  if (fs::exists(json)) {
    if (BpeTokenizer::is_bpe(json)) return std::make_unique<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(json));
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(json));
  }
  if (type == "roberta" && fs::exists(folder / "vocab.json") && fs::exists(folder / "merges.txt"))
    return std::make_unique<BpeTokenizer>(BpeTokenizer::from_vocab_and_merges(folder));
  if (type == "bert" && fs::exists(folder / "vocab.txt"))
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_folder(folder));
  return nullptr;
}

}  // namespace

DType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  throw ConfigError("backbone", fmt::format("unknown dtype '{}'", name), "use f32 or bf16");
}

LoadedBackbone load_backbone(const fs::path& path, DType dtype) {
  if (!fs::exists(path))
    throw IoError("backbone", fmt::format("'{}' does not exist", path.string()),
                  "pass a model folder or a llama2.c .bin file (make models fetches all-MiniLM-L6-v2)");
  if (fs::is_regular_file(path)) return load_llama2c_with_tokenizer(path, dtype);
  if (!fs::exists(path / "config.json")) return load_llama2c_with_tokenizer(find_llama2c_file(path), dtype);

  const auto config = io::load_json(path / "config.json");
  const auto type = io::optional_key<std::string>(config, "model_type", "", (path / "config.json").string());
  LoadedBackbone out;
  if (type == "bert" || type == "roberta") {
    out.model = load_hf_bert(path, dtype);
  } else if (type == "llama" || type == "mistral") {
    out.model = load_hf_llama(path, dtype);
  } else {
    throw FormatError("backbone", fmt::format("'{}': unknown architecture (model_type '{}')", (path / "config.json").string(), type),
                      "supported: bert, roberta (encoders); llama (decoders); llama2.c .bin checkpoints");
  }
  out.tokenizer = load_hf_tokenizer(path, type);
  if (out.tokenizer && static_cast<std::int64_t>(out.tokenizer->vocab_size()) > out.model->info().vocab_size)
    throw FormatError("backbone",
                      fmt::format("{}: the tokenizer has {} tokens but the model embeds only {}", path.string(),
                                  out.tokenizer->vocab_size(), out.model->info().vocab_size),
                      "tokenizer.json and the weights come from different models");
  return out;
}

}  // namespace graft::backbones
