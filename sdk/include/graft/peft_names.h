// Hugging Face PEFT's names, shared by the plugins that read and write its files:
// tensor names ("base_model.model.<module>.<suffix>") and target_modules, which PEFT
// reads as a full-match regex over module names (a string) or as name suffixes (a list).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graft/peft.h"
#include "graft/site.h"
#include "graft/tensor.h"

namespace graft::peft {

// base_model_name_or_path: the last part of the backbone's source path ("all-MiniLM-L6-v2").
std::string base_model_name(const std::string& source);

// "base_model.model." + site.checkpoint_module + "." + suffix ("lora_A.weight", "ia3_l").
std::string tensor_name(const Site& site, const std::string& suffix);

// The name under which `tensors` holds `want`: itself, or else the one name whose module
// is want's with a prefix added or dropped (PEFT names tensors after the model it wrapped:
// "bert.encoder…" for BertForSequenceClassification, "encoder…" for BertModel); "" when
// there is none or more than one.
std::string saved_name(const std::string& want, const std::map<std::string, Tensor>& tensors);

// `tensors` renamed for loading `params`: each parameter's saved_name under its own
// name, every other tensor as it is (PeftMethod::load_state then reports it as extra).
std::map<std::string, Tensor> resolve_names(const std::vector<nn::NamedParameter>& params,
                                            const std::map<std::string, Tensor>& tensors);

// PEFT's list matching: `module` equals `target` or ends with "." + target.
bool suffix_match(const std::string& module, const std::string& target);

// The sites among `candidates` whose checkpoint_module matches `pattern` whole (PEFT's
// re.fullmatch). A pattern std::regex could not handle safely (back-references, huge
// counts, too many terms) is a ConfigError naming `key`; one that does not compile
// matches nothing.
std::vector<const Site*> regex_select(const std::string& pattern, const std::vector<const Site*>& candidates,
                                      const std::string& key = "target_modules");

// A string target_modules as graft reads it: "all-linear" is every linear site; else
// graft's names (AttachContext::select), and failing those PEFT's regex. When neither
// selects a site, select's ConfigError (listing the backbone's sites).
std::vector<const Site*> select_linear(const AttachContext& context, const std::string& target,
                                       const std::vector<std::int64_t>& layers = {},
                                       const std::string& key = "target_modules");

// The shortest layer-independent suffix of `module`'s checkpoint names that PEFT's list
// matching finds on that module's sites and on no other of `linear`; "" if none.
std::string module_suffix(const std::vector<const Site*>& linear, const std::string& module);

// "(a\.b|c\.d)": a regex matching exactly the sites' checkpoint names (not JSON-quoted).
std::string names_regex(const std::vector<const Site*>& sites);

// target_modules and layers_to_transform (JSON texts) under which PEFT selects exactly
// `selected` among the backbone's linear sites: a list of module suffixes when each
// module has one and the selection is those modules in some layers; otherwise a regex
// over full module names (layers_to_transform null, as PEFT ignores it then).
struct Targets {
  std::string target_modules;
  std::string layers_to_transform;
};
Targets targets(const std::vector<Site>& sites, const std::vector<const Site*>& selected);

// "0-5", "0, 2, 4-5": the layers of `selected` as ranges, for descriptions.
std::string layer_ranges(const std::vector<const Site*>& selected);

}  // namespace graft::peft
