#include "ops/op_util.h"

#include "graft/ops.h"

namespace graft::ops {

int normalize_axis(const char* op, int axis, int ndim) {
  const int a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim)
    throw ShapeError(op, fmt::format("axis {} is out of range for a tensor of {} axes", axis, ndim));
  return a;
}

Shape pad_to_rank(const Shape& shape, std::size_t ndim) {
  Shape out(ndim - shape.size(), 1);
  out.insert(out.end(), shape.begin(), shape.end());
  return out;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape pa = pad_to_rank(a, n), pb = pad_to_rank(b, n), out(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (pa[i] != pb[i] && pa[i] != 1 && pb[i] != 1)
      throw ShapeError(op, fmt::format("shapes {} and {} do not broadcast (axis {}: {} vs {})",
                                       shape_str(a), shape_str(b), i, pa[i], pb[i]),
                       "broadcast axes must be equal or 1");
    out[i] = pa[i] == 1 ? pb[i] : pa[i];
  }
  return out;
}

Tensor as_f32(const Tensor& x) {
  if (x.dtype() == DType::f32) return x;
  return to_dtype(x, DType::f32);
}

void require_defined(const char* op, const Tensor& x, const char* what) {
  if (!x.defined()) throw ShapeError(op, fmt::format("{} is undefined", what));
}

void require_floating(const char* op, const Tensor& x) {
  require_defined(op, x, "input");
  if (!is_floating(x.dtype()))
    throw ShapeError(op, fmt::format("expects a floating-point tensor, got {}", dtype_name(x.dtype())));
}

std::string key_of(const Shape& s, DType dtype) {
  return fmt::format("{}[{}]", dtype_name(dtype), fmt::join(s, ","));
}

std::string key_of(const Tensor& t) { return key_of(t.shape(), t.dtype()); }

}  // namespace graft::ops
