// matmul and linear on oneDNN's matmul primitive. oneDNN 2.6 has no matmul backward:
// each gradient is another matmul, with transposes expressed as strides (no copies).
// linear's three passes are cached under their own roles (linear.fwd, .bwd_data,
// .bwd_weights), so a frozen weight provably never builds a weight-gradient primitive.
#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

namespace bridge = dnnl_bridge;
using dnnl::memory;

std::int64_t batch_of(const Shape& s) {
  std::int64_t b = 1;
  for (std::size_t i = 0; i + 2 < s.size(); ++i) b *= s[i];
  return b;
}

Shape batch_shape(const Shape& s) { return Shape(s.begin(), s.end() - 2); }

// 3-D descriptor of op(X) for X stored row-major as [batch, rows, cols].
memory::desc operand_desc(std::int64_t batch, std::int64_t rows, std::int64_t cols, bool transposed, DType dtype) {
  if (!transposed) return bridge::strided_desc({batch, rows, cols}, dtype, {rows * cols, cols, 1});
  return bridge::strided_desc({batch, cols, rows}, dtype, {rows * cols, 1, cols});
}

}  // namespace

// bf16 operands multiply in bf16 only where the CPU has bf16 dot products (AVX512-BF16,
// AMX). Elsewhere oneDNN 2.6 either builds no bf16 matmul (AVX2) or emulates it with
// conversions (AVX512 without BF16), so there they are widened to f32: bf16 weights keep
// their memory saving and run at the f32 rate.
bool bf16_matmul_native() {
  static const bool native = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
    return (isa & bf16) == bf16;  // the ISA values nest as bit sets; AMX includes bf16
  }();
  return native;
}

namespace {

// bf16 when either operand is bf16 and the CPU multiplies bf16 natively, else f32.
DType product_dtype(const Tensor& a, const Tensor& b) {
  const bool wants_bf16 = a.dtype() == DType::bf16 || b.dtype() == DType::bf16;
  return wants_bf16 && bf16_matmul_native() ? DType::bf16 : DType::f32;
}

// Runs a cached product primitive (matmul or inner product) on src · weights (+ bias) into dst.
void execute_product(const char* role, const CachedPrimitive& product, const Tensor& src, const memory::desc& src_md,
                     const Tensor& weights, const memory::desc& weights_md, const Tensor& dst, const memory::desc& dst_md,
                     const Tensor& bias, const memory::desc& bias_md) {
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, bridge::memory(src, src_md)},
                                       {DNNL_ARG_WEIGHTS, bridge::memory(weights, weights_md)},
                                       {DNNL_ARG_DST, bridge::memory(dst, dst_md)}};
  Tensor bias32;
  if (bias.defined()) {
    bias32 = as_f32(bias);
    args.emplace(DNNL_ARG_BIAS, bridge::memory(bias32, bias_md));
  }
  bridge::guarded(role, [&] {
    product.execute(std::move(args));
    bridge::stream().wait();
  });
}

