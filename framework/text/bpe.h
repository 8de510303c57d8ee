// Byte-pair-encoding tokenizers from Hugging Face's tokenizer.json, id-for-id with the
// `tokenizers` library: byte-level BPE (RoBERTa, GPT-2: ByteLevel pre-tokenizer with
// GPT-2's split regex) and SentencePiece-style BPE (LLaMA: "▁" for spaces through a
// Prepend/Replace normaliser or a Metaspace pre-tokenizer, <0xXX> byte fallback).
// tests/golden/bpe/cases.json pins both; docs/architecture.md lists what is supported.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"
#include "text/text_segments.h"

namespace graft::text {

class BpeTokenizer : public Tokenizer {
 public:
  // Throws graft::FormatError naming the file and key for anything it does not
  // understand (an unsupported normaliser, pre-tokenizer, decoder or model option).
  static BpeTokenizer from_tokenizer_json(const std::filesystem::path& path);
  // The same, from a parsed tokenizer.json (`source` names it in errors).
  static BpeTokenizer from_json(const nlohmann::json& root, const std::filesystem::path& source);
  // An older RoBERTa/GPT-2 folder: vocab.json + merges.txt (+ tokenizer_config.json),
  // read as transformers' RobertaTokenizerFast converts them.
  static BpeTokenizer from_vocab_and_merges(const std::filesystem::path& folder);
  // True when `path` is a tokenizer.json whose model is BPE.
  static bool is_bpe(const std::filesystem::path& path);

  // Pieces as tokenizers' Encoding.tokens (without special tokens), and their ids.
  std::vector<std::string> tokenize(std::string_view text) const;
  std::vector<std::int64_t> encode_tokens(std::string_view text) const;
  // The post-processor's template around text (and pair), truncated longest-first.
  Encoding encode(std::string_view text, std::string_view pair = {}, bool has_pair = false,
                  std::size_t max_length = 512) const override;
  // As tokenizers' encode(words, is_pretokenized=True): each word its own segment.
  Encoding encode_words(const std::vector<std::string>& words, std::vector<std::int64_t>& word_starts,
                        std::size_t max_length = 512) const override;
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special) const;
  std::string decode(const std::vector<std::int64_t>& ids) const override { return decode(ids, true); }

  std::int64_t token_id(std::string_view token) const;  // -1 if absent
  std::size_t vocab_size() const override { return vocab_.size(); }
  std::string kind() const override;  // "byte-level BPE" or "SentencePiece-style BPE (byte fallback)"
  std::int64_t pad_id() const override { return pad_id_; }

  struct Pipeline;  // normaliser, pre-tokenizer, post-processor and decoder settings
  BpeTokenizer(BpeTokenizer&&) noexcept;
  ~BpeTokenizer() override;

 private:
  BpeTokenizer();
  // One segment (text between added tokens; `first` when it starts the input) through
  // normaliser, pre-tokenizer and BPE.
  void run_segment(std::u32string_view text, bool first, std::vector<std::int64_t>& ids) const;
  void run(std::string_view text, std::vector<std::int64_t>& ids) const;
  // BPE on one pre-token: its characters' ids merged by rank.
  void bpe_word(const std::string& word, std::vector<std::int64_t>& ids) const;
  Encoding post_process(std::vector<std::int64_t> a, std::vector<std::int64_t>* b, std::size_t max_length) const;

  std::vector<std::string> vocab_;  // by id ("" for an unused id)
  std::unordered_map<std::string, std::int64_t> ids_;
  struct Merge {
    std::int32_t rank;
    std::int64_t merged;
  };
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::vector<text_segments::AddedToken> added_;
  std::vector<bool> special_;  // per id: skipped by decode(skip_special)
  std::int64_t unk_id_ = -1, pad_id_ = 0;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::unique_ptr<Pipeline> pipeline_;
  std::string source_;
};

}  // namespace graft::text
