// The metrics a task reports, and the one number runs are ranked by:
// matthews (CoLA), mean of F1 and accuracy (MRPC, as the GLUE score), mean of Pearson
// and Spearman (STS-B), accuracy, entity F1, or perplexity for language modelling.
#pragma once
#include <map>
#include <string>

namespace graft {

struct Scores {
  std::map<std::string, double> values;
  std::string headline;  // the key of values that ranks runs
  bool higher_is_better = true;  // false for perplexity
  double score() const { return values.at(headline); }
  bool better_than(const Scores& other) const {
    return higher_is_better ? score() > other.score() : score() < other.score();
  }
};

}  // namespace graft
