// The linear-probe baseline through the shared harness: a classification head on the
// frozen all-MiniLM-L6-v2, trained on real SST-2 rows, beats the untrained head on
// held-out dev rows, and the backbone's weights do not change by a bit.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "peft_harness.h"

namespace graft::testing {
namespace {

TEST(HeadOnly, LinearProbeOnMiniLmLearnsSst2) {
  auto& model = minilm();
  const auto train_rows = sst2(*model.tokenizer, "train", 0, 256, 32);
  const auto dev_rows = sst2(*model.tokenizer, "dev", 0, 200, 50);
  TaskHead head({TaskKind::classification, 2, Pooling::mean, 0.1f}, *model.model, 7);
  const auto before_weights = weight_bytes(*model.model);
  const Evaluation before = evaluate(*model.model, nullptr, head, dev_rows);
  const auto t0 = std::chrono::steady_clock::now();
  const auto losses = train(*model.model, nullptr, head, train_rows, 48, 5e-3f);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Evaluation after = evaluate(*model.model, nullptr, head, dev_rows);
  std::printf("head only: dev accuracy %.3f -> %.3f, dev loss %.3f -> %.3f, train loss %.3f -> %.3f, %.1f s\n", before.accuracy,
              after.accuracy, before.loss, after.loss, losses.front(), losses.back(), seconds);
  EXPECT_GT(after.accuracy, before.accuracy + 0.1);
  EXPECT_GT(after.accuracy, 0.7);
  EXPECT_LT(after.loss, before.loss);
  EXPECT_TRUE(weight_bytes(*model.model) == before_weights) << "the frozen backbone changed";
}

}  // namespace
}  // namespace graft::testing
