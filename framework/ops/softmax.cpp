// softmax(x + mask) over the last axis: forward on oneDNN's softmax primitive, backward
// a plain loop (see below); f32 arithmetic, the result in x's dtype. The additive mask (padding, causal) broadcasts onto x
// through the binary primitive first, unless it hides nothing.
#include <algorithm>

#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/bf16_rounding.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

namespace bridge = dnnl_bridge;
using dnnl::prop_kind;

// v2: the source (f32 after a mask add) and the result (x's dtype) may differ.
dnnl::softmax_v2_forward::primitive_desc forward_pd(prop_kind prop, const dnnl::memory::desc& src, const dnnl::memory::desc& dst,
                                                    int axis) {
  return dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(prop, dnnl::algorithm::softmax_accurate, src, dst, axis), primitive_attr(), bridge::engine());
}

// Loads and stores of f32 or bf16 values, for the one backward loop over both.
inline float load(float v) { return v; }
inline float load(std::uint16_t v) { return bf16_bits_to_f32(v); }
inline void store(float& out, float v) { out = v; }
inline void store(std::uint16_t& out, float v) { out = round_to_bf16(v); }

// dx = y ⊙ (g − Σ g⊙y) per row, in f32 arithmetic; Y and dx share a dtype (x's), g may
// be the other one.
template <class Y, class G>
void softmax_backward_rows(const Y* y, const G* g, Y* dx, std::int64_t rows, std::int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
  for (std::int64_t r = 0; r < rows; ++r) {
    const Y* yr = y + r * cols;
    const G* gr = g + r * cols;
    Y* dr = dx + r * cols;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (std::int64_t c = 0; c < cols; ++c) dot += load(yr[c]) * load(gr[c]);
#pragma omp simd
    for (std::int64_t c = 0; c < cols; ++c) store(dr[c], load(yr[c]) * (load(gr[c]) - dot));
  }
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
    const DType result = in[0].dtype();
    // bf16 in and out on oneDNN's kernel where the CPU has bf16 (oneDNN 2.6 builds none
    // on AVX2). That kernel keeps exp(x − max) in the bf16 result before scaling it, so a
    // probability is rounded twice: within 1.5 bf16 spacings of f32's, not 0.5.
    // Elsewhere f32, rounded after.
    const bool direct = result == DType::f32 || bf16_matmul_native();
    Tensor x = direct ? in[0] : as_f32(in[0]);
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
    const DType written = direct ? result : DType::f32;
    const auto src_md = bridge::plain_desc(x.shape(), x.dtype()), dst_md = bridge::plain_desc(x.shape(), written);
    const int axis = x.ndim() - 1;
    const auto& cached = cached_primitive(
        fmt::format("softmax.{}|{}|{}", prop == prop_kind::forward_training ? "fwd_training" : "fwd_inference", key_of(x),
                    dtype_name(written)),
        [&] {
          return bridge::guarded("softmax", [&] { return make_cached<dnnl::softmax_v2_forward>(forward_pd(prop, src_md, dst_md, axis)); });
        });
    Tensor y = Tensor::empty(in[0].shape(), written);
    bridge::guarded("softmax", [&] {
      cached.execute({{DNNL_ARG_SRC, bridge::memory(x, src_md)}, {DNNL_ARG_DST, bridge::memory(y, dst_md)}});
      bridge::stream().wait();
    });
    if (written != result) y = to_dtype(y, result);
    if (autograd::recording()) y_ = y.view(y.shape());
    return {y};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor& y = y_.defined() ? y_ : out[0];
    // dx = y ⊙ (g − Σ g⊙y) per row, as a plain loop: oneDNN 2.6's softmax backward is
    // its reference kernel below AVX512 (about 60 ms for MiniLM's attention at batch 32).
    const std::int64_t cols = y.ndim() ? y.dim(-1) : 1, rows = cols ? y.numel() / cols : 0;
    Tensor dx = Tensor::empty(y.shape(), y.dtype());
    const Tensor& g = gout[0];
    if (y.dtype() == DType::f32)
      softmax_backward_rows(y.data<float>(), as_f32(g).data<float>(), dx.data<float>(), rows, cols);
    else if (g.dtype() == DType::bf16)
      softmax_backward_rows(y.data<std::uint16_t>(), g.data<std::uint16_t>(), dx.data<std::uint16_t>(), rows, cols);
    else
      softmax_backward_rows(y.data<std::uint16_t>(), as_f32(g).data<float>(), dx.data<std::uint16_t>(), rows, cols);
    std::vector<Tensor> grads(2);
    if (needs[0]) grads[0] = dx;
    if (needs[1]) grads[1] = sum_to_shape(as_f32(dx), in[1].shape());
    return grads;
  }

 private:
  Tensor y_;  // the output, when recorded
};

}  // namespace

Tensor softmax(const Tensor& x, const Tensor& mask) { return autograd::apply1(make_op<SoftmaxOp>(), {x, mask}); }

}  // namespace graft::ops
