// Finding a model's tokenizer among its files, by format, not by model: a Hugging Face
// folder's tokenizer.json (BPE or WordPiece), vocab.json + merges.txt, vocab.txt; a
// llama2.c tokenizer (tokN.bin / tokenizer.bin) beside a checkpoint file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace graft::text {

// The folder's tokenizer, or null when it has none graft can read (the model still
// runs on ids). `model_type` (config.json) picks between the vocabulary-only formats.
std::unique_ptr<Tokenizer> load_folder_tokenizer(const std::filesystem::path& folder, const std::string& model_type);
// The llama2.c tokenizer beside `checkpoint` for a model of `vocab_size`, or null.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer_beside(const std::filesystem::path& checkpoint, std::int64_t vocab_size);

}  // namespace graft::text
