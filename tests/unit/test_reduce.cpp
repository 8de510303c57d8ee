// Reductions (ops::sum, ops::mean, sum_to_shape) against a plain double-precision loop,
// on every pattern of axes: leading (column sums), trailing (row sums), and the others
// that go to oneDNN's reduction primitive; large enough for the threaded paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "graft/autograd.h"
#include "graft/ops.h"
#include "gradcheck.h"
#include "ops/op_util.h"

namespace graft {
namespace {

// Σ (or mean) of x [A, B, C] over `axes`, keepdim, in double.
std::vector<double> reference(const Tensor& x, const std::vector<int>& axes, bool mean) {
  const auto v = x.to_floats();
  const std::int64_t A = x.dim(0), B = x.dim(1), C = x.dim(2);
  auto reduced = [&](int a) { return std::find(axes.begin(), axes.end(), a) != axes.end(); };
  const std::int64_t oa = reduced(0) ? 1 : A, ob = reduced(1) ? 1 : B, oc = reduced(2) ? 1 : C;
  std::vector<double> out(static_cast<std::size_t>(oa * ob * oc), 0.0);
  for (std::int64_t a = 0; a < A; ++a)
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t c = 0; c < C; ++c)
        out[static_cast<std::size_t>(((reduced(0) ? 0 : a) * ob + (reduced(1) ? 0 : b)) * oc + (reduced(2) ? 0 : c))] +=
            v[static_cast<std::size_t>((a * B + b) * C + c)];
  if (mean)
    for (auto& o : out) o /= static_cast<double>(A * B * C / (oa * ob * oc));
  return out;
}

TEST(Reduce, EveryAxisPatternEqualsAPlainLoop) {
  NoGradGuard no_grad;
  const Tensor x = testing::random_tensor({64, 33, 40}, 7);
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{0}, {0, 1}, {2}, {1, 2}, {1}, {0, 2}, {0, 1, 2}})
    for (bool mean : {false, true}) {
      const Tensor got = mean ? ops::mean(x, axes, true) : ops::sum(x, axes, true);
      const auto want = reference(x, axes, mean);
      const auto g = got.to_floats();
      ASSERT_EQ(g.size(), want.size());
      for (std::size_t i = 0; i < g.size(); ++i)
        ASSERT_NEAR(g[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << (mean ? "mean" : "sum") << " over " << axes.size()
                                                                     << " axes, first " << axes[0] << ", element " << i;
    }
}

TEST(Reduce, SumToShapeUndoesABroadcastOfABias) {
  NoGradGuard no_grad;
  const Tensor g = testing::random_tensor({4096, 24}, 9);  // a bias gradient, as an adapter's down projection has
  const Tensor got = ops::sum_to_shape(g, {24});
  const auto want = reference(g.view({1, 4096, 24}), {0, 1}, false);
  const auto v = got.to_floats();
  ASSERT_EQ(got.shape(), (Shape{24}));
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], want[i], 1e-3) << i;
}

}  // namespace
}  // namespace graft
