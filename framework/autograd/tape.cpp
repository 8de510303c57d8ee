#include <fmt/format.h>

#include <map>
#include <unordered_map>
#include <unordered_set>


#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"

namespace graft {
namespace {

thread_local bool g_grad_enabled = true;
thread_local bool g_recording = false;
thread_local bool g_training = false;

struct RecordingScope {
  bool previous;
  explicit RecordingScope(bool on) : previous(g_recording) { g_recording = on; }
  ~RecordingScope() { g_recording = previous; }
};

// Nodes reachable from `root`, each after every node that consumes its outputs.
std::vector<Node*> reverse_topological(Node* root) {
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
  seen.insert(root);
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& input = node->inputs[next++];
      Node* child = input.defined() ? input.node().get() : nullptr;
      if (child && seen.insert(child).second) stack.emplace_back(child, 0);
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

// Gradients in flight, by (producer, output index): an input kept as a stand-in is
// another TensorImpl than the output it stands for, and the output itself may be gone.
using GradKey = std::pair<const Node*, int>;
using Grads = std::map<GradKey, Tensor>;

void accumulate(Grads& grads, const GradKey& key, const Tensor& target, Tensor g) {
  if (g.shape() != target.shape())
    throw ShapeError("autograd", fmt::format("gradient of shape {} for a tensor of shape {}",
                                             shape_str(g.shape()), shape_str(target.shape())),
                     "an op's backward returned a gradient of the wrong shape");
  auto [it, inserted] = grads.try_emplace(key, g);
  if (!inserted) it->second = ops::add(it->second, g);
}

// Which output of its producer `t` is.
int slot_of(const Tensor& t) {
  const Node* producer = t.node().get();
  if (!producer) return -1;
  for (std::size_t j = 0; j < producer->outputs.size(); ++j)
    if (producer->outputs[j].lock().get() == t.impl()) return static_cast<int>(j);
  throw Error("autograd", "a recorded tensor is not among its producer's outputs", "this is a bug in graft's tape");
}

// Shape, dtype and producer of `t`, without its values.
Tensor stand_in(const Tensor& t) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = t.shape();
  impl->dtype = t.dtype();
  impl->requires_grad = t.requires_grad();
  impl->node = t.node();
  return Tensor(std::move(impl));
}

// Adds `g` into a leaf's .grad, which persists across backward calls (micro-batches).
void accumulate_leaf(const Tensor& leaf, const Tensor& g) {
  Tensor current = leaf.grad();
  if (!current.defined()) {
    leaf.set_grad(g.dtype() == DType::f32 ? g.clone() : ops::to_dtype(g, DType::f32));
    return;
  }
  float* dst = current.data<float>();
  const Tensor add = g.dtype() == DType::f32 ? g : ops::to_dtype(g, DType::f32);
  const float* src = add.data<float>();
  const std::int64_t n = current.numel();
#pragma omp parallel for if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }
TrainingModeGuard::TrainingModeGuard(bool training) : previous_(g_training) { g_training = training; }
TrainingModeGuard::~TrainingModeGuard() { g_training = previous_; }
bool training_mode() { return g_training; }

namespace autograd {

bool recording() { return g_recording; }
bool grad_enabled() { return g_grad_enabled; }

std::vector<Tensor> apply(std::shared_ptr<Op> op, std::vector<Tensor> inputs) {
  std::vector<bool> needs(inputs.size(), false);
  bool any = false;
  if (g_grad_enabled) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      needs[i] = inputs[i].defined() && inputs[i].requires_grad();
      any = any || needs[i];
    }
  }
  std::vector<Tensor> outputs;
  {
    // An op's forward is one step on the tape: ops it calls internally record nothing.
    RecordingScope scope(any);
    NoGradGuard inner;
    outputs = op->forward(inputs);
  }
  if (!any) return outputs;

  auto node = std::make_shared<Node>();
  const auto* saves = dynamic_cast<const SavesInputs*>(op.get());
  node->input_slots.resize(inputs.size(), -1);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].node()) continue;  // leaves and constants stay as they are
    node->input_slots[i] = slot_of(inputs[i]);
    if (saves && !saves->reads_input(i, needs)) inputs[i] = stand_in(inputs[i]);
  }
  node->op = std::move(op);
  node->inputs = std::move(inputs);
  node->needs_grad = std::move(needs);
  for (auto& out : outputs) {
    // An op may hand back an input unchanged (a no-op reshape): give it its own impl
    // so that the input's producer is not overwritten.
    if (out.node() || out.requires_grad()) out = out.view(out.shape());
    out.impl()->node = node;
    out.impl()->requires_grad = true;
    node->outputs.push_back(out.impl_ptr());
    node->output_shapes.push_back(out.shape());
  }
  return outputs;
}

Tensor apply1(std::shared_ptr<Op> op, std::vector<Tensor> inputs) {
  return apply(std::move(op), std::move(inputs)).at(0);
}

void backward(const Tensor& root, const Tensor& seed) {
  if (!root.requires_grad())
    throw Error("autograd", "backward() on a tensor that does not require a gradient",
                "no input of this computation was trainable; mark parameters with set_requires_grad(true)");
  Tensor start = seed;
  if (!start.defined()) {
    if (root.numel() != 1)
      throw ShapeError("autograd", fmt::format("backward() without a seed on a tensor of shape {}", shape_str(root.shape())),
                       "reduce to a scalar loss first, or pass a seed gradient");
    start = Tensor::full(root.shape(), 1.f);
  }
  NoGradGuard no_grad;
  if (!root.node()) {
    accumulate_leaf(root, start);
    return;
  }
  Grads grads;
  grads.emplace(GradKey{root.node().get(), slot_of(root)}, start);
  for (Node* node : reverse_topological(root.node().get())) {
    std::vector<Tensor> outputs, grad_outputs;
    bool any_grad = false;
    for (std::size_t j = 0; j < node->outputs.size(); ++j) {
      Tensor g;
      auto found = grads.find(GradKey{node, static_cast<int>(j)});
      if (found != grads.end()) {
        g = found->second;
        grads.erase(found);  // consumed: free it early
        any_grad = true;
      } else {
        g = Tensor::zeros(node->output_shapes[j]);
      }
      outputs.push_back(Tensor(node->outputs[j].lock()));  // undefined once nothing holds it
      grad_outputs.push_back(g);
    }
    if (!any_grad) continue;
    std::vector<Tensor> input_grads = node->op->backward(node->inputs, outputs, grad_outputs, node->needs_grad);
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->needs_grad[i]) continue;
      if (i >= input_grads.size() || !input_grads[i].defined())
        throw Error("autograd", fmt::format("op '{}' returned no gradient for input {}", node->op->name(), i),
                    "backward must return a gradient for every input whose needs_grad is true");
      const Tensor& input = node->inputs[i];
      if (input.node()) accumulate(grads, GradKey{input.node().get(), node->input_slots[i]}, input, input_grads[i]);
      else {
        if (input_grads[i].shape() != input.shape())
          throw ShapeError("autograd", fmt::format("op '{}' returned a gradient of shape {} for an input of shape {}",
                                                   node->op->name(), shape_str(input_grads[i].shape()), shape_str(input.shape())));
        accumulate_leaf(input, input_grads[i]);
      }
    }
  }
}

}  // namespace autograd
}  // namespace graft
