// Layout ops: reshape (a view); permute/transpose, slice and concat as oneDNN
// reorders between strided descriptors (a concat part is a reorder into its window of
// the output). f32 <-> bf16 is a plain loop: oneDNN 2.6 converts it with a reference
// reorder ("simple:any") on CPUs without AVX512, ~30 M values/s, which made every bf16
// matmul pay more for widening its operands than for multiplying them.
// oneDNN has no 64-bit integers; an i64 element is moved as two s32 halves.
#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/bf16_rounding.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

namespace bridge = dnnl_bridge;
using dnnl::memory;

Shape row_major_strides(const Shape& shape) {
  Shape strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

// Descriptor for moving elements of `dtype` with oneDNN, even when it has no such type.
memory::desc movable_desc(Shape shape, Shape strides, DType dtype) {
  if (shape.empty()) shape = strides = {1};
  if (dtype != DType::i64) return bridge::strided_desc(shape, dtype, strides);
  for (auto& s : strides) s *= 2;
  shape.push_back(2);
  strides.push_back(1);
  return bridge::strided_desc(shape, DType::i32, strides);
}

std::string desc_key(const memory::desc& md) {
  const auto& d = md.data;
  return fmt::format("{}:[{}]/[{}]+{}", static_cast<int>(d.data_type), fmt::join(d.dims, d.dims + d.ndims, ","),
                     fmt::join(d.format_desc.blocking.strides, d.format_desc.blocking.strides + d.ndims, ","), d.offset0);
}

// dst (viewed through dst_md) <- src (viewed through src_md), via a cached reorder.
void reorder(const Tensor& src, const memory::desc& src_md, const Tensor& dst, const memory::desc& dst_md) {
  const auto& cached = cached_primitive(fmt::format("reorder|{}|{}", desc_key(src_md), desc_key(dst_md)), [&] {
    return bridge::guarded("reorder", [&] {
      return make_cached<dnnl::reorder>(dnnl::reorder::primitive_desc(bridge::engine(), src_md, bridge::engine(), dst_md, primitive_attr()));
    });
  });
  bridge::guarded("reorder", [&] {
    cached.execute({{DNNL_ARG_FROM, bridge::memory(src, src_md)}, {DNNL_ARG_TO, bridge::memory(dst, dst_md)}});
    bridge::stream().wait();
  });
}

Tensor permute_kernel(const Tensor& x, const std::vector<int>& order) {
  const Shape in_strides = row_major_strides(x.shape());
  Shape out_shape, src_strides;
  for (int axis : order) {
    out_shape.push_back(x.shape()[axis]);
    src_strides.push_back(in_strides[axis]);
  }
  Tensor out = Tensor::empty(out_shape, x.dtype());
  if (out.numel() == 0) return out;
  reorder(x, movable_desc(out_shape, src_strides, x.dtype()), out,
          movable_desc(out_shape, row_major_strides(out_shape), x.dtype()));
  return out;
}

// Descriptor of the window [start, start+length) along `axis` of a contiguous `shape`.
memory::desc window_desc(const Shape& shape, DType dtype, int axis, std::int64_t start, std::int64_t length) {
  const memory::desc whole = movable_desc(shape, row_major_strides(shape), dtype);
  memory::dims dims = bridge::to_dims(shape), offsets(shape.size(), 0);
  dims[axis] = length;
  offsets[axis] = start;
  if (dtype == DType::i64) {
    dims.push_back(2);
    offsets.push_back(0);
  }
  return whole.submemory_desc(dims, offsets);
}

class ReshapeOp : public Op, public SavesInputs {
 public:
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }
  explicit ReshapeOp(Shape shape) : shape_(std::move(shape)) {}
  std::string_view name() const override { return "reshape"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    Shape target = shape_;
    std::int64_t known = 1;
    int infer = -1;
    for (std::size_t i = 0; i < target.size(); ++i) {
      if (target[i] == -1) {
        if (infer >= 0) throw ShapeError("reshape", fmt::format("more than one -1 in {}", shape_str(shape_)));
        infer = static_cast<int>(i);
      } else {
        known *= target[i];
      }
    }
    if (infer >= 0 && known > 0) target[infer] = in[0].numel() / known;
    if (shape_numel(target) != in[0].numel())
      throw ShapeError("reshape", fmt::format("cannot reshape {} ({} elements) to {}", shape_str(in[0].shape()), in[0].numel(),
                                              shape_str(shape_)));
    return {in[0].view(target)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    return {gout[0].view(in[0].shape())};
  }

 private:
  Shape shape_;
};

class PermuteOp : public Op, public SavesInputs {
 public:
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }
  explicit PermuteOp(std::vector<int> order) : order_(std::move(order)) {}
  std::string_view name() const override { return "permute"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const int n = in[0].ndim();
    std::vector<bool> seen(n, false);
    if (static_cast<int>(order_.size()) != n)
      throw ShapeError("permute", fmt::format("order has {} axes for a tensor of {} axes", order_.size(), n));
    for (int& a : order_) {
      a = normalize_axis("permute", a, n);
      if (seen[a]) throw ShapeError("permute", fmt::format("axis {} appears twice in the order", a));
      seen[a] = true;
    }
    return {permute_kernel(in[0], order_)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    std::vector<int> inverse(order_.size());
    for (std::size_t i = 0; i < order_.size(); ++i) inverse[order_[i]] = static_cast<int>(i);
    return {permute_kernel(gout[0], inverse)};
  }

 private:
  std::vector<int> order_;
};

class SliceOp : public Op, public SavesInputs {
 public:
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }
  SliceOp(int axis, std::int64_t start, std::int64_t length) : axis_(axis), start_(start), length_(length) {}
  std::string_view name() const override { return "slice"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor& x = in[0];
    axis_ = normalize_axis("slice", axis_, x.ndim());
    if (start_ < 0 || length_ < 0 || start_ + length_ > x.shape()[axis_])
      throw ShapeError("slice", fmt::format("window [{}, {}) is outside axis {} of size {}", start_, start_ + length_, axis_,
                                            x.shape()[axis_]));
    Shape out_shape = x.shape();
    out_shape[axis_] = length_;
    Tensor out = Tensor::empty(out_shape, x.dtype());
    if (out.numel() == 0) return {out};
    reorder(x, window_desc(x.shape(), x.dtype(), axis_, start_, length_), out,
            movable_desc(out_shape, row_major_strides(out_shape), x.dtype()));
    return {out};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    Tensor dx = Tensor::zeros(in[0].shape());
    const Tensor g = as_f32(gout[0]);
    if (g.numel() == 0) return {dx};
    reorder(g, movable_desc(g.shape(), row_major_strides(g.shape()), DType::f32), dx,
            window_desc(dx.shape(), DType::f32, axis_, start_, length_));
    return {dx};
  }

 private:
  int axis_;
  std::int64_t start_, length_;
};

