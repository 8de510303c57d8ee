// Building blocks shared by the backbones: a linear projection at a site (frozen
// weight, then the site's hooks), masks, and scaled dot-product attention with
// grouped-query heads.
#pragma once
#include <vector>

#include "graft/site.h"
#include "graft/tensor.h"

namespace graft::backbones {

// y = x Wᵀ + b, then whatever the hooks do at `site` (they see x, W, b and y).
Tensor site_linear(const Site& site, ForwardHooks* hooks, const Tensor& x, const Tensor& weight,
                   const Tensor& bias = Tensor());
// A block's output h before the residual add, transformed by the hooks at `site`;
// `input` is what entered the block (the residual h is added to).
Tensor site_sublayer(const Site& site, ForwardHooks* hooks, const Tensor& input, const Tensor& h);
// layer_norm(x) (a bias given) or rms_norm(x) (none) with the frozen weights, then the
// hooks at `site`.
Tensor site_norm(const Site& site, ForwardHooks* hooks, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);

// Additive attention mask [B, 1, T, S] (0 keep, large negative hide) from a key mask
// [B, S] (1 token, 0 padding); `causal` also hides keys after each query, where query
// t sits at key position t + (S − T) (earlier keys come from a cache or a prefix).
Tensor additive_mask(const Tensor& key_mask, std::int64_t queries, bool causal);

// softmax(q·kᵀ/√d + mask)·v for q [B, H, T, d], k and v [B, KV, S, d] with H a
// multiple of KV (query head h reads key/value head h / (H/KV)); returns [B, T, H·d] f32.
// `products` bf16 (a model with bf16 weights), on a CPU that multiplies bf16 natively,
// while gradients are recorded (training): q, k and v are rounded to bf16 and the scores
// and probabilities are bf16, as under torch.autocast; softmax's arithmetic and the
// context stay f32. Otherwise attention is f32.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, float dropout_p = 0.f,
                 bool training = false, DType products = DType::f32);

// A key mask of ones [B, T] (i64) for inputs without padding.
Tensor ones_mask(std::int64_t batch, std::int64_t length);

}  // namespace graft::backbones
