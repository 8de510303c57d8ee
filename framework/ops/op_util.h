// Internal helpers shared by the op families.
#pragma once
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "graft/autograd.h"
#include "graft/error.h"
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

// True where the CPU multiplies bf16 natively (AVX512-BF16 or AMX, as oneDNN sees it;
// ONEDNN_MAX_CPU_ISA lowers it): matmuls with a bf16 operand then run in bf16, else in
// f32 on widened operands (the same values as f32 weights that were rounded to bf16).
bool bf16_matmul_native();

// Cache key fragment for a tensor's shape and dtype: "f32[2,3]".
std::string key_of(const Tensor& t);
std::string key_of(const Shape& s, DType dtype);

template <class OpT, class... Args>
std::shared_ptr<Op> make_op(Args&&... args) {
  return std::make_shared<OpT>(std::forward<Args>(args)...);
}

}  // namespace graft::ops
