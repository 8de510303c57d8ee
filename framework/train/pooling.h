// From token states to one vector per sequence.
#pragma once
#include <string>

#include "graft/task.h"
#include "graft/tensor.h"

namespace graft::train {

// hidden [B, T, H], key mask [B, T] (1 token, 0 padding) -> [B, H]; differentiable.
Tensor pool(const Tensor& hidden, const Tensor& mask, Pooling pooling);
// Rows scaled to unit L2 norm, for inference (the norm is treated as a constant).
Tensor l2_normalize(const Tensor& x);

}  // namespace graft::train
