// Translating between graft's site selection and Hugging Face PEFT's LoraConfig
// (target_modules / layers_to_transform), so adapters move both ways.
#pragma once
#include <string>
#include <vector>

#include "graft/site.h"

namespace graft::lora {


// PEFT's reading of a string target_modules: a regular expression that must match a
// module's whole name in the checkpoint. The linear sites among `candidates` it selects.
std::vector<const Site*> regex_select(const std::string& pattern, const std::vector<const Site*>& candidates);

// target_modules and layers_to_transform (JSON texts) under which PEFT selects exactly
// `selected` among the backbone's sites: a list of module-name suffixes ("query",
// "q_proj", "intermediate.dense") when each chosen module has one that names it and
// nothing else, and the selection is those modules in some layers; otherwise a regex
// over the full module names (PEFT ignores layers_to_transform then: it is null).
struct PeftTargets {
  std::string target_modules;
  std::string layers_to_transform;
};
PeftTargets peft_targets(const std::vector<Site>& sites, const std::vector<const Site*>& selected);

// "0-5", "0, 2, 4-5": the layers of `selected`, compressed into ranges.
std::string layer_ranges(const std::vector<const Site*>& selected);

}  // namespace graft::lora