class ConcatOp : public Op, public SavesInputs {
 public:
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }
  explicit ConcatOp(int axis) : axis_(axis) {}
  std::string_view name() const override { return "concat"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    if (in.empty()) throw ShapeError("concat", "nothing to concatenate");
    const Tensor& first = in[0];
    axis_ = normalize_axis("concat", axis_, first.ndim());
    Shape out_shape = first.shape();
    out_shape[axis_] = 0;
    for (const Tensor& t : in) {
      Shape a = t.shape(), b = first.shape();
      if (t.dtype() != first.dtype() || a.size() != b.size())
        throw ShapeError("concat", fmt::format("cannot join {} {} with {} {}", dtype_name(first.dtype()), shape_str(b),
                                               dtype_name(t.dtype()), shape_str(a)));
      a[axis_] = b[axis_] = 0;
      if (a != b)
        throw ShapeError("concat", fmt::format("shapes {} and {} differ off axis {}", shape_str(first.shape()), shape_str(t.shape()), axis_));
      out_shape[axis_] += t.shape()[axis_];
    }
    Tensor out = Tensor::empty(out_shape, first.dtype());
    // Each part is a reorder into its window of the output (what oneDNN's concat
    // primitive does internally for plain layouts), which also handles i64.
    std::int64_t offset = 0;
    for (const Tensor& t : in) {
      const std::int64_t len = t.shape()[axis_];
      if (t.numel() > 0)
        reorder(t, movable_desc(t.shape(), row_major_strides(t.shape()), t.dtype()), out,
                window_desc(out_shape, t.dtype(), axis_, offset, len));
      offset += len;
    }
    return {out};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    std::vector<Tensor> grads(in.size());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::int64_t len = in[i].shape()[axis_];
      if (needs[i]) grads[i] = slice(gout[0], axis_, offset, len);
      offset += len;
    }
    return grads;
  }

 private:
  int axis_;
};

