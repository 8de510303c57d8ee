// The tokenizer of llama2.c models (tok512.bin, tokenizer.bin): a SentencePiece-style
// BPE vocabulary with merge scores and byte fallback (<0x00>..<0xFF> at ids 3..258).
// File: int32 max_token_length, then per token float32 score, int32 length, bytes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace graft::text {

class Llama2cTokenizer : public Tokenizer {
 public:
  static Llama2cTokenizer load(const std::filesystem::path& path, std::int64_t vocab_size);

  // BPE by merge score, as llama2.c's encode(): a dummy-prefix space, code points looked
  // up whole, unknown code points as their UTF-8 bytes.
  std::vector<std::int64_t> encode_ids(std::string_view text, bool bos, bool eos) const;
  // The text of `token` following `previous` (a leading space after BOS is dropped;
  // <0xXX> pieces become their byte).
  std::string decode(std::int64_t previous, std::int64_t token) const;
  std::string decode(const std::vector<std::int64_t>& ids) const override;
  // BOS + text (+ " " + pair), cut to max_length (a decoder reads a pair as one text).
  Encoding encode(std::string_view text, std::string_view pair = {}, bool has_pair = false,
                  std::size_t max_length = 512) const override;
  std::int64_t pad_id() const override { return 0; }

  std::int64_t bos_id() const { return 1; }
  std::int64_t eos_id() const { return 2; }
  std::size_t vocab_size() const override { return pieces_.size(); }
  std::string kind() const override { return "llama2.c BPE (merge scores)"; }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int64_t> ids_;
};

}  // namespace graft::text
