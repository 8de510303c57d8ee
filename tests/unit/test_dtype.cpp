// f32 <-> bf16 conversion (ops::to_dtype), where bf16 matmuls compute, the bf16 path of
// attention's scores, softmax and dropout, and the paths of linears over a few rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "graft/autograd.h"
#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"

namespace graft {
namespace {

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Every value, in a tensor large enough for the parallel loop, converts as the scalar
// rule (round to nearest even; NaN stays NaN, infinities stay infinite) and back exactly.
TEST(Dtype, Bf16ConversionRoundsEveryValueAsTheScalarRule) {
  std::vector<float> values = {0.f, -0.f, 1.f, -1.5f, 1e-40f, 3.4e38f, std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                               from_bits(0x3f808000u),  // a tie, even below: rounds down
                               from_bits(0x3f818000u),  // a tie, odd below: rounds up
                               from_bits(0x3f808001u), from_bits(0x7f7fffffu), from_bits(0xff800001u)};
  for (std::uint32_t i = 0; values.size() < 300000; ++i) values.push_back(from_bits(i * 2654435761u));
  NoGradGuard no_grad;
  const Tensor x = Tensor::from_floats(values, {static_cast<std::int64_t>(values.size())});
  const Tensor half = ops::to_dtype(x, DType::bf16);
  const auto* h = half.data<std::uint16_t>();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint16_t expected = f32_to_bf16(values[i]);
    if (std::isnan(values[i])) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(h[i]))) << "value " << i;
    } else {
      ASSERT_EQ(h[i], expected) << "value " << i << " = " << values[i];
    }
  }
  const Tensor back = ops::to_dtype(half, DType::f32);
  const auto* b = back.data<float>();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float want = bf16_to_f32(h[i]);
    ASSERT_TRUE(std::memcmp(&b[i], &want, 4) == 0) << "value " << i;
  }
  EXPECT_EQ(h[9], 0x3f80u);
  EXPECT_EQ(h[10], 0x3f82u);
  EXPECT_EQ(h[11], 0x3f81u);
}

// bf16 operands compute in bf16 only on a CPU that has it; elsewhere the product equals
// the f32 product of the widened operands, bit for bit.
TEST(Dtype, Bf16MatmulWithoutNativeBf16IsTheWidenedF32Product) {
  NoGradGuard no_grad;
  std::vector<float> av(64 * 48), bv(48 * 32);
  for (std::size_t i = 0; i < av.size(); ++i) av[i] = std::sin(0.37f * static_cast<float>(i));
  for (std::size_t i = 0; i < bv.size(); ++i) bv[i] = std::cos(0.11f * static_cast<float>(i));
  const Tensor a = Tensor::from_floats(av, {64, 48}), w = ops::to_dtype(Tensor::from_floats(bv, {32, 48}), DType::bf16);
  const Tensor got = ops::linear(a, w, Tensor());
  const Tensor widened = ops::linear(a, ops::to_dtype(w, DType::f32), Tensor());
  const Tensor both = ops::linear(ops::to_dtype(ops::to_dtype(a, DType::bf16), DType::f32), ops::to_dtype(w, DType::f32), Tensor());
  const auto g = got.to_floats(), f = widened.to_floats(), r = both.to_floats();
  double to_widened = 0, to_rounded = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    to_widened = std::max(to_widened, static_cast<double>(std::fabs(g[i] - f[i])));
    to_rounded = std::max(to_rounded, static_cast<double>(std::fabs(g[i] - r[i])));
  }
  if (ops::bf16_matmul_native()) {
    EXPECT_LT(to_rounded, 1e-4) << "a bf16 matmul rounds both operands";
    EXPECT_GT(to_widened, 1e-4) << "the activations were not rounded";
  } else {
    EXPECT_EQ(to_widened, 0.0) << "without native bf16 the product is f32's on the widened weight";
  }
}

std::vector<float> wave(std::size_t n, float step, float phase = 0.f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(step * static_cast<float>(i) + phase);
  return v;
}

// |a − b| in units of the bf16 spacing at the larger of the two.
double bf16_ulps(float a, float b) {
  const float spacing = std::ldexp(1.f, std::ilogb(std::max({std::fabs(a), std::fabs(b), 1e-30f})) - 7);
  return std::fabs(a - b) / spacing;
}

