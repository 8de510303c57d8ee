// The parts of a tokenizer.json around a BPE model, as BpeTokenizer runs them:
// normaliser, pre-tokenizer, post-processor template and decoder. Internal to
// backbones/tokenizers; each piece follows the `tokenizers` (Rust) component of the
// same name.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/bpe.h"

namespace graft::text {

struct BpeTokenizer::Pipeline {
  struct Normalize {
    enum Kind { Prepend, Replace, NFC, NFKC, Lowercase } kind;
    std::string from, to;  // Prepend: `to` is the prefix
  };
  std::vector<Normalize> normalizer;

  enum class Pre { None, ByteLevel, Metaspace } pre = Pre::None;
  bool add_prefix_space = false;  // ByteLevel: a space; Metaspace: the replacement
  bool use_regex = true;          // ByteLevel: split with `split` first
  enum class Split { Gpt2, Cl100k } split_regex = Split::Gpt2;
  int max_digits = 0;  // Cl100k: digits per pre-token (Llama 3: 3; Qwen2: 1; 0 = no limit)
  std::string replacement = "\xE2\x96\x81";  // Metaspace: "▁"
  bool prepend_first_only = false;           // Metaspace prepend_scheme "first"
  bool split = true;                          // Metaspace: one pre-token per "▁word"

  struct Item {
    bool special = false;
    std::vector<std::int64_t> ids;  // special
    int sequence = 0;               // not special: 0 = A, 1 = B
    std::int64_t type_id = 0;
  };
  std::vector<Item> single, pair;

  struct Decode {
    enum Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
    std::string from, to;  // Replace; Metaspace: `from` is the replacement
    int start = 0, stop = 0;
    bool prefix = true;  // Metaspace: the first token's replacement is dropped
  };
  std::vector<Decode> decoder;  // empty: tokens joined by spaces
  bool has_decoder = false;

  std::size_t specials(bool with_pair) const;
};

namespace bpe_pipeline {

// Reads normalizer, pre_tokenizer, post_processor and decoder of `root`; throws
// FormatError naming `file` and the key of anything unsupported.
BpeTokenizer::Pipeline parse(const nlohmann::json& root, const std::filesystem::path& file);

std::string normalize(const BpeTokenizer::Pipeline& p, std::string text);
// The pre-tokens of one normalised segment, as strings over the BPE vocabulary's
// alphabet (byte-level: GPT-2's byte-to-character map applied).
std::vector<std::string> pre_tokenize(const BpeTokenizer::Pipeline& p, const std::string& segment, bool first);
std::string decode(const BpeTokenizer::Pipeline& p, std::vector<std::string> tokens);

// GPT-2's pre-tokenizer regex  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::vector<std::u32string> gpt2_split(std::u32string_view text);
// The split regex of Llama 3 / tiktoken cl100k (max_digits 3) and Qwen2 (max_digits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
std::vector<std::u32string> cl100k_split(std::u32string_view text, int max_digits);
// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest above U+0100.
const std::array<char32_t, 256>& byte_to_char();

}  // namespace bpe_pipeline
}  // namespace graft::text