// C = op(A)·op(B) (+ bias [N]) for A [..., *, *], B [..., *, *]; batch axes equal or
// one side 2-D. Runs bf16 when either operand is bf16 and the CPU multiplies bf16
// natively, else f32. C is f32, or bf16 when asked (rounded once from f32 accumulators).
Tensor mm(const char* role, Tensor a, Tensor b, bool ta, bool tb, Tensor bias = Tensor(), DType result = DType::f32) {
  if (a.ndim() < 2 || b.ndim() < 2)
    throw ShapeError(role, fmt::format("matmul needs at least 2-D operands, got {} and {}", shape_str(a.shape()), shape_str(b.shape())));
  const std::int64_t M = ta ? a.dim(-1) : a.dim(-2), Ka = ta ? a.dim(-2) : a.dim(-1);
  const std::int64_t Kb = tb ? b.dim(-1) : b.dim(-2), N = tb ? b.dim(-2) : b.dim(-1);
  if (Ka != Kb)
    throw ShapeError(role, fmt::format("inner dimensions differ: {}{} · {}{} ({} vs {})", shape_str(a.shape()), ta ? "ᵀ" : "",
                                       shape_str(b.shape()), tb ? "ᵀ" : "", Ka, Kb));
  std::int64_t batch_a = batch_of(a.shape()), batch_b = batch_of(b.shape());
  Shape out_batch = a.ndim() > 2 ? batch_shape(a.shape()) : batch_shape(b.shape());
  if (a.ndim() > 2 && b.ndim() > 2 && batch_shape(a.shape()) != batch_shape(b.shape()))
    throw ShapeError(role, fmt::format("batch axes differ: {} vs {}", shape_str(a.shape()), shape_str(b.shape())),
                     "batch axes must be equal, or one operand 2-D");

  const DType compute = product_dtype(a, b);
  if (a.dtype() != compute) a = to_dtype(a, compute);
  if (b.dtype() != compute) b = to_dtype(b, compute);
  // A bf16 result straight from the product where it runs in bf16; an f32 product
  // (no native bf16) is rounded after.
  const DType written = compute == DType::bf16 ? result : DType::f32;

  // A batch of rows times one shared matrix is a single 2-D product.
  std::int64_t rows = M, batch = std::max(batch_a, batch_b);
  if (batch_b == 1 && batch_a > 1 && !ta) {
    rows = M * batch_a;
    batch = batch_a = 1;
  }
  const std::int64_t K = Ka;
  const memory::desc a_md = operand_desc(batch_a, ta ? K : rows, ta ? rows : K, ta, compute);
  const memory::desc b_md = operand_desc(batch_b, tb ? N : K, tb ? K : N, tb, compute);
  const memory::desc c_md = bridge::plain_desc({batch, rows, N}, written);
  const memory::desc bias_md = bias.defined() ? bridge::plain_desc({1, 1, N}, DType::f32) : memory::desc();

  const std::string key = fmt::format("{}|{}{}|{}{}|{}x{}x{}x{}|bias{}|{}", role, key_of(a), ta ? "T" : "", key_of(b), tb ? "T" : "",
                                      batch, rows, K, N, bias.defined(), dtype_name(written));
  const auto& cached = cached_primitive(key, [&] {
    return bridge::guarded(role, [&] {
      return make_cached<dnnl::matmul>(dnnl::matmul::primitive_desc(
          bias.defined() ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md) : dnnl::matmul::desc(a_md, b_md, c_md), primitive_attr(), bridge::engine()));
    });
  });
  Shape out_shape = out_batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = Tensor::empty(out_shape, written);
  execute_product(role, cached, a, a_md, b, b_md, c, c_md, bias, bias_md);
  return written == result ? c : to_dtype(c, result);
}

// Up to this many rows (decoding: a token per sequence), linear's forward runs on
// oneDNN's inner product, which reads W [out, in] as stored. The matmul primitive wants
// W transposed and repacks the whole weight on every call, which at a few rows costs
// more than the product: 1.5-3x slower at 1-8 rows, and faster from 16 on
// (docs/performance.md).
constexpr std::int64_t kFewRows = 8;

// y [M, N] = x [M, K] · W [N, K]ᵀ (+ bias) for M <= kFewRows; dtypes as mm.
Tensor few_rows_linear(Tensor x, Tensor w, const Tensor& bias) {
  const DType compute = product_dtype(x, w);
  if (x.dtype() != compute) x = to_dtype(x, compute);
  if (w.dtype() != compute) w = to_dtype(w, compute);
  const std::int64_t M = x.dim(0), K = x.dim(1), N = w.dim(0);
  const memory::desc x_md = bridge::plain_desc({M, K}, compute), w_md = bridge::plain_desc({N, K}, compute);
  const memory::desc y_md = bridge::plain_desc({M, N}, DType::f32);
  const memory::desc b_md = bias.defined() ? bridge::plain_desc({N}, DType::f32) : memory::desc();
  const std::string key = fmt::format("linear.fwd_rows|{}|{}|bias{}", key_of(x), key_of(w), bias.defined());
  const auto& cached = cached_primitive(key, [&] {
    return bridge::guarded("linear", [&] {
      using IP = dnnl::inner_product_forward;
      const auto prop = dnnl::prop_kind::forward_inference;
      return make_cached<IP>(IP::primitive_desc(bias.defined() ? IP::desc(prop, x_md, w_md, b_md, y_md) : IP::desc(prop, x_md, w_md, y_md),
                                                primitive_attr(), bridge::engine()));
    });
  });
  Tensor y = Tensor::empty({M, N});
  execute_product("linear", cached, x, x_md, w, w_md, y, y_md, bias, b_md);
  return y;
}

// From kFewRows + 1 up to this many rows (one short request), linear's forward computes
// yᵀ = W · xᵀ: W [out, in] is then the product's left operand, which the matmul reads as
// stored, and only the few rows of x are repacked; yᵀ is transposed back with the bias
// added. Measured per product with weights streamed from memory (docs/performance.md):
// 1.1-1.5x faster at 16 rows in f32, 1.0-1.2x in bf16; slower from 64 rows on.
constexpr std::int64_t kShortRows = 16;

