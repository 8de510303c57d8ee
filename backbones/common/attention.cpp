#include "common/attention.h"

#include <fmt/format.h>

#include <cmath>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"

namespace graft::backbones {

Tensor site_linear(const Site& site, ForwardHooks* hooks, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor y = ops::linear(x, weight, bias);
  return hooks ? hooks->linear(site, {x, weight, bias, y}, Rows{}) : y;
}

Tensor site_sublayer(const Site& site, ForwardHooks* hooks, const Tensor& input, const Tensor& h) {
  return hooks ? hooks->sublayer_output(site, {input, h}, Rows{}) : h;
}

Tensor site_norm(const Site& site, ForwardHooks* hooks, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  Tensor y = bias.defined() ? ops::layer_norm(x, weight, bias, eps) : ops::rms_norm(x, weight, eps);
  return hooks ? hooks->norm(site, {x, weight, bias, eps, y}, Rows{}) : y;
}

Tensor ones_mask(std::int64_t batch, std::int64_t length) {
  return Tensor::from_ints(std::vector<std::int64_t>(static_cast<std::size_t>(batch * length), 1), {batch, length});
}

Tensor additive_mask(const Tensor& key_mask, std::int64_t queries, bool causal) {
  const std::int64_t B = key_mask.dim(0), S = key_mask.dim(1), offset = S - queries;
  const std::vector<std::int64_t> keep = key_mask.to_ints();
  Tensor mask = Tensor::empty({B, 1, causal ? queries : 1, S});
  float* m = mask.data<float>();
  const std::int64_t rows = causal ? queries : 1;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < rows; ++t)
      for (std::int64_t s = 0; s < S; ++s) {
        const bool visible = keep[b * S + s] != 0 && (!causal || s <= t + offset);
        m[(b * rows + t) * S + s] = visible ? 0.f : kMaskedScore;
      }
  return mask;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, float dropout_p, bool training,
                 DType products) {
  const std::int64_t B = q.dim(0), H = q.dim(1), T = q.dim(2), D = q.dim(3);
  const std::int64_t KV = k.dim(1), S = k.dim(2);
  if (H % KV != 0)
    throw ShapeError("attention", fmt::format("{} query heads do not share {} key/value heads evenly", H, KV));
  const std::int64_t group = H / KV;
  // Query heads of one group are consecutive: view them as one longer sequence so each
  // group multiplies its own key/value head without copying k or v.
  // The 1/√d scale goes on q, not on the scores: S/D times fewer elements to scale.
  // While attention is on the tape, a bf16 model keeps its [B, H, T, S] scores and
  // probabilities, a layer's largest saved tensors, in bf16: half the bytes written, kept
  // and read, and only q, k and v converted. Without a tape they are not kept, and f32
  // is faster at these shapes (no conversions, one-pass softmax): docs/performance.md.
  const bool taped = autograd::grad_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  const bool bf16 = products == DType::bf16 && ops::bf16_matmul_native() && taped;
  const DType scores_dtype = bf16 ? DType::bf16 : DType::f32;
  auto operand = [&](const Tensor& t) { return scores_dtype == DType::bf16 ? ops::to_dtype(t, DType::bf16) : t; };
  Tensor qg = ops::reshape(operand(ops::scale(q, 1.f / std::sqrt(static_cast<float>(D)))), {B, KV, group * T, D});
  Tensor scores = ops::matmul(qg, operand(k), false, true, scores_dtype);
  Tensor probs = ops::softmax(ops::reshape(scores, {B, H, T, S}), mask);
  // Dropout on the probabilities, fused into the product so they are kept once.
  Tensor context = ops::dropout_matmul(ops::reshape(probs, {B, KV, group * T, S}), operand(v), dropout_p, training);  // [B, KV, group·T, D]
  return ops::reshape(ops::permute(ops::reshape(context, {B, H, T, D}), {0, 2, 1, 3}), {B, T, H * D});
}

}  // namespace graft::backbones
