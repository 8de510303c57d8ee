// From token states to one vector per sequence.
#pragma once
#include <string>

#include "graft/tensor.h"

namespace graft::backbones {

// mean: average over the key mask (sentence-transformers' mean pooling);
// cls: the first token (BERT's [CLS]); last: the last real token (decoders).
enum class Pooling { mean, cls, last };
Pooling parse_pooling(const std::string& name);
const char* pooling_name(Pooling pooling);

// hidden [B, T, H], key mask [B, T] (1 token, 0 padding) -> [B, H]; differentiable.
Tensor pool(const Tensor& hidden, const Tensor& mask, Pooling pooling);
// Rows scaled to unit L2 norm, for inference (the norm is treated as a constant).
Tensor l2_normalize(const Tensor& x);

}  // namespace graft::backbones
