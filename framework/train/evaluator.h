// Scores a model (backbone + selected adapters + head) on labelled batches with the
// metrics of the task, without gradients.
#pragma once
#include <vector>

#include "data/batching.h"
#include "data/dataset.h"
#include "peft/adapter_set.h"
#include "train/task_head.h"
#include "train/metrics.h"

namespace graft::train {

// `metric` is the dataset's headline metric name (data::Dataset::metric); token
// classification needs the tag names (data::Dataset::label_names) for entity F1.
Scores evaluate(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const std::vector<data::LabeledBatch>& batches,
                const std::string& metric, const std::vector<std::string>& label_names = {});

// Predicted class per row (classification), value per row (regression).
// What a head predicts from its logits: class indices, or regression values.
std::vector<double> predictions(const TaskHead& head, const Tensor& logits);
std::vector<double> predict(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const Batch& batch);

}  // namespace graft::train
