// Layer norm: forward on oneDNN's layer_normalization primitive, backward an OpenMP
// kernel (oneDNN 2.6's is its non-JIT "simple" one below AVX512, ~10x slower here); it
// computes gamma and beta's gradients only when they train. RMS norm (which oneDNN 2.6
// lacks) is an OpenMP kernel both ways. Both normalise over the last axis in f32.
#include <algorithm>
#include <cmath>
#include <vector>

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
    const Tensor x = as_f32(in[0]), gamma = as_f32(in[1]), g = as_f32(gout[0]);
    const std::int64_t C = x.dim(-1), rows = x.numel() / C;
    const float *xp = x.data<float>(), *gp = g.data<float>(), *wp = gamma.data<float>();
    const float *mp = mean_.data<float>(), *vp = variance_.data<float>();
    std::vector<float> rstd(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) rstd[r] = 1.f / std::sqrt(vp[r] + eps_);
    // xhat = (x − mean)·rstd; dx = rstd·(g·gamma − mean(g·gamma) − xhat·mean(g·gamma·xhat))
    Tensor dx = Tensor::empty(x.shape());
    float* dxp = dx.data<float>();
#pragma omp parallel for schedule(static) if (rows > 16)
    for (std::int64_t r = 0; r < rows; ++r) {
      const float *xr = xp + r * C, *gr = gp + r * C;
      const float mean = mp[r], rs = rstd[r];
      float sum = 0, dot = 0;
#pragma omp simd reduction(+ : sum, dot)
      for (std::int64_t c = 0; c < C; ++c) {
        const float d = gr[c] * wp[c];
        sum += d;
        dot += d * (xr[c] - mean) * rs;
      }
      sum /= static_cast<float>(C);
      dot /= static_cast<float>(C);
      float* dr = dxp + r * C;
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) dr[c] = rs * (gr[c] * wp[c] - sum - (xr[c] - mean) * rs * dot);
    }
    Tensor dgamma, dbeta;
    if (needs[1] || (in[2].defined() && needs[2])) {  // column sums, 16 columns a task
      dgamma = Tensor::empty({C});
      dbeta = Tensor::empty({C});
      float *dg = dgamma.data<float>(), *db = dbeta.data<float>();
#pragma omp parallel for schedule(static)
      for (std::int64_t c0 = 0; c0 < C; c0 += 16) {
        const std::int64_t c1 = std::min(C, c0 + 16);
        float ag[16] = {}, ab[16] = {};
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t c = c0; c < c1; ++c) {
            ag[c - c0] += gp[r * C + c] * (xp[r * C + c] - mp[r]) * rstd[r];
            ab[c - c0] += gp[r * C + c];
          }
        }
        for (std::int64_t c = c0; c < c1; ++c) dg[c] = ag[c - c0], db[c] = ab[c - c0];
      }
    }
    std::vector<Tensor> grads(3);
    if (needs[0]) grads[0] = dx;
    if (needs[1]) grads[1] = dgamma;
    if (in[2].defined() && needs[2]) grads[2] = dbeta;
    return grads;
  }

 private:
  dnnl::layer_normalization_forward::primitive_desc forward_pd(prop_kind prop, const dnnl::memory::desc& md) const {
    const auto used = normalization_flags::use_scale | normalization_flags::use_shift;
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
