// Evaluation metrics, computed from predictions and references as the GLUE and
// CoNLL-2003 evaluations define them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace graft::train {

double accuracy(const std::vector<std::int64_t>& predicted, const std::vector<std::int64_t>& gold);
// F1 of the positive class (label 1), as GLUE reports for MRPC.
double f1_binary(const std::vector<std::int64_t>& predicted, const std::vector<std::int64_t>& gold);
// Matthews correlation coefficient (CoLA); 0 when a marginal is empty.
double matthews(const std::vector<std::int64_t>& predicted, const std::vector<std::int64_t>& gold);
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Pearson correlation of the ranks, ties given their average rank (as scipy).
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// Entity-level F1 over IOB1/IOB2 tag sequences (conlleval): an entity counts when its
// type and exact span match.
double entity_f1(const std::vector<std::vector<std::string>>& predicted, const std::vector<std::vector<std::string>>& gold);
double perplexity(double mean_token_loss);

// The metrics a task reports, and the one number runs are ranked by:
// matthews (CoLA), mean of F1 and accuracy (MRPC, as the GLUE score), mean of Pearson
// and Spearman (STS-B), accuracy, entity F1, or perplexity for language modelling.
struct Scores {
  std::map<std::string, double> values;
  std::string headline;  // the key of values that ranks runs
  bool higher_is_better = true;  // false for perplexity
  double score() const { return values.at(headline); }
  bool better_than(const Scores& other) const {
    return higher_is_better ? score() > other.score() : score() < other.score();
  }
};

}  // namespace graft::train