// The bf16 attention path (scores, probabilities and their dropout in bf16, as under
// torch.autocast): each op keeps bf16 and gives its f32 computation rounded once, and
// the gradients reaching f32 q, k, v follow the f32 path's.
TEST(Dtype, Bf16ScoresSoftmaxAndDropoutStayBf16AndFollowTheF32Path) {
  const Shape qs{2, 3, 5, 8}, ks{2, 3, 7, 8};
  const Tensor q = Tensor::from_floats(wave(2 * 3 * 5 * 8, 0.37f), qs), k = Tensor::from_floats(wave(2 * 3 * 7 * 8, 0.11f, 1.f), ks);
  const Tensor v = Tensor::from_floats(wave(2 * 3 * 7 * 8, 0.23f, 2.f), ks);
  {
    NoGradGuard no_grad;
    const Tensor qb = ops::to_dtype(q, DType::bf16), kb = ops::to_dtype(k, DType::bf16);
    const Tensor scores = ops::matmul(qb, kb, false, true, DType::bf16);
    ASSERT_EQ(scores.dtype(), DType::bf16);
    const auto want = ops::matmul(ops::to_dtype(qb, DType::f32), ops::to_dtype(kb, DType::f32), false, true).to_floats();
    const auto got = scores.to_floats();
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_LE(bf16_ulps(got[i], want[i]), 1.0) << "score " << i;

    const Tensor probs = ops::softmax(scores);
    ASSERT_EQ(probs.dtype(), DType::bf16);
    const auto p32 = ops::softmax(ops::to_dtype(scores, DType::f32)).to_floats(), pb = probs.to_floats();
    // oneDNN's bf16 softmax rounds exp(x − max) before scaling it: twice, not once.
    for (std::size_t i = 0; i < pb.size(); ++i)
      ASSERT_LE(bf16_ulps(pb[i], p32[i]), ops::bf16_matmul_native() ? 1.5 : 0.5) << "probability " << i << ": " << pb[i] << " vs " << p32[i];

    ops::manual_seed(7);
    const Tensor dropped = ops::dropout(probs, 0.3f, true);
    ops::manual_seed(7);
    const auto dropped32 = ops::dropout(ops::to_dtype(probs, DType::f32), 0.3f, true).to_floats();
    ASSERT_EQ(dropped.dtype(), DType::bf16);
    const auto db = dropped.to_floats();
    std::size_t zeros = 0;
    for (std::size_t i = 0; i < db.size(); ++i) {
      ASSERT_EQ(db[i] == 0.f, dropped32[i] == 0.f) << "the same mask in both dtypes, element " << i;
      zeros += db[i] == 0.f;
      ASSERT_EQ(db[i], bf16_to_f32(f32_to_bf16(dropped32[i]))) << "scaled in f32, rounded once: element " << i;
    }
    EXPECT_GT(zeros, db.size() / 6);
    EXPECT_LT(zeros, db.size() / 2);
  }
  // Gradients: the bf16 path's reach f32 q, k, v within bf16's precision of the f32 path's.
  auto grads = [&](bool bf16) {
    Tensor a = q.clone(), b = k.clone(), c = v.clone();
    for (Tensor* t : {&a, &b, &c}) t->set_requires_grad(true);
    auto in = [&](const Tensor& t) { return bf16 ? ops::to_dtype(t, DType::bf16) : t; };
    ops::manual_seed(3);
    const Tensor scores = ops::matmul(in(a), in(b), false, true, bf16 ? DType::bf16 : DType::f32);
    const Tensor context = ops::dropout_matmul(ops::softmax(scores), in(c), 0.2f, true);
    EXPECT_EQ(context.dtype(), DType::f32);
    ops::sum(ops::mul(context, context)).backward();
    std::vector<std::vector<float>> out;
    for (const Tensor* t : {&a, &b, &c}) out.push_back(t->grad().to_floats());
    return out;
  };
  const auto f32 = grads(false), bf16 = grads(true);
  for (int t = 0; t < 3; ++t) {
    double largest = 0, error = 0;
    for (std::size_t i = 0; i < f32[t].size(); ++i) {
      largest = std::max(largest, static_cast<double>(std::fabs(f32[t][i])));
      error = std::max(error, static_cast<double>(std::fabs(f32[t][i] - bf16[t][i])));
    }
    EXPECT_GT(largest, 0.1) << "input " << t;
    EXPECT_LT(error, 0.03 * largest) << "input " << t << ": the bf16 path's gradient strays from the f32 one";
    EXPECT_GT(error, 0.0) << "input " << t << ": the bf16 path did not round anything";
  }
}

