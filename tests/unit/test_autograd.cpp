// Tape properties: pruning of frozen branches, backward-data only for frozen weights,
// inference primitives under no-grad, gradient accumulation, primitive reuse, and
// activations freed as soon as no backward reads them.
#include <gtest/gtest.h>

#include <functional>

#include "graft/error.h"
#include "gradcheck.h"
#include "ops/primitive_cache.h"

namespace graft {
namespace {

using testing::random_tensor;

TEST(Autograd, FrozenWeightGetsNoGradientAndNoWeightGradientPrimitive) {
  // Shapes no other test uses, so the primitive counts below are this test's own.
  Tensor upstream = random_tensor({7, 13}, 1).set_requires_grad(true);
  Tensor frozen_w = random_tensor({11, 13}, 2), frozen_b = random_tensor({11}, 3);
  const std::size_t weight_before = ops::primitives_created("linear.bwd_weights");
  const std::size_t data_before = ops::primitives_created("linear.bwd_data");

  Tensor y = ops::linear(ops::tanh(upstream), frozen_w, frozen_b);
  ops::sum(y).backward();

  EXPECT_FALSE(frozen_w.grad().defined());
  EXPECT_FALSE(frozen_b.grad().defined());
  ASSERT_TRUE(upstream.grad().defined());
  EXPECT_EQ(ops::primitives_created("linear.bwd_weights"), weight_before);
  EXPECT_EQ(ops::primitives_created("linear.bwd_data"), data_before + 1);

  // The same graph with a trainable weight does build the weight-gradient primitive.
  frozen_w.set_requires_grad(true);
  ops::sum(ops::linear(ops::tanh(upstream), frozen_w, frozen_b)).backward();
  EXPECT_TRUE(frozen_w.grad().defined());
  EXPECT_EQ(ops::primitives_created("linear.bwd_weights"), weight_before + 1);
}

// An activation that no backward reads is freed once the caller lets go of it, though
// the graph that routes its gradient lives on: scale and softmax read no input, a linear
// with a frozen weight does not read x. What the backward does read stays: a trainable
// weight's input, and what a nonlinearity's derivative needs. Gradients still reach x
// through the freed ones (every op's are checked against finite differences in
// test_gradcheck, and a training run's losses are bit-identical to keeping everything).
TEST(Autograd, ActivationsNoBackwardReadsAreFreed) {
  Tensor x = random_tensor({4, 6}, 21).set_requires_grad(true);
  Tensor frozen_w = random_tensor({5, 6}, 22), trained_w = random_tensor({3, 5}, 23).set_requires_grad(true);
  auto storage_of = [](const Tensor& t) { return std::weak_ptr<Storage>(t.impl()->storage); };

  Tensor h = ops::scale(x, 2.f);  // read by no backward below: freed
  const auto h_storage = storage_of(h);
  Tensor a = ops::linear(h, frozen_w);  // the frozen weight's linear does not read h
  const auto a_storage = storage_of(a);
  Tensor t = ops::tanh(a);  // tanh's derivative reads a: kept
  const auto t_storage = storage_of(t);
  Tensor y = ops::softmax(ops::linear(t, trained_w), Tensor());  // the trained weight's linear reads t: kept
  h = a = t = Tensor();
  EXPECT_TRUE(h_storage.expired()) << "scale's input is read by no backward";
  EXPECT_FALSE(a_storage.expired()) << "tanh's backward reads its input";
  EXPECT_FALSE(t_storage.expired()) << "a trained weight's gradient reads the linear's input";

  ops::sum(ops::mul(y, random_tensor({4, 3}, 24))).backward();
  ASSERT_TRUE(x.grad().defined());
  ASSERT_TRUE(trained_w.grad().defined());
  EXPECT_FALSE(frozen_w.grad().defined());
}

TEST(Autograd, FrozenBranchIsNotRecorded) {
  Tensor frozen = random_tensor({3, 4}, 4);
  Tensor out = ops::gelu(ops::linear(frozen, random_tensor({5, 4}, 5)));
  EXPECT_FALSE(out.node());
  EXPECT_FALSE(out.requires_grad());

  Tensor trainable = random_tensor({4}, 6).set_requires_grad(true);
  Tensor mixed = ops::add(out.view({3, 5}), ops::sum(trainable));
  ASSERT_TRUE(mixed.node());
  // The node keeps only its own inputs; the frozen producer chain carries no nodes.
  EXPECT_FALSE(mixed.node()->inputs[0].node());
}

TEST(Autograd, NoGradScopeRunsInferencePrimitives) {
  Tensor x = random_tensor({5, 17}, 7).set_requires_grad(true);
  Tensor gamma = Tensor::full({17}, 1.f), beta = Tensor::zeros({17});
  const std::size_t inference_before = ops::primitives_created("layer_norm.fwd_inference");
  const std::size_t training_before = ops::primitives_created("layer_norm.fwd_training");
  {
    NoGradGuard no_grad;
    Tensor y = ops::layer_norm(x, gamma, beta, 1e-5f);
    EXPECT_FALSE(y.node());
  }
  EXPECT_EQ(ops::primitives_created("layer_norm.fwd_inference"), inference_before + 1);
  EXPECT_EQ(ops::primitives_created("layer_norm.fwd_training"), training_before);
  Tensor y = ops::layer_norm(x, gamma, beta, 1e-5f);
  EXPECT_TRUE(y.node());
  EXPECT_EQ(ops::primitives_created("layer_norm.fwd_training"), training_before + 1);
}

TEST(Autograd, GradientsAccumulateAcrossMicroBatches) {
  Tensor w = random_tensor({3, 6}, 8).set_requires_grad(true);
  Tensor x = random_tensor({4, 6}, 9);
  Tensor targets = Tensor::from_ints({0, 2, 1, 2}, {4});

  ops::cross_entropy(ops::linear(x, w), targets).backward();
  const std::vector<float> full = w.grad().to_floats();
  w.zero_grad();

  // Two micro-batches of two rows, each loss scaled by its share of the batch.
  for (int half = 0; half < 2; ++half) {
    Tensor xs = ops::slice(x, 0, 2 * half, 2), ts = ops::slice(targets, 0, 2 * half, 2);
    ops::scale(ops::cross_entropy(ops::linear(xs, w), ts), 0.5f).backward();
  }
  const std::vector<float> accumulated = w.grad().to_floats();
  for (std::size_t i = 0; i < full.size(); ++i) EXPECT_NEAR(accumulated[i], full[i], 1e-6f) << i;
}

TEST(Autograd, SharedInputReceivesSumOfGradients) {
  Tensor x = random_tensor({2, 3}, 10).set_requires_grad(true);
  ops::sum(ops::mul(x, x)).backward();  // d(x²)/dx = 2x, through both operands
  const auto g = x.grad().to_floats(), v = x.to_floats();
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(g[i], 2 * v[i], 1e-6f);
}

TEST(Autograd, PrimitivesAreBuiltOncePerShape) {
  Tensor x = random_tensor({9, 19}, 11), w = random_tensor({23, 19}, 12);
  ops::linear(x, w);
  const std::size_t size = ops::primitive_cache_size();
  for (int step = 0; step < 5; ++step) ops::linear(random_tensor({9, 19}, 13 + step), w);
  EXPECT_EQ(ops::primitive_cache_size(), size);
}

TEST(Autograd, BackwardOnFrozenResultIsAClearError) {
  Tensor y = ops::sum(random_tensor({2, 2}, 14));
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not require a gradient"), std::string::npos);
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST(Autograd, ShapeMismatchIsAClearError) {
  try {
    ops::matmul(random_tensor({2, 3}, 15), random_tensor({4, 5}, 16));
    FAIL() << "expected an error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions differ"), std::string::npos) << e.what();
  }
}

// Row gather/scatter refuse what would read or write outside the batch, naming it.
TEST(Autograd, RowOpsRefuseRowsOutsideTheBatchAndMismatchedValues) {
  const Tensor x = random_tensor({3, 2}, 17);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const ShapeError& e) {
      return std::string(e.what());
    }
    return std::string("no ShapeError");
  };
  EXPECT_NE(message([&] { ops::gather_rows(x, {0, 3}); }).find("row 3 is outside a batch of 3"), std::string::npos);
  EXPECT_NE(message([&] { ops::scatter_rows(x, {-1}, random_tensor({1, 2}, 18)); }).find("row -1 is outside a batch of 3"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::scatter_rows(x, {0, 1}, random_tensor({1, 2}, 19)); }).find("2 rows of f32 [3, 2] cannot take"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::gather_rows(ops::sum(x), {0}); }).find("a scalar has no rows"), std::string::npos);
}

}  // namespace
}  // namespace graft
