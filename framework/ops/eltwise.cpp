// Unary elementwise ops on oneDNN's eltwise primitives, forward and backward.
// forward_inference runs when nothing is recorded (frozen layers, eval).
#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;
namespace bridge = dnnl_bridge;

struct EltwiseSpec {
  const char* name;
  algorithm alg;
  float alpha = 0.f, beta = 0.f;
};

dnnl::eltwise_forward::primitive_desc forward_pd(const EltwiseSpec& s, prop_kind prop, const dnnl::memory::desc& md) {
  return dnnl::eltwise_forward::primitive_desc(dnnl::eltwise_forward::desc(prop, s.alg, md, s.alpha, s.beta),
                                               primitive_attr(), bridge::engine());
}

std::string spec_key(const char* role, const EltwiseSpec& s, const Tensor& x) {
  return fmt::format("{}|{}|{}|{}|{}", role, s.name, s.alpha, s.beta, key_of(x));
}

class EltwiseOp : public Op, public SavesInputs {
 public:
  explicit EltwiseOp(EltwiseSpec spec) : spec_(spec) {}
  // A linear map (scale) has the gradient alpha·g: it reads no input.
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return spec_.alg != algorithm::eltwise_linear; }
  std::string_view name() const override { return spec_.name; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating(spec_.name, in[0]);
    const Tensor x = as_f32(in[0]);
    const prop_kind prop = autograd::recording() ? prop_kind::forward_training : prop_kind::forward_inference;
    const auto md = bridge::plain_desc(x.shape(), DType::f32);
    const auto& cached = cached_primitive(
        spec_key(prop == prop_kind::forward_training ? "eltwise.fwd_training" : "eltwise.fwd_inference", spec_, x),
        [&] { return bridge::guarded(spec_.name, [&] { return make_cached<dnnl::eltwise_forward>(forward_pd(spec_, prop, md)); }); });
    Tensor out = Tensor::empty(x.shape());
    bridge::guarded(spec_.name, [&] {
      cached.execute({{DNNL_ARG_SRC, bridge::memory(x)}, {DNNL_ARG_DST, bridge::memory(out)}});
      bridge::stream().wait();
    });
    return {out};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&,
                               const std::vector<Tensor>& gout, const std::vector<bool>&) override {
    if (spec_.alg == algorithm::eltwise_linear) return {scale(as_f32(gout[0]), spec_.alpha)};
    const Tensor x = as_f32(in[0]);
    const Tensor g = as_f32(gout[0]);
    const auto md = bridge::plain_desc(x.shape(), DType::f32);
    const auto& cached = cached_primitive(spec_key("eltwise.bwd", spec_, x), [&] {
      return bridge::guarded(spec_.name, [&] {
        auto hint = forward_pd(spec_, prop_kind::forward_training, md);
        return make_cached<dnnl::eltwise_backward>(dnnl::eltwise_backward::primitive_desc(
            dnnl::eltwise_backward::desc(spec_.alg, md, md, spec_.alpha, spec_.beta), primitive_attr(), bridge::engine(), hint));
      });
    });
    Tensor dx = Tensor::empty(x.shape());
    bridge::guarded(spec_.name, [&] {
      cached.execute({{DNNL_ARG_SRC, bridge::memory(x)},
                                                  {DNNL_ARG_DIFF_DST, bridge::memory(g)},
                                                  {DNNL_ARG_DIFF_SRC, bridge::memory(dx)}});
      bridge::stream().wait();
    });
    return {dx};
  }

 private:
  EltwiseSpec spec_;
};

Tensor eltwise(const Tensor& x, EltwiseSpec spec) { return autograd::apply1(make_op<EltwiseOp>(spec), {x}); }

}  // namespace

Tensor gelu(const Tensor& x, GeluApprox approx) {
  return approx == GeluApprox::erf ? eltwise(x, {"gelu_erf", algorithm::eltwise_gelu_erf})
                                   : eltwise(x, {"gelu_tanh", algorithm::eltwise_gelu_tanh});
}
Tensor relu(const Tensor& x) { return eltwise(x, {"relu", algorithm::eltwise_relu}); }
Tensor silu(const Tensor& x) { return eltwise(x, {"silu", algorithm::eltwise_swish, 1.f}); }
Tensor tanh(const Tensor& x) { return eltwise(x, {"tanh", algorithm::eltwise_tanh}); }
Tensor scale(const Tensor& x, float factor) { return eltwise(x, {"scale", algorithm::eltwise_linear, factor, 0.f}); }

}  // namespace graft::ops
