// One task's forward pass: the shared frozen backbone, the selected adapters as its
// site hooks, and the task head.
#pragma once
#include "data/batching.h"
#include "graft/backbone.h"
#include "peft/adapter_set.h"
#include "train/task_head.h"

namespace graft::train {

// Logits of `head` for `batch` (see TaskHead::forward for shapes). `hooks` (the selected adapters) may be
// null (the bare backbone). `training` turns dropout on in the backbone and the head.
Tensor task_logits(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const Batch& batch, bool training);
// The head's loss for a labelled batch.
Tensor task_loss(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const data::LabeledBatch& batch,
                 bool training);

}  // namespace graft::train
