// Layer norm on oneDNN's layer_normalization primitives; RMS norm (which oneDNN 2.6
// lacks) as an OpenMP kernel. Both normalise over the last axis in f32.
// When gamma/beta are frozen, layer norm's backward runs prop_kind::backward_data,
// which builds no scale/shift-gradient computation.
#include <cmath>

#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

namespace bridge = dnnl_bridge;
using dnnl::normalization_flags;
using dnnl::prop_kind;

void check_affine(const char* op, const Tensor& x, const Tensor& p, const char* what) {
  if (p.defined() && p.shape() != Shape{x.dim(-1)})
    throw ShapeError(op, fmt::format("{} has shape {}; expected [{}] to match input {}", what, shape_str(p.shape()), x.dim(-1),
                                     shape_str(x.shape())));
}

class LayerNormOp : public Op {
 public:
  explicit LayerNormOp(float eps) : eps_(eps) {}
  std::string_view name() const override { return "layer_norm"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("layer_norm", in[0]);
    require_defined("layer_norm", in[1], "gamma");
    check_affine("layer_norm", in[0], in[1], "gamma");
    check_affine("layer_norm", in[0], in[2], "beta");
    const Tensor x = as_f32(in[0]);
    const std::int64_t C = x.dim(-1), rows = x.numel() / C;
    const auto md = bridge::plain_desc({rows, C}, DType::f32);
    const bool training = autograd::recording();
    const prop_kind prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
    const auto& cached = cached_primitive(
        fmt::format("layer_norm.{}|{}|{}|{}", training ? "fwd_training" : "fwd_inference", rows, C, eps_),
        [&] { return bridge::guarded("layer_norm", [&] { return make_cached<dnnl::layer_normalization_forward>(forward_pd(prop, md)); }); });
    Tensor y = Tensor::empty(x.shape());
    const Tensor gamma = as_f32(in[1]);
    const Tensor beta = in[2].defined() ? as_f32(in[2]) : Tensor::zeros({C});
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, bridge::memory(x, md)}, {DNNL_ARG_DST, bridge::memory(y, md)},
                                               {DNNL_ARG_SCALE, bridge::memory(gamma)}, {DNNL_ARG_SHIFT, bridge::memory(beta)}};
    if (training) {
      mean_ = Tensor::empty({rows});
      variance_ = Tensor::empty({rows});
      args.emplace(DNNL_ARG_MEAN, bridge::memory(mean_));
      args.emplace(DNNL_ARG_VARIANCE, bridge::memory(variance_));
    }
    bridge::guarded("layer_norm", [&] {
      cached.execute(std::move(args));
      bridge::stream().wait();
    });
    return {y};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor x = as_f32(in[0]), gamma = as_f32(in[1]);
    const std::int64_t C = x.dim(-1), rows = x.numel() / C;
    const auto md = bridge::plain_desc({rows, C}, DType::f32);
    const bool affine = needs[1] || (in[2].defined() && needs[2]);
    // oneDNN 2.6 offers backward_data only without scale/shift, so the frozen-affine
    // path folds gamma into the incoming gradient: d(xhat) = g·gamma.
    const Tensor g = affine ? as_f32(gout[0]) : mul(as_f32(gout[0]), gamma);
    const normalization_flags used = affine ? flags() : normalization_flags::none;
    const prop_kind prop = affine ? prop_kind::backward : prop_kind::backward_data;
    const auto& cached = cached_primitive(
        fmt::format("layer_norm.{}|{}|{}|{}", affine ? "bwd" : "bwd_data", rows, C, eps_), [&] {
          return bridge::guarded("layer_norm", [&] {
            auto hint = forward_pd(prop_kind::forward_training, md, used);
            return make_cached<dnnl::layer_normalization_backward>(dnnl::layer_normalization_backward::primitive_desc(
                dnnl::layer_normalization_backward::desc(prop, md, md, eps_, used), primitive_attr(), bridge::engine(), hint));
          });
        });
    Tensor dx = Tensor::empty(x.shape());
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, bridge::memory(x, md)}, {DNNL_ARG_DIFF_DST, bridge::memory(g, md)},
                                               {DNNL_ARG_MEAN, bridge::memory(mean_)}, {DNNL_ARG_VARIANCE, bridge::memory(variance_)},
                                               {DNNL_ARG_DIFF_SRC, bridge::memory(dx, md)}};
    Tensor dgamma, dbeta, beta;
    if (affine) {
      dgamma = Tensor::empty({C});
      dbeta = Tensor::empty({C});
      beta = in[2].defined() ? as_f32(in[2]) : Tensor::zeros({C});
      args.emplace(DNNL_ARG_SCALE, bridge::memory(gamma));
      args.emplace(DNNL_ARG_SHIFT, bridge::memory(beta));  // unused by the math, required by oneDNN 2.6
      args.emplace(DNNL_ARG_DIFF_SCALE, bridge::memory(dgamma));
      args.emplace(DNNL_ARG_DIFF_SHIFT, bridge::memory(dbeta));
    }
    bridge::guarded("layer_norm", [&] {
      cached.execute(std::move(args));
      bridge::stream().wait();
    });
    std::vector<Tensor> grads(3);
    if (needs[0]) grads[0] = dx;
    if (needs[1]) grads[1] = dgamma;
    if (in[2].defined() && needs[2]) grads[2] = dbeta;
    return grads;
  }

 private:
  static normalization_flags flags() { return normalization_flags::use_scale | normalization_flags::use_shift; }
  dnnl::layer_normalization_forward::primitive_desc forward_pd(prop_kind prop, const dnnl::memory::desc& md,
                                                               normalization_flags used = flags()) const {
    return dnnl::layer_normalization_forward::primitive_desc(
        dnnl::layer_normalization_forward::desc(prop, md, eps_, used), primitive_attr(), bridge::engine());
  }

  float eps_;
  Tensor mean_, variance_;
};

