// Losses as OpenMP kernels (oneDNN has no loss primitives): cross-entropy with an
// ignore index, computed through a stable log-sum-exp, and mean squared error.
#include <cmath>

#include "graft/ops.h"
#include "ops/op_util.h"

namespace graft::ops {
namespace {

class CrossEntropyOp : public Op {
 public:
  explicit CrossEntropyOp(std::int64_t ignore_index) : ignore_(ignore_index) {}
  std::string_view name() const override { return "cross_entropy"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("cross_entropy", in[0]);
    require_defined("cross_entropy", in[1], "targets");
    const Tensor logits = as_f32(in[0]);
    if (logits.ndim() != 2 || in[1].shape() != Shape{logits.dim(0)})
      throw ShapeError("cross_entropy", fmt::format("logits {} and targets {} do not fit (expects [N, C] and [N])",
                                                    shape_str(logits.shape()), shape_str(in[1].shape())));
    if (is_floating(in[1].dtype())) throw ShapeError("cross_entropy", "targets must be integer class ids (i32 or i64)");
    const std::int64_t N = logits.dim(0), C = logits.dim(1);
    targets_ = in[1].to_ints();
    for (std::int64_t i = 0; i < N; ++i)
      if (targets_[i] != ignore_ && (targets_[i] < 0 || targets_[i] >= C))
        throw ShapeError("cross_entropy", fmt::format("target {} of row {} is outside [0, {})", targets_[i], i, C),
                         "labels must index the classes of the head, or equal the ignore index");
    probs_ = Tensor::empty({N, C});
    const float* lp = logits.data<float>();
    float* pp = probs_.data<float>();
    double total = 0;
    count_ = 0;
#pragma omp parallel for reduction(+ : total, count_) if (N > 16)
    for (std::int64_t i = 0; i < N; ++i) {
      const float* row = lp + i * C;
      float mx = row[0];
      for (std::int64_t c = 1; c < C; ++c) mx = std::max(mx, row[c]);
      double z = 0;
      for (std::int64_t c = 0; c < C; ++c) z += std::exp(static_cast<double>(row[c] - mx));
      for (std::int64_t c = 0; c < C; ++c) pp[i * C + c] = static_cast<float>(std::exp(static_cast<double>(row[c] - mx)) / z);
      if (targets_[i] == ignore_) continue;
      total += std::log(z) + mx - row[targets_[i]];
      ++count_;
    }
    // No counted row: the loss is 0 with zero gradient (PyTorch returns NaN here).
    return {Tensor::full({}, count_ ? static_cast<float>(total / count_) : 0.f)};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    const std::int64_t N = probs_.dim(0), C = probs_.dim(1);
    Tensor d = Tensor::empty({N, C});
    const float scale = count_ ? gout[0].item() / static_cast<float>(count_) : 0.f;
    const float* pp = probs_.data<float>();
    float* dp = d.data<float>();
#pragma omp parallel for if (N > 16)
    for (std::int64_t i = 0; i < N; ++i) {
      const bool ignored = targets_[i] == ignore_;
      for (std::int64_t c = 0; c < C; ++c) dp[i * C + c] = ignored ? 0.f : pp[i * C + c] * scale;
      if (!ignored) dp[i * C + targets_[i]] -= scale;
    }
    return {d, Tensor()};
  }

 private:
  std::int64_t ignore_;
  std::vector<std::int64_t> targets_;
  Tensor probs_;
  std::int64_t count_ = 0;
};

class MseOp : public Op {
 public:
  std::string_view name() const override { return "mse"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("mse", in[0]);
    require_floating("mse", in[1]);
    if (in[0].shape() != in[1].shape())
      throw ShapeError("mse", fmt::format("prediction {} and target {} differ in shape", shape_str(in[0].shape()), shape_str(in[1].shape())));
    const Tensor p = as_f32(in[0]), t = as_f32(in[1]);
    const std::int64_t n = p.numel();
    double total = 0;
    const float *pp = p.data<float>(), *tp = t.data<float>();
#pragma omp parallel for reduction(+ : total) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) total += static_cast<double>(pp[i] - tp[i]) * (pp[i] - tp[i]);
    return {Tensor::full({}, n ? static_cast<float>(total / n) : 0.f)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor p = as_f32(in[0]), t = as_f32(in[1]);
    const std::int64_t n = p.numel();
    const float k = n ? 2.f * gout[0].item() / static_cast<float>(n) : 0.f;
    Tensor d = Tensor::empty(p.shape());
    const float *pp = p.data<float>(), *tp = t.data<float>();
    float* dp = d.data<float>();
    for (std::int64_t i = 0; i < n; ++i) dp[i] = k * (pp[i] - tp[i]);
    std::vector<Tensor> grads(2);
    if (needs[0]) grads[0] = d;
    if (needs[1]) grads[1] = scale(d, -1.f);
    return grads;
  }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, std::int64_t ignore_index) {
  return autograd::apply1(make_op<CrossEntropyOp>(ignore_index), {logits, targets});
}

Tensor mse(const Tensor& prediction, const Tensor& target) { return autograd::apply1(make_op<MseOp>(), {prediction, target}); }

}  // namespace graft::ops
