#include "train/task_model.h"

namespace graft::train {

Tensor task_logits(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const Batch& batch, bool training) {
  Tensor key_mask;
  const Tensor hidden = backbone.forward(batch, hooks, &key_mask, training);
  return head.forward(hidden, key_mask, batch.input_ids.dim(1), training);
}

Tensor task_loss(const Backbone& backbone, ForwardHooks* hooks, const TaskHead& head, const data::LabeledBatch& batch,
                 bool training) {
  return head.loss(task_logits(backbone, hooks, head, batch.batch, training), batch.labels);
}

}  // namespace graft::train