class RmsNormOp : public Op {
 public:
  explicit RmsNormOp(float eps) : eps_(eps) {}
  std::string_view name() const override { return "rms_norm"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("rms_norm", in[0]);
    require_defined("rms_norm", in[1], "weight");
    check_affine("rms_norm", in[0], in[1], "weight");
    const Tensor x = as_f32(in[0]), w = as_f32(in[1]);
    const std::int64_t C = x.dim(-1), rows = x.numel() / C;
    Tensor y = Tensor::empty(x.shape());
    inv_rms_ = Tensor::empty({rows});
    const float *xp = x.data<float>(), *wp = w.data<float>();
    float *yp = y.data<float>(), *rp = inv_rms_.data<float>();
#pragma omp parallel for if (rows > 16)
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * C;
      double ss = 0;
      for (std::int64_t c = 0; c < C; ++c) ss += static_cast<double>(xr[c]) * xr[c];
      const float inv = 1.f / std::sqrt(static_cast<float>(ss / C) + eps_);
      rp[r] = inv;
      for (std::int64_t c = 0; c < C; ++c) yp[r * C + c] = xr[c] * inv * wp[c];
    }
    return {y};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor x = as_f32(in[0]), w = as_f32(in[1]), g = as_f32(gout[0]);
    const std::int64_t C = x.dim(-1), rows = x.numel() / C;
    const float *xp = x.data<float>(), *wp = w.data<float>(), *gp = g.data<float>(), *rp = inv_rms_.data<float>();
    std::vector<Tensor> grads(2);
    if (needs[0]) {
      grads[0] = Tensor::empty(x.shape());
      float* dx = grads[0].data<float>();
      // n = x·r; dx = r·(g·w − n·mean(g·w·n))
#pragma omp parallel for if (rows > 16)
      for (std::int64_t r = 0; r < rows; ++r) {
        const float *xr = xp + r * C, *gr = gp + r * C;
        double dot = 0;
        for (std::int64_t c = 0; c < C; ++c) dot += static_cast<double>(gr[c]) * wp[c] * xr[c] * rp[r];
        const float m = static_cast<float>(dot / C);
        for (std::int64_t c = 0; c < C; ++c) dx[r * C + c] = rp[r] * (gr[c] * wp[c] - xr[c] * rp[r] * m);
      }
    }
    if (needs[1]) {
      grads[1] = Tensor::zeros({C});
      float* dw = grads[1].data<float>();
#pragma omp parallel for if (C > 64)
      for (std::int64_t c = 0; c < C; ++c) {
        double acc = 0;
        for (std::int64_t r = 0; r < rows; ++r) acc += static_cast<double>(gp[r * C + c]) * xp[r * C + c] * rp[r];
        dw[c] = static_cast<float>(acc);
      }
    }
    return grads;
  }

 private:
  float eps_;
  Tensor inv_rms_;
};

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  return autograd::apply1(make_op<LayerNormOp>(eps), {x, gamma, beta});
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  return autograd::apply1(make_op<RmsNormOp>(eps), {x, weight});
}

}  // namespace graft::ops
