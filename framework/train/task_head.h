// Task heads: the small trainable layer every task adds on top of the backbone, saved
// with the adapter. Classification and regression pool the sequence; token
// classification labels every token; causal LM reuses the backbone's frozen LM head.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graft/task.h"
#include "graft/backbone.h"
#include "graft/nn.h"

namespace graft {

class TaskHead {
 public:
  TaskHead(HeadConfig config, const Backbone& backbone, std::uint64_t seed);

  // hidden [B, T', H] with key mask [B, T']; `tokens` = T, the real tokens (T' − T
  // virtual tokens at the front are dropped first). Returns [B, C] for sequence tasks,
  // [B, T, C] for token classification, [B, T, vocab] for causal LM.
  Tensor forward(const Tensor& hidden, const Tensor& key_mask, std::int64_t tokens, bool training) const;
  // classification: i64 [B]; regression: f32 [B]; token classification: i64 [B, T]
  // (-100 ignored); causal LM: the input ids [B, T] with padding as -100.
  Tensor loss(const Tensor& logits, const Tensor& labels) const;

  std::vector<nn::NamedParameter> parameters() const;
  const HeadConfig& config() const { return config_; }

 private:
  HeadConfig config_;
  const Backbone& backbone_;
  Tensor weight_, bias_;
};

}  // namespace graft
