// f32 <-> bf16 conversion (ops::to_dtype) and where bf16 matmuls compute.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "graft/autograd.h"
#include "graft/ops.h"
#include "ops/op_util.h"

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

}  // namespace
}  // namespace graft
