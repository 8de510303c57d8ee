// Evaluation metrics, computed from predictions and references as the GLUE and
// CoNLL-2003 evaluations define them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graft/scores.h"

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

using graft::Scores;

}  // namespace graft::train
