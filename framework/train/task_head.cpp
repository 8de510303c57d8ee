#include "train/task_head.h"

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/ops.h"
#include "train/pooling.h"

namespace graft {

TaskHead::TaskHead(HeadConfig config, const Backbone& backbone, std::uint64_t seed) : config_(config), backbone_(backbone) {
  if (config_.kind == TaskKind::regression) config_.num_labels = 1;
  if (config_.kind == TaskKind::causal_lm) return;
  if (config_.num_labels < 1) throw ConfigError("head", fmt::format("num_labels {} must be at least 1", config_.num_labels));
  if (config_.num_labels > kMaxLabels)  // before allocating num_labels x hidden weights
    throw ConfigError("head", fmt::format("num_labels {} is more than {} classes", config_.num_labels, kMaxLabels),
                      "a classification head has one row per class: is the head's num_labels corrupt?");
  // As Hugging Face initialises classifiers: N(0, 0.02²) weights, zero bias.
  weight_ = nn::parameter({config_.num_labels, backbone.info().hidden_size}, 0.02f, seed);
  bias_ = nn::zeros_parameter({config_.num_labels});
}

std::vector<nn::NamedParameter> TaskHead::parameters() const {
  if (config_.kind == TaskKind::causal_lm) return {};
  return {{"classifier.weight", weight_}, {"classifier.bias", bias_}};
}

Tensor TaskHead::forward(const Tensor& hidden, const Tensor& key_mask, std::int64_t tokens, bool training) const {
  const std::int64_t total = hidden.dim(1);
  if (tokens > total) throw ShapeError("head", fmt::format("{} real tokens but only {} hidden states", tokens, total));
  const Tensor h = total == tokens ? hidden : ops::slice(hidden, 1, total - tokens, tokens);
  const Tensor mask = key_mask.dim(1) == tokens ? key_mask : ops::slice(key_mask, 1, total - tokens, tokens);
  switch (config_.kind) {
    case TaskKind::causal_lm: return backbone_.lm_logits(h);
    case TaskKind::token_classification: return ops::linear(ops::dropout(h, config_.dropout, training), weight_, bias_);
    default: {
      const Tensor pooled = train::pool(h, mask, config_.pooling);
      return ops::linear(ops::dropout(pooled, config_.dropout, training), weight_, bias_);
    }
  }
}

Tensor TaskHead::loss(const Tensor& logits, const Tensor& labels) const {
  switch (config_.kind) {
    case TaskKind::classification: return ops::cross_entropy(logits, labels);
    case TaskKind::regression: return ops::mse(ops::reshape(logits, {logits.dim(0)}), labels);
    case TaskKind::token_classification:
      return ops::cross_entropy(ops::reshape(logits, {-1, logits.dim(-1)}), ops::reshape(labels, {-1}));
    case TaskKind::causal_lm: {
      // Position t predicts token t+1.
      const std::int64_t B = logits.dim(0), T = logits.dim(1), V = logits.dim(2);
      if (T < 2) throw ShapeError("head", "causal LM loss needs sequences of at least 2 tokens");
      Tensor predictions = ops::reshape(ops::slice(logits, 1, 0, T - 1), {B * (T - 1), V});
      Tensor targets = ops::reshape(ops::slice(labels, 1, 1, T - 1), {B * (T - 1)});
      return ops::cross_entropy(predictions, targets);
    }
  }
  return Tensor();
}

}  // namespace graft
