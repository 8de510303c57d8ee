// The PEFT method interface: what a plugin implements, and what the host gives it.
//
// A method is attached to a backbone under an adapter name. In attach() it looks at the
// backbone's sites, creates its parameters and registers one AdapterHook (graft/site.h)
// per site it acts on. During a forward pass the host calls those hooks for the
// adapters the batch selected — for all rows, or, with per-row selection, for some rows
// only (`rows`).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/backbone.h"
#include "graft/config.h"
#include "graft/nn.h"
#include "graft/site.h"
#include "graft/tensor.h"

namespace graft {

// Given to attach(): the backbone, the sites this method was pointed at, and the means
// to register hooks.
class AttachContext {
 public:
  virtual ~AttachContext() = default;
  virtual const std::string& adapter_name() const = 0;
  virtual const Backbone& backbone() const = 0;
  // Sites of `kind` matching `patterns` (site names, module names or globs such as
  // "layers.0-5.*", "query"). An empty pattern list means every site of that kind.
  // A pattern that matches nothing is a ConfigError listing the backbone's sites.
  virtual std::vector<const Site*> select(SiteKind kind, const std::vector<std::string>& patterns,
                                          const std::vector<std::int64_t>& layers = {}) const = 0;
  virtual void register_hook(const Site& site, std::shared_ptr<AdapterHook> hook) = 0;
  // attention_kv: the hook at `site` prepends `length` key/value rows (prefix tuning).
  // Declared here, not asked during the forward pass, so the host can number each row's
  // tokens after its prefixes before the pass starts; a hook that prepends another
  // number of rows is an error.
  virtual void declare_prefix(const Site& site, std::int64_t length) = 0;
  // The seed for this adapter's initialisation (from the run's seed and the name).
  virtual std::uint64_t seed() const = 0;
  // Ids of `text` as the backbone's tokenizer encodes one input, special tokens included
  // (Hugging Face's tokenizer(text)["input_ids"]); a ConfigError when the host has no
  // tokenizer for this backbone.
  virtual std::vector<std::int64_t> tokenize(const std::string& text) const = 0;
};

class PeftMethod {
 public:
  virtual ~PeftMethod() = default;
  // Creates parameters and registers hooks. Called once.
  virtual void attach(AttachContext& context) = 0;
  // The trainable parameters, named as they are saved.
  virtual std::vector<nn::NamedParameter> parameters() const = 0;
  // One line: what was added where ("LoRA r=8 on 12 sites (query, value), 73,728 params").
  virtual std::string describe() const = 0;

  // adapter_config.json for this adapter (Hugging Face PEFT's keys where PEFT has the
  // method; `peft_type` names it).
  virtual std::string adapter_config_json() const = 0;
  // Tensors saved in adapter_model.safetensors. Default: parameters() by name.
  virtual std::vector<std::pair<std::string, Tensor>> state() const;
  // Restores from saved tensors (after attach). Default: copies by name, checking
  // every name and shape; a missing or extra tensor is a FormatError.
  virtual void load_state(const std::map<std::string, Tensor>& tensors);

  // For merging (AdapterSet::merge): the change this adapter makes to the frozen weight
  // of linear `site`, f32 [out, in], such that (W + Δ) x + b equals what its hook
  // returns. The host adds it to W and restores W's bits on unmerge; the method never
  // writes the backbone. Undefined (the default): the hook keeps running at that site.
  virtual Tensor delta_weight(const Site& site) const { return Tensor(); }
};

}  // namespace graft
