// What a task is, as the Session API and the data readers see it: its kind, how a
// sequence is pooled for it, and the head it needs.
#pragma once
#include <cstdint>
#include <string>

namespace graft {

enum class TaskKind { classification, regression, token_classification, causal_lm };
TaskKind parse_task_kind(const std::string& name);
const char* task_kind_name(TaskKind kind);

// More classes than any classification task has; a head beyond it is a corrupt file.
constexpr std::int64_t kMaxLabels = 1 << 16;

// From token states to one vector per sequence. mean: average over the key mask
// (sentence-transformers' mean pooling); cls: the first token (BERT's [CLS]); last:
// the last real token (decoders).
enum class Pooling { mean, cls, last };
Pooling parse_pooling(const std::string& name);
const char* pooling_name(Pooling pooling);

// The trainable head a task adds on top of the backbone.
struct HeadConfig {
  TaskKind kind = TaskKind::classification;
  std::int64_t num_labels = 2;  // 1 for regression; unused for causal_lm
  Pooling pooling = Pooling::mean;
  float dropout = 0.1f;
};

}  // namespace graft
