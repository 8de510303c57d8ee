// The arithmetic of merging adapters (Session::merge_adapters, `graft merge`) on their
// saved tensors, named as PEFT names them:
//   LoRA / DoRA  PEFT 0.10.0's add_weighted_adapter, combination by combination
//                (peft/tuners/lora/model.py and peft/utils/merge_utils.py), so the new
//                adapter's tensors equal PEFT's within float rounding;
//   other methods (bottleneck adapters)  AdapterHub's average_adapter: the weights
//                normalised to sum 1, every tensor their weighted sum.
// Every refusal names the adapters and the key or tensor at fault.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graft/merge.h"
#include "graft/tensor.h"

namespace graft {

struct MergeSource {
  std::string name;         // how errors name it
  std::string method;       // plugin name
  std::string config_json;  // the validated config it was created with
  std::map<std::string, Tensor> tensors;  // its state()
  double weight = 1;
};

struct MergeResult {
  std::string method, config_json;
  std::map<std::string, Tensor> tensors;
  // DoRA: the magnitudes are not in `tensors`; as in PEFT, the new adapter keeps the
  // ones its own init computes (the frozen rows' norms ‖W‖), so the caller attaches the
  // new config and takes them from the fresh method.
  bool fresh_magnitudes = false;
};

MergeResult merge_adapter_tensors(const std::vector<MergeSource>& sources, const MergeOptions& options);

// The best rank-`rank` approximation of `m` (row-major [rows, cols]) as us = U·diag(S)
// [rows, rank] and vh = Vh [rank, cols], as PEFT's svd merge takes them from
// torch.linalg.svd. Each component's sign is fixed so that the largest |value| of its
// Vh row is positive (SVD factors are otherwise unique only up to that sign). Eigen's
// BDCSVD in double (train/low_rank.cpp).
void truncated_svd(const std::vector<double>& m, std::int64_t rows, std::int64_t cols, std::int64_t rank,
                   std::vector<double>& us, std::vector<double>& vh);

}  // namespace graft
