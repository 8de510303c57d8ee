#include "train/evaluator.h"

#include <algorithm>

#include "graft/autograd.h"
#include "graft/error.h"
#include "train/task_model.h"

namespace graft::train {
namespace {

std::vector<std::int64_t> argmax_rows(const Tensor& logits) {
  const std::int64_t C = logits.dim(-1), rows = logits.numel() / C;
  const auto v = logits.to_floats();
  std::vector<std::int64_t> out(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto row = v.begin() + r * C;
    out[r] = std::max_element(row, row + C) - row;
  }
  return out;
}

}  // namespace

std::vector<double> predict(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const Batch& batch) {
  NoGradGuard no_grad;
  return predictions(head, task_logits(backbone, hooks, head, batch, false));
}

std::vector<double> predictions(const TaskHead& head, const Tensor& logits) {
  if (head.config().kind == TaskKind::regression) {
    const auto v = logits.to_floats();
    return {v.begin(), v.end()};
  }
  const auto classes = argmax_rows(logits);
  return {classes.begin(), classes.end()};
}

Scores evaluate(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const std::vector<data::LabeledBatch>& batches,
                const std::string& metric, const std::vector<std::string>& label_names) {
  NoGradGuard no_grad;
  std::vector<std::int64_t> predicted, gold;
  std::vector<double> values, targets;
  double loss_sum = 0, token_count = 0;
  std::vector<std::vector<std::string>> predicted_tags, gold_tags;  // token classification, per sentence
  for (const auto& b : batches) {
    const Tensor logits = task_logits(backbone, hooks, head, b.batch, false);
    const Tensor loss = head.loss(logits, b.labels);
    switch (head.config().kind) {
      case TaskKind::classification: {
        const auto p = argmax_rows(logits), g = b.labels.to_ints();
        predicted.insert(predicted.end(), p.begin(), p.end());
        gold.insert(gold.end(), g.begin(), g.end());
        loss_sum += loss.item() * static_cast<double>(g.size());
        break;
      }
      case TaskKind::regression: {
        const auto p = logits.to_floats(), g = b.labels.to_floats();
        values.insert(values.end(), p.begin(), p.end());
        targets.insert(targets.end(), g.begin(), g.end());
        loss_sum += loss.item() * static_cast<double>(g.size());
        break;
      }
      case TaskKind::causal_lm: {
        // Predicted tokens: every label after the first that is not padding.
        const auto labels = b.labels.to_ints();
        const std::int64_t B = b.labels.dim(0), T = b.labels.dim(1);
        double counted = 0;
        for (std::int64_t r = 0; r < B; ++r)
          for (std::int64_t t = 1; t < T; ++t) counted += labels[r * T + t] != -100;
        loss_sum += loss.item() * counted;
        token_count += counted;
        break;
      }
      case TaskKind::token_classification: {
        const auto p = argmax_rows(logits), g = b.labels.to_ints();
        const std::int64_t T = b.labels.dim(1);
        for (std::int64_t r = 0; r < b.labels.dim(0); ++r) {
          auto& pt = predicted_tags.emplace_back();
          auto& gt = gold_tags.emplace_back();
          for (std::int64_t t = 0; t < T; ++t) {
            const std::size_t i = static_cast<std::size_t>(r * T + t);
            if (g[i] == -100) continue;
            predicted.push_back(p[i]), gold.push_back(g[i]);
            if (!label_names.empty()) pt.push_back(label_names.at(p[i])), gt.push_back(label_names.at(g[i]));
          }
        }
        loss_sum += loss.item();
        break;
      }
    }
  }
  Scores s;
  const double rows = static_cast<double>(std::max<std::size_t>(std::max(gold.size(), targets.size()), 1));
  switch (head.config().kind) {
    case TaskKind::classification:
      s.values["accuracy"] = accuracy(predicted, gold);
      s.values["loss"] = loss_sum / rows;
      if (head.config().num_labels == 2) {
        s.values["f1"] = f1_binary(predicted, gold);
        s.values["matthews"] = matthews(predicted, gold);
      }
      s.headline = metric == "matthews" ? "matthews" : metric == "f1" ? "f1_accuracy" : "accuracy";
      if (metric == "f1") s.values["f1_accuracy"] = (s.values["f1"] + s.values["accuracy"]) / 2;
      break;
    case TaskKind::regression:
      s.values["pearson"] = pearson(values, targets);
      s.values["spearman"] = spearman(values, targets);
      s.values["pearson_spearman"] = (s.values["pearson"] + s.values["spearman"]) / 2;
      s.values["loss"] = loss_sum / rows;
      s.headline = "pearson_spearman";
      break;
    case TaskKind::causal_lm:
      s.values["loss"] = token_count ? loss_sum / token_count : 0;
      s.values["perplexity"] = perplexity(s.values["loss"]);
      s.headline = "perplexity";
      s.higher_is_better = false;
      break;
    case TaskKind::token_classification:
      s.values["token_accuracy"] = accuracy(predicted, gold);
      s.values["loss"] = loss_sum / static_cast<double>(std::max<std::size_t>(batches.size(), 1));
      s.headline = "token_accuracy";
      if (!label_names.empty()) {
        s.values["entity_f1"] = entity_f1(predicted_tags, gold_tags);
        s.headline = "entity_f1";
      }
      break;
  }
  return s;
}

}  // namespace graft::train
