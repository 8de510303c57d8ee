// Merging adapters into a new one (Session::merge_adapters, `graft merge`):
// LoRA and DoRA adapters as Hugging Face PEFT's add_weighted_adapter combines them, and
// bottleneck adapters of one shape averaged as AdapterHub's average_adapter does.
// docs/composition.md ("Merging") says what each combination computes.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace graft {

struct MergeOptions {
  // LoRA/DoRA (PEFT's combination_type): linear, cat, svd, ties, ties_svd, dare_linear,
  // dare_ties, dare_linear_svd, dare_ties_svd, magnitude_prune, magnitude_prune_svd.
  // Other methods (bottleneck adapters): average.
  std::string combination = "linear";
  // The fraction of values kept, in (0, 1]: ties, dare_* and magnitude_prune need it.
  std::optional<double> density;
  std::string majority_sign = "total";  // ties / dare_ties: total or frequency (PEFT's majority_sign_method)
  std::int64_t svd_rank = 0;            // *svd: the new rank; 0 = the largest input rank (PEFT's default)
  // DARE divides what it keeps by the density (Yu et al. 2024; PEFT after
  // huggingface/peft#3152). false: as PEFT 0.10.0, which computes the division and
  // drops it.
  bool dare_rescale = true;
  std::uint64_t seed = 0;  // DARE's masks
  // Whose task head the merged adapter keeps: one of the inputs' names, or "" (none).
  std::string head;
  // DARE's keep-masks (1 keep, 0 drop; `numel` values) for `tensor` of input `adapter`,
  // where `tensor` is the input's PEFT tensor name (…lora_A.weight, …lora_B.weight; for
  // the *_svd combinations "<module>.delta_weight"). Unset: Bernoulli(density) draws from
  // a stream of `seed`, the adapter and the tensor name. Tests pass the masks PEFT drew.
  std::function<std::vector<float>(const std::string& adapter, const std::string& tensor, std::size_t numel)> dare_mask;
};

// The combinations MergeOptions::combination accepts, in the order --help lists them.
const std::vector<std::string>& merge_combinations();

}  // namespace graft
