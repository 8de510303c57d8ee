// From rows to model inputs: tokenise, pad each batch to its longest row, and build the
// label tensor the task head's loss expects.
#pragma once
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "graft/backbone.h"
#include "text/tokenizer.h"

namespace graft::data {

struct LabeledBatch {
  Batch batch;
  // classification: i64 [B]; regression: f32 [B]; causal LM: ids [B, T] with -100 at
  // padding; token classification: i64 [B, T] with -100 off first word pieces.
  Tensor labels;
  std::size_t tokens = 0;  // real (unpadded) tokens in the batch
};

// Batches of `batch_size` rows in file order, or shuffled by `seed` (the same seed
// gives the same order) with rows of similar length batched together.
std::vector<LabeledBatch> make_batches(const Dataset& data, const text::Tokenizer& tokenizer, std::size_t batch_size,
                                       std::size_t max_length, bool shuffle, std::uint64_t seed);

}  // namespace graft::data
