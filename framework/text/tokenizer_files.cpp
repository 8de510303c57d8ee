#include "text/tokenizer_files.h"

#include <fmt/format.h>

#include "text/bpe.h"
#include "text/llama2c_tokenizer.h"
#include "text/wordpiece.h"

namespace graft::text {
namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> load_folder_tokenizer(const fs::path& folder, const std::string& model_type) {
  const fs::path json = folder / "tokenizer.json";
  if (fs::exists(json)) {
    if (BpeTokenizer::is_bpe(json)) return std::make_unique<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(json));
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(json));
  }
  if (model_type == "roberta" && fs::exists(folder / "vocab.json") && fs::exists(folder / "merges.txt"))
    return std::make_unique<BpeTokenizer>(BpeTokenizer::from_vocab_and_merges(folder));
  if (model_type == "bert" && fs::exists(folder / "vocab.txt"))
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_folder(folder));
  return nullptr;
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer_beside(const fs::path& checkpoint, std::int64_t vocab_size) {
  for (const auto& name : {fmt::format("tok{}.bin", vocab_size), std::string("tokenizer.bin")}) {
    const fs::path candidate = checkpoint.parent_path() / name;
    if (fs::exists(candidate)) return std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(candidate, vocab_size));
  }
  return nullptr;
}

}  // namespace graft::text
