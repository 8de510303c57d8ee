// Metrics against values computed by hand and by scipy / sklearn / conlleval for the
// same inputs (stated next to each expectation).
#include <gtest/gtest.h>

#include <cmath>

#include "train/metrics.h"

namespace graft::train {
namespace {

const std::vector<std::int64_t> kPred{1, 0, 1, 1, 0, 1, 0, 0}, kGold{1, 0, 0, 1, 1, 1, 0, 1};

TEST(Metrics, Accuracy) { EXPECT_DOUBLE_EQ(accuracy(kPred, kGold), 5.0 / 8); }

TEST(Metrics, F1OfThePositiveClass) {
  // tp 3, fp 1, fn 2: 2·3 / (6 + 1 + 2)
  EXPECT_DOUBLE_EQ(f1_binary(kPred, kGold), 6.0 / 9);
}

TEST(Metrics, MatthewsCorrelation) {
  // sklearn.metrics.matthews_corrcoef(gold, pred) = 0.2581988897471611
  EXPECT_NEAR(matthews(kPred, kGold), 0.2581988897471611, 1e-12);
  EXPECT_DOUBLE_EQ(matthews({1, 1, 1}, {1, 0, 1}), 0.0);  // a constant prediction has no correlation
}

TEST(Metrics, PearsonAndSpearmanWithTies) {
  const std::vector<double> x{1, 2, 2, 3, 5}, y{2, 1, 4, 3, 9};
  // scipy.stats.pearsonr(x, y)[0] = 0.8786143893549281; spearmanr = 0.6668859288553503
  EXPECT_NEAR(pearson(x, y), 0.8786143893549281, 1e-12);
  EXPECT_NEAR(spearman(x, y), 0.6668859288553503, 1e-12);
}

TEST(Metrics, EntityF1CountsExactSpansAndTypes) {
  // IOB1 as CoNLL-2003 writes it: I-PER I-PER is one entity; B- only splits adjacent ones.
  const std::vector<std::vector<std::string>> gold{{"I-PER", "I-PER", "O", "I-LOC", "B-LOC"}, {"O", "I-ORG"}};
  const std::vector<std::vector<std::string>> pred{{"I-PER", "I-PER", "O", "I-LOC", "I-LOC"}, {"O", "I-ORG"}};
  // gold: PER[0,2) LOC[3,4) LOC[4,5) ORG; predicted: PER[0,2) LOC[3,5) ORG → 2 of 3 found, 2 of 4 expected
  EXPECT_NEAR(entity_f1(pred, gold), 2 * (2.0 / 3) * (2.0 / 4) / (2.0 / 3 + 2.0 / 4), 1e-12);
  EXPECT_DOUBLE_EQ(entity_f1(gold, gold), 1.0);
}

TEST(Metrics, Perplexity) { EXPECT_NEAR(perplexity(std::log(20.0)), 20.0, 1e-9); }

}  // namespace
}  // namespace graft::train
