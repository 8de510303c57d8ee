#include "dora.h"

#include <cmath>
#include <vector>

#include "graft/autograd.h"
#include "graft/ops.h"

namespace graft::lora {
namespace {

// W + s·B·A in f32, [out, in], outside autograd.
Tensor adapted_weight(const Tensor& weight, const Tensor& A, const Tensor& B, float scaling) {
  NoGradGuard no_grad;
  const Tensor w = weight.dtype() == DType::f32 ? weight : ops::to_dtype(weight, DType::f32);
  return ops::add(w, ops::scale(ops::matmul(B, A), scaling));
}

}  // namespace

Tensor dora_row_norms(const Tensor& weight, const Tensor& A, const Tensor& B, float scaling) {
  const Tensor w = adapted_weight(weight, A, B, scaling);
  const std::int64_t out = w.dim(0), in = w.dim(1);
  const float* v = w.data<float>();
  std::vector<float> norms(static_cast<std::size_t>(out));
  for (std::int64_t o = 0; o < out; ++o) {
    double sum = 0;
    for (std::int64_t i = 0; i < in; ++i) sum += static_cast<double>(v[o * in + i]) * v[o * in + i];
    norms[o] = static_cast<float>(std::sqrt(sum));
  }
  return Tensor::from_floats(norms, {out});
}

Tensor dora_delta_weight(const Tensor& weight, const Tensor& A, const Tensor& B, const Tensor& magnitude, float scaling) {
  const Tensor adapted = adapted_weight(weight, A, B, scaling);
  const std::vector<float> norms = dora_row_norms(weight, A, B, scaling).to_floats(), m = magnitude.to_floats();
  const std::vector<float> w = (weight.dtype() == DType::f32 ? weight : ops::to_dtype(weight, DType::f32)).to_floats();
  const std::int64_t out = adapted.dim(0), in = adapted.dim(1);
  const float* a = adapted.data<float>();
  std::vector<float> delta(static_cast<std::size_t>(out * in));
  for (std::int64_t o = 0; o < out; ++o) {
    const double g = static_cast<double>(m[o]) / norms[o];
    for (std::int64_t i = 0; i < in; ++i) delta[o * in + i] = static_cast<float>(g * a[o * in + i] - w[o * in + i]);
  }
  return Tensor::from_floats(delta, {out, in});
}

Tensor DoraHook::linear(const Site&, const LinearCall& call, const Rows& rows) {
  // Dropout in training passes only, as the backbone's own (PEFT: module.training).
  const Tensor x = dropout_ > 0 ? ops::dropout(call.x, dropout_, training_mode()) : call.x;
  // Constants for autograd: 1/‖W + s·B·A‖ and the norm itself (detached, as PEFT).
  const Tensor norm = dora_row_norms(call.weight, A_, B_, scaling_);
  std::vector<float> inverse = norm.to_floats();
  for (float& v : inverse) v = 1.f / v;
  const Tensor inv = Tensor::from_floats(inverse, norm.shape());
  // m/‖·‖ − 1 as (m − ‖·‖)/‖·‖: exactly 0 while m is the norm, so a fresh adapter leaves
  // the layer's bits unchanged; its gradient in m is PEFT's, 1/‖·‖.
  const Tensor excess = ops::mul(ops::sub(m_, norm), inv);  // [out], broadcast over [B, T, out]
  const Tensor lora = ops::scale(ops::linear(ops::linear(x, A_), B_), scaling_);
  // (g − 1) ⊙ x'Wᵀ + g ⊙ lora = lora + (g − 1) ⊙ (x'Wᵀ + lora)
  const Tensor delta = ops::add(lora, ops::mul(excess, ops::add(ops::linear(x, call.weight), lora)));
  return ops::add(call.y, rows.gate(delta));
}

}  // namespace graft::lora