// out <- x, f32 <-> bf16 (tensor/bf16_rounding.h: vector loops, where oneDNN 2.6's
// reorder is its scalar reference kernel).
void convert_floats(const Tensor& x, Tensor& out) {
  if (x.dtype() == DType::bf16)
    widen_bf16(x.data<std::uint16_t>(), out.data<std::uint32_t>(), x.numel());
  else
    narrow_to_bf16(x.data<float>(), out.data<std::uint16_t>(), x.numel());
}

class ToDtypeOp : public Op, public SavesInputs {
 public:
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }
  explicit ToDtypeOp(DType dtype) : dtype_(dtype) {}
  std::string_view name() const override { return "to_dtype"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor& x = in[0];
    if (x.dtype() == dtype_) return {x};
    if (x.dtype() == DType::i64 || dtype_ == DType::i64) {
      return {dtype_ == DType::i64 ? Tensor::from_ints(x.to_ints(), x.shape(), DType::i64)
                                   : (is_floating(dtype_) ? Tensor::from_floats(x.to_floats(), x.shape(), dtype_)
                                                          : Tensor::from_ints(x.to_ints(), x.shape(), dtype_))};
    }
    Tensor out = Tensor::empty(x.shape(), dtype_);
    if (out.numel() == 0) return {out};
    if ((x.dtype() == DType::f32 && dtype_ == DType::bf16) || (x.dtype() == DType::bf16 && dtype_ == DType::f32)) {
      convert_floats(x, out);
      return {out};
    }
    const Shape flat{x.numel()};
    reorder(x, bridge::plain_desc(flat, x.dtype()), out, bridge::plain_desc(flat, dtype_));
    return {out};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    return {as_f32(gout[0])};
  }

 private:
  DType dtype_;
};

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) { return autograd::apply1(make_op<ReshapeOp>(std::move(shape)), {x}); }
Tensor permute(const Tensor& x, const std::vector<int>& order) { return autograd::apply1(make_op<PermuteOp>(order), {x}); }

Tensor transpose(const Tensor& x, int axis_a, int axis_b) {
  std::vector<int> order(x.ndim());
  for (int i = 0; i < x.ndim(); ++i) order[i] = i;
  std::swap(order[normalize_axis("transpose", axis_a, x.ndim())], order[normalize_axis("transpose", axis_b, x.ndim())]);
  return permute(x, order);
}

Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t length) {
  return autograd::apply1(make_op<SliceOp>(axis, start, length), {x});
}

Tensor concat(const std::vector<Tensor>& parts, int axis) { return autograd::apply1(make_op<ConcatOp>(axis), parts); }

Tensor to_dtype(const Tensor& x, DType dtype) { return autograd::apply1(make_op<ToDtypeOp>(dtype), {x}); }

}  // namespace graft::ops
