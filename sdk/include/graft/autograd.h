// Reverse-mode autograd. Every op implements one contract:
//   forward(inputs) -> outputs
//   backward(inputs, outputs, grad_outputs, needs_grad) -> one gradient per input,
//   defined only where needs_grad is true.
// `apply` runs an op and records a node only when grad mode is on and some input
// requires a gradient, so frozen branches never enter the tape.
#pragma once
#include <memory>
#include <string_view>
#include <vector>

#include "graft/tensor.h"

namespace graft {

class Op {
 public:
  virtual ~Op() = default;
  virtual std::string_view name() const = 0;
  virtual std::vector<Tensor> forward(const std::vector<Tensor>& inputs) = 0;
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& inputs,
                                       const std::vector<Tensor>& outputs,
                                       const std::vector<Tensor>& grad_outputs,
                                       const std::vector<bool>& needs_grad) = 0;
};

// Which inputs an op's backward reads. An op that implements this beside Op lets the
// tape keep only those inputs' values; every other input is kept as a stand-in (shape,
// dtype, producer: enough to route its gradient) without its storage, so an activation
// is freed as soon as nothing else holds it. An op without it keeps every input.
class SavesInputs {
 public:
  virtual ~SavesInputs() = default;
  // Whether backward reads the values of input i, given which inputs need a gradient.
  virtual bool reads_input(std::size_t i, const std::vector<bool>& needs_grad) const = 0;
};

struct Node {
  std::shared_ptr<Op> op;
  // What backward gets. An input whose values backward does not read (the op says so,
  // see SavesInputs) is kept as a stand-in with its shape, dtype
  // and producer but no storage, so the activation is freed once nothing else holds it.
  std::vector<Tensor> inputs;
  std::vector<int> input_slots;  // which output of its producer each input is (-1: none)
  std::vector<std::weak_ptr<TensorImpl>> outputs;  // weak: outputs own the node
  std::vector<Shape> output_shapes;
  std::vector<bool> needs_grad;
};

namespace autograd {

// Runs `op` on `inputs`; records it on the tape when some input needs a gradient.
std::vector<Tensor> apply(std::shared_ptr<Op> op, std::vector<Tensor> inputs);
Tensor apply1(std::shared_ptr<Op> op, std::vector<Tensor> inputs);

// True while an op's forward runs on the tape: ops then pick forward_training and
// keep what backward needs; otherwise they run forward_inference.
bool recording();
bool grad_enabled();

// Gradients flow from `root` (seeded with ones when `seed` is undefined) to every leaf
// that requires a gradient; leaf gradients accumulate across calls (micro-batches).
void backward(const Tensor& root, const Tensor& seed = Tensor());

}  // namespace autograd

// Inference scope: nothing is recorded while one is alive.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Training scope: Backbone::forward(..., training = true) holds one, so PEFT modules
// apply their own dropout exactly when the backbone applies its own (PyTorch's
// module.train() / eval()); recording gradients alone does not mean training.
class TrainingModeGuard {
 public:
  explicit TrainingModeGuard(bool training);
  ~TrainingModeGuard();
  TrainingModeGuard(const TrainingModeGuard&) = delete;
  TrainingModeGuard& operator=(const TrainingModeGuard&) = delete;

 private:
  bool previous_;
};
// True inside a training forward pass (see TrainingModeGuard).
bool training_mode();

}  // namespace graft
