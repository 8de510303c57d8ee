// train::validate refuses every out-of-range number a library caller can pass (the CLI
// ranges its options before; Session and the Python module will call this), and the
// memory estimate is of the right size.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "graft/error.h"
#include "train/trainer.h"

namespace graft::train {
namespace {

void expect_refused(const std::function<void(TrainConfig&)>& edit, const std::string& field) {
  TrainConfig c;
  c.output = "/tmp/unused";
  edit(c);
  try {
    validate(c);
    ADD_FAILURE() << field << " accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty()) << e.what();
  }
}

TEST(TrainLimits, DefaultsAreValid) {
  TrainConfig c;
  EXPECT_NO_THROW(validate(c));
  c.max_steps = 10;
  c.epochs = 0;  // unused when max_steps is set
  EXPECT_NO_THROW(validate(c));
}

TEST(TrainLimits, EveryFieldIsRanged) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  expect_refused([](TrainConfig& c) { c.batch_size = 0; }, "batch_size");
  expect_refused([](TrainConfig& c) { c.batch_size = static_cast<std::size_t>(-1); }, "batch_size");  // -1 through size_t
  expect_refused([](TrainConfig& c) { c.grad_accumulation = 0; }, "grad_accumulation");
  expect_refused([](TrainConfig& c) { c.grad_accumulation = static_cast<std::size_t>(-1); }, "grad_accumulation");
  expect_refused([](TrainConfig& c) { c.max_length = 0; }, "max_length");
  expect_refused([](TrainConfig& c) { c.max_length = static_cast<std::size_t>(-5); }, "max_length");
  expect_refused([](TrainConfig& c) { c.max_steps = -1; }, "max_steps");
  expect_refused([](TrainConfig& c) { c.epochs = 0; }, "epochs");
  expect_refused([](TrainConfig& c) { c.eval_every = -1; }, "eval_every");
  expect_refused([](TrainConfig& c) { c.save_every = -3; }, "save_every");
  for (const float lr : {0.f, -1.f, 1e30f, nan, inf}) expect_refused([lr](TrainConfig& c) { c.lr = lr; }, "learning rate");
  expect_refused([nan](TrainConfig& c) { c.weight_decay = nan; }, "weight_decay");
  expect_refused([](TrainConfig& c) { c.warmup_ratio = 1.5f; }, "warmup_ratio");
  expect_refused([inf](TrainConfig& c) { c.max_grad_norm = inf; }, "max_grad_norm");
}

TEST(TrainLimits, MemoryEstimateIsOfTheRightSize) {
  BackboneInfo minilm;  // all-MiniLM-L6-v2
  minilm.num_layers = 6;
  minilm.hidden_size = 384;
  minilm.num_heads = 12;
  minilm.intermediate_size = 1536;
  minilm.vocab_size = 30522;
  minilm.parameter_count = 22713216;
  TrainConfig c;
  c.batch_size = 32;
  c.max_length = 128;
  const double gib = static_cast<double>(estimate_training_bytes(c, minilm, 100000)) / (1 << 30);
  // Measured: 0.9 GiB peak on SST-2 (short rows); a full 128-token batch needs more.
  EXPECT_GT(gib, 0.9);
  EXPECT_LT(gib, 4.0);
  // Linear in the batch, super-linear in the length (attention rows).
  c.batch_size = 64;
  EXPECT_NEAR(static_cast<double>(estimate_training_bytes(c, minilm, 100000)) / (1 << 30), 2 * gib, 0.2);
  c.batch_size = 32;
  c.max_length = 256;
  EXPECT_GT(static_cast<double>(estimate_training_bytes(c, minilm, 100000)) / (1 << 30), 2 * gib);
  // Absurd configs do not overflow into something small.
  c.batch_size = std::size_t{1} << 40;
  c.max_length = std::size_t{1} << 20;
  EXPECT_GT(estimate_training_bytes(c, minilm, 0), memory_limit_bytes());
  EXPECT_GT(memory_limit_bytes(), std::uint64_t{1} << 28);
}

}  // namespace
}  // namespace graft::train
