// Central finite differences against autograd, for any function of tensors.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "graft/autograd.h"
#include "graft/ops.h"

namespace graft::testing {

inline Tensor random_tensor(Shape shape, std::uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  for (auto& x : v) x = dist(rng);
  return Tensor::from_floats(v, std::move(shape));
}

struct GradcheckTolerance {
  float eps = 1e-2f;   // finite-difference step
  float atol = 1e-3f;  // |analytic − numeric| <= atol + rtol·|numeric|
  float rtol = 1e-2f;
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d(Σ f(x)·R)/dx for every input that requires a gradient, element by element.
inline void expect_gradients_match(const TensorFn& f, std::vector<Tensor> inputs, GradcheckTolerance tol = {},
                                   const std::string& label = "") {
  Tensor probe;
  {
    NoGradGuard no_grad;
    probe = f(inputs);
  }
  const Tensor weights = random_tensor(probe.shape(), 99, 0.5f, 1.5f);
  const std::vector<float> w = weights.to_floats();
  auto objective = [&](const std::vector<Tensor>& in) {
    NoGradGuard no_grad;
    const std::vector<float> out = f(in).to_floats();
    double total = 0;
    for (std::size_t i = 0; i < out.size(); ++i) total += static_cast<double>(out[i]) * w[i];
    return total;
  };

  for (auto& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  f(inputs).backward(weights);

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    ASSERT_TRUE(x.grad().defined()) << label << ": input " << k << " got no gradient";
    const std::vector<float> analytic = x.grad().to_floats();
    float* data = x.data<float>();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const float saved = data[i];
      data[i] = saved + tol.eps;
      const double up = objective(inputs);
      data[i] = saved - tol.eps;
      const double down = objective(inputs);
      data[i] = saved;
      const double numeric = (up - down) / (2.0 * tol.eps);
      EXPECT_NEAR(analytic[i], numeric, tol.atol + tol.rtol * std::abs(numeric))
          << label << ": input " << k << " element " << i;
    }
  }
}

}  // namespace graft::testing
