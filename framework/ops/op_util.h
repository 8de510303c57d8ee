// Internal helpers shared by the op families.
#pragma once
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "graft/tensor.h"

namespace graft::ops {

// Axis in [0, ndim) or a ShapeError naming `op`.
int normalize_axis(const char* op, int axis, int ndim);
// NumPy broadcast of two shapes, or a ShapeError naming `op`.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// `shape` left-padded with 1s to `ndim` axes.
Shape pad_to_rank(const Shape& shape, std::size_t ndim);

// f32 copy of a bf16 tensor; f32 tensors pass through unchanged.
Tensor as_f32(const Tensor& x);
void require_floating(const char* op, const Tensor& x);
void require_defined(const char* op, const Tensor& x, const char* what);

// Sums `g` down to `shape` (undoing a broadcast): no copy when shapes already match.
Tensor sum_to_shape(const Tensor& g, const Shape& shape);
// Copies `x` broadcast up to `shape`.
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// Cache key fragment for a tensor's shape and dtype: "f32[2,3]".
std::string key_of(const Tensor& t);
std::string key_of(const Shape& s, DType dtype);

template <class OpT, class... Args>
std::shared_ptr<Op> make_op(Args&&... args) {
  return std::make_shared<OpT>(std::forward<Args>(args)...);
}

}  // namespace graft::ops
