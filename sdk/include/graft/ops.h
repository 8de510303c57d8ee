// Differentiable operations. Each runs on oneDNN primitives where oneDNN has one
// (matmul, binary, eltwise, softmax, layer norm, reduction, concat, reorder) and on a
// plain OpenMP kernel where it has none (gather, RMS norm, RoPE, dropout, losses).
#pragma once
#include <cstdint>
#include <vector>

#include "graft/tensor.h"

namespace graft::ops {

// C = op(A) · op(B) over the last two axes; leading (batch) axes are equal on both,
// or one side is 2-D and is shared by every batch. bf16 operands multiply in bf16
// with f32 accumulation; the result is f32.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false,
              bool transpose_b = false);
// The same with the result in `result`, f32 or bf16 (rounded once from the f32
// accumulators, as torch.autocast's products are; the gradients then come in bf16 too).
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b, DType result);
// True where the CPU multiplies bf16 natively (AVX512-BF16 or AMX, as oneDNN sees it;
// ONEDNN_MAX_CPU_ISA lowers it): matmuls with a bf16 operand then run in bf16, else in
// f32 on widened operands (the same values as f32 weights that were rounded to bf16).
bool bf16_matmul_native();
// y = x Wᵀ + b with W [out, in]; x [..., in]. `bias` may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Elementwise with NumPy broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float factor);

enum class GeluApprox { erf, tanh };
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::erf);
Tensor relu(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor tanh(const Tensor& x);

// softmax(x + mask) over the last axis; `mask` (additive, e.g. 0 / -inf-ish) broadcasts
// onto x and may be undefined. Computed in f32; the result (and x's gradient) has x's
// dtype, so bf16 scores give bf16 probabilities.
Tensor softmax(const Tensor& x, const Tensor& mask = Tensor());

// Normalise over the last axis. gamma/beta (layer norm) and weight (RMS norm) have the
// size of that axis; beta may be undefined.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);

// Rows of `table` [vocab, dim] picked by integer `ids` (i32 or i64): [..., dim].
Tensor embedding(const Tensor& table, const Tensor& ids);

Tensor concat(const std::vector<Tensor>& parts, int axis);
Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t length);
Tensor permute(const Tensor& x, const std::vector<int>& order);
// Rows `rows` of x along axis 0, in that order: [rows.size(), ...]. A row may repeat.
Tensor gather_rows(const Tensor& x, const std::vector<std::int64_t>& rows);
// A copy of `base` with row rows[i] replaced by values[i] (values: [rows.size(), ...],
// base's dtype); rows must not repeat.
Tensor scatter_rows(const Tensor& base, const std::vector<std::int64_t>& rows, const Tensor& values);
Tensor transpose(const Tensor& x, int axis_a, int axis_b);
Tensor reshape(const Tensor& x, Shape shape);  // one axis may be -1
Tensor to_dtype(const Tensor& x, DType dtype);

Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);

// Inverted dropout: kept values are scaled by 1/(1-p). Identity when !training or p == 0.
// The mask is a pure function of (seed, call counter, element index): runs reproduce.
// The result has x's dtype (bf16 values are scaled in f32 and rounded once).
Tensor dropout(const Tensor& x, float p, bool training);
// matmul(dropout(a, p, training), b) (a [..., M, K], b [..., K, N], batched as matmul),
// with the same mask dropout would draw, but backward regenerates dropout(a) from a
// instead of keeping it: attention keeps its probabilities once.
Tensor dropout_matmul(const Tensor& a, const Tensor& b, float p, bool training);
void manual_seed(std::uint64_t seed);

// Mean cross-entropy of logits [N, C] against integer targets [N]; rows whose target
// equals `ignore_index` count neither in the sum nor in the mean.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     std::int64_t ignore_index = -100);
// Mean squared error over all elements.
Tensor mse(const Tensor& prediction, const Tensor& target);

// Rotary position embedding on x [batch, seq, heads, head_dim] at `positions` [seq], or
// [batch, seq] for per-row positions (i32/i64). `interleaved` rotates pairs (2i, 2i+1) as llama2.c and Meta's LLaMA do;
// otherwise halves (i, i + d/2) as Hugging Face's rotate_half does.
Tensor rope(const Tensor& x, const Tensor& positions, float theta = 10000.f,
            bool interleaved = false);

}  // namespace graft::ops
