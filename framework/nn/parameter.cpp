// Parameter creation and seeded initialisation (see graft/nn.h for the guarantees).
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "graft/error.h"
#include "graft/nn.h"

namespace graft::nn {
namespace {

// Uniform in [0, 1) from the top 53 bits of one 64-bit draw.
double unit(std::mt19937_64& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

void require_nonnegative(const char* key, float value) {
  if (!(value >= 0.f) || !std::isfinite(value))
    throw ConfigError("nn", fmt::format("{} = {} is out of range", key, value), fmt::format("{} must be a finite value >= 0", key));
}

}  // namespace

Tensor parameter(Shape shape, float init_std, std::uint64_t seed) {
  require_nonnegative("init_std", init_std);
  Tensor t = Tensor::empty(std::move(shape));
  float* p = t.data<float>();
  const std::int64_t n = t.numel();
  std::mt19937_64 gen(seed);
  // Box–Muller: each pair of uniforms gives two independent standard normals.
  constexpr double two_pi = 6.283185307179586476925;
  for (std::int64_t i = 0; i < n; i += 2) {
    const double u1 = 1.0 - unit(gen);  // (0, 1]: log stays finite
    const double u2 = unit(gen);
    const double r = std::sqrt(-2.0 * std::log(u1));
    p[i] = static_cast<float>(init_std * r * std::cos(two_pi * u2));
    if (i + 1 < n) p[i + 1] = static_cast<float>(init_std * r * std::sin(two_pi * u2));
  }
  return leaf(t);
}

Tensor uniform_parameter(Shape shape, float bound, std::uint64_t seed) {
  require_nonnegative("bound", bound);
  Tensor t = Tensor::empty(std::move(shape));
  float* p = t.data<float>();
  const std::int64_t n = t.numel();
  std::mt19937_64 gen(seed);
  for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(bound * (2.0 * unit(gen) - 1.0));
  return leaf(t);
}

Tensor truncated_normal_parameter(Shape shape, float init_std, std::uint64_t seed) {
  require_nonnegative("init_std", init_std);
  Tensor t = Tensor::zeros(std::move(shape));
  float* p = t.data<float>();
  std::mt19937_64 gen(seed);
  auto uniform = [&] { return (static_cast<double>(gen() >> 11) + 0.5) * 0x1.0p-53; };  // (0, 1)
  for (std::int64_t i = 0; i < t.numel();) {
    const double u1 = uniform(), u2 = uniform();  // sequenced: the same draws on every compiler
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    if (std::fabs(z) <= 2.0) p[i++] = static_cast<float>(z * init_std);
  }
  return leaf(t);
}

Tensor zeros_parameter(Shape shape) { return leaf(Tensor::zeros(std::move(shape))); }

Tensor ones_parameter(Shape shape) { return leaf(Tensor::full(std::move(shape), 1.f)); }

}  // namespace graft::nn