// y [M, N] = x [M, K] · W [N, K]ᵀ (+ bias) for kFewRows < M <= kShortRows; dtypes as mm.
Tensor short_rows_linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const Tensor yt = mm("linear.fwd_short", w, x, false, true);  // [N, M], f32
  const std::int64_t M = x.dim(0), N = w.dim(0);
  const Tensor b32 = bias.defined() ? as_f32(bias) : Tensor();
  Tensor y = Tensor::empty({M, N});
  const float* src = yt.data<float>();
  const float* add = b32.defined() ? b32.data<float>() : nullptr;
  float* dst = y.data<float>();
  for (std::int64_t m = 0; m < M; ++m)
    for (std::int64_t n = 0; n < N; ++n) dst[m * N + n] = src[n * M + m] + (add ? add[n] : 0.f);
  return y;
}

class MatmulOp : public Op, public SavesInputs {
 public:
  MatmulOp(bool ta, bool tb, DType result) : ta_(ta), tb_(tb), result_(result) {}
  // dA reads B and dB reads A.
  bool reads_input(std::size_t i, const std::vector<bool>& needs) const override { return needs[1 - i]; }
  std::string_view name() const override { return "matmul"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    return {mm("matmul.fwd", in[0], in[1], ta_, tb_, Tensor(), result_)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor &a = in[0], &b = in[1], &g = gout[0];
    std::vector<Tensor> grads(2);
    // With C = A'B' (A' = op(A), B' = op(B)): dA' = dC B'ᵀ and dB' = A'ᵀ dC, in C's dtype.
    if (needs[0]) {
      Tensor da = ta_ ? mm("matmul.bwd", b, g, tb_, true, Tensor(), result_) : mm("matmul.bwd", g, b, false, !tb_, Tensor(), result_);
      grads[0] = sum_to_shape(da, a.shape());
    }
    if (needs[1]) {
      Tensor db = tb_ ? mm("matmul.bwd", g, a, true, ta_, Tensor(), result_) : mm("matmul.bwd", a, g, !ta_, false, Tensor(), result_);
      grads[1] = sum_to_shape(db, b.shape());
    }
    return grads;
  }

 private:
  bool ta_, tb_;
  DType result_;
};

class LinearOp : public Op, public SavesInputs {
 public:
  // dx reads W, dW reads x, db neither: a frozen W keeps no activation.
  bool reads_input(std::size_t i, const std::vector<bool>& needs) const override {
    return i == 0 ? needs[1] : i == 1 ? needs[0] : false;
  }
  std::string_view name() const override { return "linear"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &x = in[0], &w = in[1], &bias = in[2];
    if (w.ndim() != 2 || x.ndim() < 1 || x.dim(-1) != w.dim(1))
      throw ShapeError("linear", fmt::format("input {} does not fit weight {} (expects [..., in] and [out, in])",
                                             shape_str(x.shape()), shape_str(w.shape())));
    if (bias.defined() && bias.shape() != Shape{w.dim(0)})
      throw ShapeError("linear", fmt::format("bias {} does not fit weight {}", shape_str(bias.shape()), shape_str(w.shape())));
    Shape out_shape = x.shape();
    out_shape.back() = w.dim(0);
    const Tensor rows = x.view({x.numel() / x.dim(-1), x.dim(-1)});
    if (rows.dim(0) > 0 && rows.dim(0) <= kFewRows) return {few_rows_linear(rows, w, bias).view(out_shape)};
    if (rows.dim(0) > kFewRows && rows.dim(0) <= kShortRows) return {short_rows_linear(rows, w, bias).view(out_shape)};
    return {mm("linear.fwd", rows, w, false, true, bias).view(out_shape)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    const Tensor &x = in[0], &w = in[1];
    const Tensor g = gout[0].view({gout[0].numel() / w.dim(0), w.dim(0)});
    std::vector<Tensor> grads(3);
    if (needs[0]) grads[0] = mm("linear.bwd_data", g, w, false, false).view(x.shape());
    if (needs[1]) grads[1] = mm("linear.bwd_weights", g, x.view({g.dim(0), x.dim(-1)}), true, false);
    if (needs[2]) grads[2] = sum_to_shape(g, {w.dim(0)});
    return grads;
  }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  return matmul(a, b, transpose_a, transpose_b, DType::f32);
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b, DType result) {
  require_floating("matmul", a);
  require_floating("matmul", b);
  if (result != DType::f32 && result != DType::bf16)
    throw ConfigError("matmul", fmt::format("a product's result is f32 or bf16, not {}", dtype_name(result)));
  return autograd::apply1(make_op<MatmulOp>(transpose_a, transpose_b, result), {a, b});
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  require_floating("linear", x);
  require_floating("linear", weight);
  return autograd::apply1(make_op<LinearOp>(), {x, weight, bias});
}

}  // namespace graft::ops