// A product's result is f32 or bf16: an integer dtype is refused with the op named.
TEST(Dtype, AProductResultInAnIntegerDtypeIsRefused) {
  const Tensor a = Tensor::from_floats(wave(6, 0.3f), {2, 3}), b = Tensor::from_floats(wave(6, 0.7f), {3, 2});
  try {
    ops::matmul(a, b, false, false, DType::i64);
    FAIL() << "an i64 result was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("f32 or bf16, not i64"), std::string::npos) << e.what();
  }
}

// Up to 8 rows (decoding) a linear runs on the inner product, from 9 to 16 rows (a short
// request) as yᵀ = W·xᵀ; each row gives what it gives inside a larger batch, in f32 and
// with bf16 weights, with and without a bias, and the backward (matmuls) still matches.
TEST(Linear, FewAndShortRowRunsAgreeWithTheBatchedProduct) {
  std::vector<float> xv(40 * 48), wv(24 * 48), bv(24);
  for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = std::sin(0.37f * static_cast<float>(i));
  for (std::size_t i = 0; i < wv.size(); ++i) wv[i] = std::cos(0.11f * static_cast<float>(i));
  for (std::size_t i = 0; i < bv.size(); ++i) bv[i] = 0.1f * static_cast<float>(i);
  const Tensor batch = Tensor::from_floats(xv, {40, 48}), bias = Tensor::from_floats(bv, {24});
  for (DType dtype : {DType::f32, DType::bf16}) {
    const Tensor w = ops::to_dtype(Tensor::from_floats(wv, {24, 48}), dtype);
    for (const Tensor& b : {bias, Tensor()}) {
      NoGradGuard no_grad;
      const std::vector<float> all = ops::linear(batch, w, b).to_floats();
      const std::size_t few_before = ops::primitives_created("linear.fwd_rows");
      const std::size_t short_before = ops::primitives_created("linear.fwd_short");
      for (std::int64_t rows : {1, 3, 8, 9, 13, 16}) {
        const Tensor x = Tensor::from_floats(std::vector<float>(xv.begin(), xv.begin() + rows * 48), {1, rows, 48});
        const std::vector<float> few = ops::linear(x, w, b).to_floats();
        ASSERT_EQ(few.size(), static_cast<std::size_t>(rows * 24));
        for (std::size_t i = 0; i < few.size(); ++i) ASSERT_NEAR(few[i], all[i], 1e-5) << dtype_name(dtype) << " rows " << rows << " i " << i;
      }
      // Widened bf16 weights (no native bf16) run f32's products, built already.
      const std::size_t built = dtype == DType::bf16 && !ops::bf16_matmul_native() ? 0 : 3;
      EXPECT_EQ(ops::primitives_created("linear.fwd_rows"), few_before + built) << "each row count builds its inner product once";
      // The short product carries no bias (it is added in the transpose): built once per row count.
      const std::size_t short_built = b.defined() ? built : 0;
      EXPECT_EQ(ops::primitives_created("linear.fwd_short"), short_before + short_built) << "each row count builds W·xᵀ once";
    }
  }
  // The backward of a few-row forward: dx = g·W and dW = gᵀ·x as for any batch.
  Tensor x = Tensor::from_floats(std::vector<float>(xv.begin(), xv.begin() + 2 * 48), {2, 48});
  Tensor w = Tensor::from_floats(wv, {24, 48});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  ops::sum(ops::linear(x, w, bias)).backward();
  const auto dx = x.grad().to_floats(), dw = w.grad().to_floats();
  for (std::int64_t k = 0; k < 48; ++k) {
    double col = 0;
    for (std::int64_t n = 0; n < 24; ++n) col += wv[n * 48 + k];
    EXPECT_NEAR(dx[k], col, 1e-4);
    EXPECT_NEAR(dw[5 * 48 + k], xv[k] + xv[48 + k], 1e-5);
  }
}

}  // namespace
}  // namespace graft
