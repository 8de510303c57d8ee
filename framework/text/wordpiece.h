// BERT WordPiece tokenizer, id-for-id compatible with Hugging Face's fast tokenizer
// (BertNormalizer + BertPreTokenizer + WordPiece + BERT post-processor); the slow
// transformers BertTokenizer agrees except on truncation ties and on characters newer
// than the fast one's Unicode tables. tests/golden/tokenizer_fixtures.json pins it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/text_segments.h"
#include "text/tokenizer.h"  // same folder: also found when included from outside backbones/

namespace graft::text {

struct WordPieceConfig {
  bool lowercase = true;
  bool strip_accents = true;  // HF: strip_accents None follows lowercase
  bool tokenize_chinese_chars = true;
  bool clean_text = true;  // drop control/format chars, map whitespace to ' '
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]",
              pad_token = "[PAD]", mask_token = "[MASK]";
  std::string continuing_prefix = "##";
  int max_input_chars_per_word = 100;
};

// A batch padded to its longest row: row-major [batch, length] vectors.
struct BatchEncoding {
  std::vector<std::int64_t> ids, token_type_ids, attention_mask;
  std::size_t batch = 0, length = 0;
};

class WordPieceTokenizer : public Tokenizer {
 public:
  // `vocab[i]` is the token of id i ("" for an unused id). `added` are tokens matched
  // verbatim in the raw text before normalisation (HF added/special tokens); the five
  // special tokens of `config` are always among them. Throws graft::FormatError when
  // [UNK], [CLS], [SEP] or [PAD] is missing (`source` names the file in the message).
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceConfig config,
                     std::vector<std::string> added = {}, std::string source = "vocabulary");

  // vocab.txt: one token per line, the line number is the id.
  static WordPieceTokenizer from_vocab_file(const std::filesystem::path& vocab_txt,
                                            WordPieceConfig config = {});
  // tokenizer.json of a BERT-style fast tokenizer: model.type "WordPiece", a
  // BertNormalizer (lowercase / strip_accents / handle_chinese_chars / clean_text),
  // BertPreTokenizer, special tokens from the post-processor, padding and added_tokens.
  static WordPieceTokenizer from_tokenizer_json(const std::filesystem::path& path);
  // A Hugging Face model folder: tokenizer.json if present, else vocab.txt plus
  // tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars, tokens).
  static WordPieceTokenizer from_folder(const std::filesystem::path& folder);

  std::vector<std::string> tokenize(std::string_view text) const;   // pieces, no specials
  std::vector<std::int64_t> encode_tokens(std::string_view text) const;  // ids, no specials
  // [CLS] a [SEP] (b [SEP]) with token types 0/1, truncated to max_length (specials
  // included) with HF's "longest_first" strategy.
  Encoding encode_words(const std::vector<std::string>& words, std::vector<std::int64_t>& word_starts,
                        std::size_t max_length = 512) const override;
  Encoding encode(std::string_view text, std::string_view pair = {}, bool has_pair = false,
                  std::size_t max_length = 512) const override;
  // Each row encoded as encode() does, then right-padded with [PAD] (mask 0, type 0).
  // `pairs` is empty or as long as `texts`.
  BatchEncoding encode_batch(const std::vector<std::string>& texts,
                             const std::vector<std::string>& pairs = {},
                             std::size_t max_length = 512) const;
  // As HF decode(): "##" pieces joined to the previous token, tokens otherwise
  // separated by spaces, then the clean-up of spaces before punctuation and in
  // contractions (clean_up_tokenization_spaces=True).
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special) const;
  std::string decode(const std::vector<std::int64_t>& ids) const override { return decode(ids, true); }

  std::int64_t token_id(std::string_view token) const;  // -1 if absent
  const std::string& id_token(std::int64_t id) const;   // throws on an id out of range
  std::size_t vocab_size() const override { return vocab_.size(); }
  std::string kind() const override { return "WordPiece"; }
  std::int64_t pad_id() const override { return pad_id_; }
  std::int64_t cls_id() const { return cls_id_; }
  std::int64_t sep_id() const { return sep_id_; }
  std::int64_t unk_id() const { return unk_id_; }
  std::int64_t mask_id() const { return mask_id_; }  // -1 if the vocab has none
  const WordPieceConfig& config() const { return config_; }

 private:
  // Runs normalisation, pre-tokenisation and WordPiece; fills ids and/or pieces.
  void run(std::string_view text, std::vector<std::int64_t>* ids,
           std::vector<std::string>* pieces) const;
  void run_segment(std::u32string_view segment, std::vector<std::int64_t>* ids,
                   std::vector<std::string>* pieces) const;
  void word_pieces(const std::u32string& word, std::vector<std::int64_t>* ids,
                   std::vector<std::string>* pieces) const;

  WordPieceConfig config_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, std::int64_t> ids_;
  std::vector<text_segments::AddedToken> added_;
  std::vector<bool> special_;       // per id: skipped by decode(skip_special)
  std::int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, mask_id_ = -1;
};

}  // namespace graft::text
