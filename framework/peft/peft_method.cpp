// Defaults of the PEFT method and hook interfaces that plugins inherit.
#include <fmt/format.h>

#include <cstring>

#include "graft/error.h"
#include "graft/ops.h"
#include "graft/peft.h"

namespace graft {

Tensor Rows::gate(const Tensor& delta) const {
  if (all()) return delta;
  Shape shape(delta.ndim(), 1);
  shape[0] = delta.dim(0);
  return ops::mul(delta, mask.view(shape));
}

std::vector<std::int64_t> ForwardHooks::prefix_offsets(std::int64_t batch) const {
  if (prefix_all_ == 0 && prefix_rows_.empty()) return {};
  if (!prefix_rows_.empty() && static_cast<std::int64_t>(prefix_rows_.size()) != batch)
    throw ShapeError("peft", fmt::format("the per-row selection names {} rows, the batch has {}", prefix_rows_.size(), batch),
                     "give one adapter name (or \"\") per batch row");
  std::vector<std::int64_t> out(static_cast<std::size_t>(batch), prefix_all_);
  for (std::size_t b = 0; b < prefix_rows_.size(); ++b) out[b] += prefix_rows_[b];
  return out;
}

std::vector<std::pair<std::string, Tensor>> PeftMethod::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& p : parameters()) out.emplace_back(p.name, p.tensor);
  return out;
}

void PeftMethod::load_state(const std::map<std::string, Tensor>& tensors) {
  const auto params = parameters();
  // Check everything before changing anything: a failed load leaves the adapter as it was.
  for (const auto& p : params) {
    auto it = tensors.find(p.name);
    if (it == tensors.end())
      throw FormatError("adapter", fmt::format("the saved adapter has no tensor '{}'", p.name),
                        "the file was saved by another method or another configuration");
    if (it->second.shape() != p.tensor.shape())
      throw FormatError("adapter", fmt::format("tensor '{}' has shape {}, the adapter expects {}", p.name,
                                               shape_str(it->second.shape()), shape_str(p.tensor.shape())),
                        "the adapter was trained on another backbone or with another config");
  }
  if (tensors.size() != params.size()) {
    for (const auto& [name, t] : tensors) {
      bool known = false;
      for (const auto& p : params) known = known || p.name == name;
      if (!known)
        throw FormatError("adapter", fmt::format("the saved adapter has a tensor '{}' this configuration does not create", name),
                          "check adapter_config.json against the file");
    }
  }
  for (const auto& p : params) {
    const Tensor src = ops::to_dtype(tensors.at(p.name), DType::f32);
    std::memcpy(p.tensor.raw(), src.raw(), p.tensor.nbytes());
  }
}

}  // namespace graft
