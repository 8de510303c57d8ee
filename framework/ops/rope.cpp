// Rotary position embedding (Su et al. 2021) as an OpenMP kernel. Pair j of a head
// rotates by position·theta^(−2j/d); backward rotates the gradient back.
#include <cmath>

#include "graft/ops.h"
#include "ops/op_util.h"

namespace graft::ops {
namespace {

class RopeOp : public Op {
 public:
  RopeOp(float theta, bool interleaved) : theta_(theta), interleaved_(interleaved) {}
  std::string_view name() const override { return "rope"; }

  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("rope", in[0]);
    require_defined("rope", in[1], "positions");
    const Tensor& x = in[0];
    if (x.ndim() != 4 || x.dim(-1) % 2 != 0 ||
        (in[1].shape() != Shape{x.dim(1)} && in[1].shape() != Shape{x.dim(0), x.dim(1)}))
      throw ShapeError("rope", fmt::format("expects x [batch, seq, heads, even head_dim] and positions [seq] or [batch, seq]; "
                                           "got {} and {}",
                                           shape_str(x.shape()), shape_str(in[1].shape())));
    const std::int64_t D = x.dim(3);
    const std::vector<std::int64_t> pos = in[1].to_ints();
    const std::int64_t T = static_cast<std::int64_t>(pos.size());  // seq, or batch·seq
    per_row_ = in[1].ndim() == 2;
    cos_.assign(T * D / 2, 0.f);
    sin_.assign(T * D / 2, 0.f);
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t j = 0; j < D / 2; ++j) {
        const double freq = std::pow(static_cast<double>(theta_), -2.0 * j / static_cast<double>(D));
        const double angle = static_cast<double>(pos[t]) * freq;
        cos_[t * D / 2 + j] = static_cast<float>(std::cos(angle));
        sin_[t * D / 2 + j] = static_cast<float>(std::sin(angle));
      }
    return {rotate(as_f32(x), 1.f)};
  }

  std::vector<Tensor> backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    return {rotate(as_f32(gout[0]), -1.f), Tensor()};
  }

 private:
  // Rotates every (a, b) pair by +angle (direction 1) or −angle (direction −1).
  Tensor rotate(const Tensor& x, float direction) const {
    const std::int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
    Tensor y = Tensor::empty(x.shape());
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
#pragma omp parallel for collapse(2) if (B * T > 8)
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t h = 0; h < H; ++h) {
          const std::int64_t base = ((b * T + t) * H + h) * D, row = per_row_ ? b * T + t : t;
          for (std::int64_t j = 0; j < half; ++j) {
            const float c = cos_[row * half + j], s = direction * sin_[row * half + j];
            const std::int64_t ia = interleaved_ ? base + 2 * j : base + j;
            const std::int64_t ib = interleaved_ ? ia + 1 : ia + half;
            const float a = xp[ia], bv = xp[ib];
            yp[ia] = a * c - bv * s;
            yp[ib] = a * s + bv * c;
          }
        }
    return y;
  }

  float theta_;
  bool interleaved_;
  bool per_row_ = false;
  std::vector<float> cos_, sin_;
};

}  // namespace

Tensor rope(const Tensor& x, const Tensor& positions, float theta, bool interleaved) {
  return autograd::apply1(make_op<RopeOp>(theta, interleaved), {x, positions});
}

}  // namespace graft::ops
