#include "train/pooling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "graft/error.h"
#include "graft/ops.h"

namespace graft {

Pooling parse_pooling(const std::string& name) {
  if (name == "mean") return Pooling::mean;
  if (name == "cls") return Pooling::cls;
  if (name == "last") return Pooling::last;
  throw ConfigError("pooling", fmt::format("unknown pooling '{}'", name), "use mean, cls or last");
}

const char* pooling_name(Pooling pooling) {
  switch (pooling) {
    case Pooling::mean: return "mean";
    case Pooling::cls: return "cls";
    case Pooling::last: return "last";
  }
  return "?";
}

}  // namespace graft

namespace graft::train {

Tensor pool(const Tensor& hidden, const Tensor& mask, Pooling pooling) {
  const std::int64_t B = hidden.dim(0), T = hidden.dim(1), H = hidden.dim(2);
  if (pooling == Pooling::cls) return ops::reshape(ops::slice(hidden, 1, 0, 1), {B, H});
  // Every pooling is Σ_t w_t·h_t: one batched [1, T]·[T, H] product per row.
  std::vector<float> weights(static_cast<std::size_t>(B * T), 0.f);
  const auto keep = mask.to_ints();
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t count = 0, last = 0;
    for (std::int64_t t = 0; t < T; ++t)
      if (keep[b * T + t] != 0) ++count, last = t;
    for (std::int64_t t = 0; t < T; ++t) {
      if (pooling == Pooling::mean)
        weights[b * T + t] = keep[b * T + t] != 0 ? 1.f / static_cast<float>(std::max<std::int64_t>(count, 1)) : 0.f;
      else
        weights[b * T + t] = t == last ? 1.f : 0.f;
    }
  }
  return ops::reshape(ops::matmul(Tensor::from_floats(weights, {B, 1, T}), hidden), {B, H});
}

Tensor l2_normalize(const Tensor& x) {
  Tensor norm = ops::sum(ops::mul(x, x), {-1}, true);
  std::vector<float> inv = norm.to_floats();
  for (auto& v : inv) v = 1.f / std::max(std::sqrt(v), 1e-12f);  // torch.nn.functional.normalize's eps
  return ops::mul(x, Tensor::from_floats(inv, norm.shape()));
}

}  // namespace graft::train
