#include "text/tokenizer.h"

#include <algorithm>

#include "graft/error.h"

namespace graft::text {

Encoding Tokenizer::encode_words(const std::vector<std::string>&, std::vector<std::int64_t>&, std::size_t) const {
  throw ConfigError("tokenizer", "this tokenizer cannot encode pre-split words",
                    "token classification needs a WordPiece (BERT-family) backbone");
}

Batch make_batch(const std::vector<Encoding>& encodings, std::int64_t pad_id, std::size_t pad_multiple, std::size_t max_length) {
  std::size_t length = 1;
  for (const auto& e : encodings) length = std::max(length, e.ids.size());
  if (pad_multiple > 1) {
    const std::size_t rounded = (length + pad_multiple - 1) / pad_multiple * pad_multiple;
    length = max_length > 0 ? std::max(length, std::min(rounded, max_length)) : rounded;
  }
  const auto B = static_cast<std::int64_t>(encodings.size()), T = static_cast<std::int64_t>(length);
  std::vector<std::int64_t> ids(B * T, pad_id), types(B * T, 0), mask(B * T, 0);
  for (std::int64_t b = 0; b < B; ++b) {
    const Encoding& e = encodings[b];
    for (std::size_t t = 0; t < e.ids.size(); ++t) {
      ids[b * T + t] = e.ids[t];
      types[b * T + t] = t < e.token_type_ids.size() ? e.token_type_ids[t] : 0;
      mask[b * T + t] = t < e.attention_mask.size() ? e.attention_mask[t] : 1;
    }
  }
  return {Tensor::from_ints(ids, {B, T}), Tensor::from_ints(mask, {B, T}), Tensor::from_ints(types, {B, T})};
}

}  // namespace graft::text
