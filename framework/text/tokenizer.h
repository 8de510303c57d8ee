// What every tokenizer offers the rest of graft: text (or a text pair) to ids with a
// mask and segment ids, ids back to text, and batching with padding.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "graft/backbone.h"

namespace graft::text {

struct Encoding {
  std::vector<std::int64_t> ids, token_type_ids, attention_mask;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Special tokens included ([CLS]/[SEP] for encoders, BOS for decoders); at most
  // `max_length` ids, truncated the way the model's own tokenizer does.
  virtual Encoding encode(std::string_view text, std::string_view pair = {}, bool has_pair = false,
                          std::size_t max_length = 512) const = 0;
  virtual std::string decode(const std::vector<std::int64_t>& ids) const = 0;
  // Pre-split words (token classification): the encoding of the words in order, and for
  // each id the index of the word it starts, or -1 (special tokens, continuation
  // pieces). Words past `max_length` are dropped. Tokenizers that cannot do this throw.
  virtual Encoding encode_words(const std::vector<std::string>& words, std::vector<std::int64_t>& word_starts,
                                std::size_t max_length = 512) const;
  virtual std::int64_t pad_id() const = 0;
  virtual std::size_t vocab_size() const = 0;
  // What kind of tokenizer this is, for `graft info` ("WordPiece", "byte-level BPE", ...).
  virtual std::string kind() const = 0;
};

// Right-pads encodings to the longest, rounded up to a multiple of `pad_multiple`, and
// stacks them into a Batch (never past `max_length` when it is set). Rounding keeps the number of distinct shapes — and so of
// oneDNN primitives to build and JIT-compile — small across a dataset.
Batch make_batch(const std::vector<Encoding>& encodings, std::int64_t pad_id, std::size_t pad_multiple = 1,
                 std::size_t max_length = 0);

}  // namespace graft::text
