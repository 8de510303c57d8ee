// softmax(x + mask) over the last axis: forward on oneDNN's softmax primitive, backward
// a plain loop (see below). The additive mask (padding, causal) broadcasts onto x
// through the binary primitive first, unless it hides nothing.
#include <algorithm>

#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

namespace bridge = dnnl_bridge;
using dnnl::prop_kind;

dnnl::softmax_forward::primitive_desc forward_pd(prop_kind prop, const dnnl::memory::desc& md, int axis) {
  return dnnl::softmax_forward::primitive_desc(dnnl::softmax_forward::desc(prop, md, axis), primitive_attr(), bridge::engine());
}

bool hides_something(const Tensor& mask) {
  const Tensor m = as_f32(mask);
  const float* p = m.data<float>();
  return std::any_of(p, p + m.numel(), [](float v) { return v != 0.f; });
}

class SoftmaxOp : public Op, public SavesInputs {
 public:
  // Backward reads y only: it keeps its own handle on y's storage (a view, outside the
  // tape), so neither the scores nor the mask are held.
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }
  std::string_view name() const override { return "softmax"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("softmax", in[0]);
    Tensor x = as_f32(in[0]);
    if (x.ndim() == 0) x = x.view({1});
    // A mask that hides nothing (rows without padding) is not added: at MiniLM's shapes
    // the add is a pass over [B, H, T, S], the check one over [B, 1, 1, S].
    if (in[1].defined() && hides_something(in[1])) x = add(x, in[1]);
    const Shape full = in[1].defined() ? broadcast_shapes("softmax", x.shape(), in[1].shape()) : x.shape();
    if (full != in[0].shape() && in[0].ndim() > 0)
      throw ShapeError("softmax", fmt::format("mask {} broadcasts {} up to {}", shape_str(in[1].shape()),
                                              shape_str(in[0].shape()), shape_str(full)),
                       "the mask must broadcast onto the scores, not enlarge them");
    const prop_kind prop = autograd::recording() ? prop_kind::forward_training : prop_kind::forward_inference;
    const auto md = bridge::plain_desc(x.shape(), DType::f32);
    const int axis = x.ndim() - 1;
    const auto& cached = cached_primitive(
        fmt::format("softmax.{}|{}", prop == prop_kind::forward_training ? "fwd_training" : "fwd_inference", key_of(x)),
        [&] { return bridge::guarded("softmax", [&] { return make_cached<dnnl::softmax_forward>(forward_pd(prop, md, axis)); }); });
    Tensor y = Tensor::empty(in[0].shape());
    bridge::guarded("softmax", [&] {
      cached.execute({{DNNL_ARG_SRC, bridge::memory(x, md)}, {DNNL_ARG_DST, bridge::memory(y, md)}});
      bridge::stream().wait();
    });
    if (autograd::recording()) y_ = y.view(y.shape());
    return {y};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor& y = y_.defined() ? y_ : out[0];
    const Tensor g = as_f32(gout[0]);
    // dx = y ⊙ (g − Σ g⊙y) per row, as a plain loop: oneDNN 2.6's softmax backward is
    // its reference kernel below AVX512 (about 60 ms for MiniLM's attention at batch 32).
    const std::int64_t cols = y.ndim() ? y.dim(-1) : 1, rows = cols ? y.numel() / cols : 0;
    Tensor dx = Tensor::empty(y.shape());
    const float *Y = y.data<float>(), *G = g.data<float>();
    float* D = dx.data<float>();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
    for (std::int64_t r = 0; r < rows; ++r) {
      const float *yr = Y + r * cols, *gr = G + r * cols;
      float* dr = D + r * cols;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (std::int64_t c = 0; c < cols; ++c) dot += yr[c] * gr[c];
#pragma omp simd
      for (std::int64_t c = 0; c < cols; ++c) dr[c] = yr[c] * (gr[c] - dot);
    }
    std::vector<Tensor> grads(2);
    if (needs[0]) grads[0] = dx;
    if (needs[1]) grads[1] = sum_to_shape(dx, in[1].shape());
    return grads;
  }

 private:
  Tensor y_;  // the output, when recorded
};

}  // namespace

Tensor softmax(const Tensor& x, const Tensor& mask) { return autograd::apply1(make_op<SoftmaxOp>(), {x, mask}); }

}  // namespace graft::ops
