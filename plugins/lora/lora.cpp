// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") as a
// graft plugin, in Hugging Face PEFT's format: at each chosen linear site
//   y = x Wᵀ + b + scaling · (dropout(x) Aᵀ) Bᵀ,   A [r, in], B [out, r],
// scaling = lora_alpha / r (or lora_alpha / √r with rsLoRA). A starts kaiming-uniform
// and B at zero, as in PEFT, so a fresh adapter leaves the backbone's outputs unchanged.
// Config keys, tensor names and adapter_config.json are PEFT's LoraConfig's, so an
// adapter saved by either tool loads in the other.
//
// With use_dora, DoRA (dora.h) as PEFT 0.10 does it: a magnitude vector per site,
// saved as `...lora_magnitude_vector`.
//
// Merging is the host's (AdapterSet::merge): this plugin only says what to add to each
// frozen weight, delta_weight = scaling·B·A (DoRA: g ⊙ (W + scaling·B·A) − W), and never
// writes the backbone.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/init.h"
#include "graft/ops.h"
#include "graft/peft_names.h"
#include "graft/plugin.h"
#include "graft/text.h"
#include "dora.h"

namespace {

using graft::json_string;
using graft::thousands;
using namespace graft;

// PEFT LoraConfig's keys. Those graft does not implement are accepted at their neutral
// value only (what PEFT writes by default), so PEFT's files load and anything else is
// a clear error.
constexpr const char* kSchema = R"schema({
  "type": "object",
  "properties": {
    "r": {"type": "integer", "default": 8, "minimum": 1, "description": "rank of the update B·A"},
    "lora_alpha": {"type": "number", "default": 8, "description": "scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora)"},
    "lora_dropout": {"type": "number", "default": 0, "minimum": 0, "maximum": 1, "description": "dropout on the LoRA branch's input, in [0, 1)"},
    "target_modules": {"type": ["array", "string", "null"], "items": {"type": "string"}, "default": ["query", "value"],
      "description": "linear sites: graft names (query, attention.query, ffn.up, layers.0-5.*) or checkpoint module names (q_proj, intermediate.dense); a single string that names no site is read as PEFT does, a regex over full module names; \"all-linear\" takes every linear site"},
    "layers_to_transform": {"type": ["integer", "array", "null"], "items": {"type": "integer"}, "default": null, "description": "layer indices; null = all"},
    "layers_pattern": {"type": ["string", "array", "null"], "default": null, "description": "ignored: graft numbers the layers of its backbones itself"},
    "use_rslora": {"type": "boolean", "default": false, "description": "rank-stabilised scaling lora_alpha / sqrt(r)"},
    "init_lora_weights": {"type": ["boolean", "string"], "enum": [true, false, "gaussian"], "default": true,
      "description": "true: A kaiming-uniform, B zero; \"gaussian\": A ~ N(0, 1/r²), B zero; false: both as nn.Linear (B non-zero). Initialisations that rewrite the base weights (pissa, olora, loftq) are not supported"},
    "bias": {"type": "string", "enum": ["none"], "default": "none", "description": "graft trains no biases of the backbone"},
    "fan_in_fan_out": {"type": "boolean", "enum": [false], "default": false, "description": "graft's linear weights are [out, in]"},
    "use_dora": {"type": "boolean", "default": false, "description": "DoRA (Liu et al. 2024): a learned magnitude per output times the row-normalised W + scaling·B·A, as PEFT"},
    "modules_to_save": {"type": "null", "default": null, "description": "graft saves the task head with the adapter instead"},
    "rank_pattern": {"type": "object", "enum": [{}], "default": {}, "description": "per-module ranks are not supported"},
    "alpha_pattern": {"type": "object", "enum": [{}], "default": {}, "description": "per-module alphas are not supported"},
    "loftq_config": {"type": "object", "enum": [{}], "default": {}, "description": "LoftQ is not supported"},
    "megatron_config": {"type": "null", "default": null, "description": "Megatron layers are not supported"},
    "megatron_core": {"type": ["string", "null"], "default": "megatron.core", "description": "ignored"},
    "layer_replication": {"type": "null", "default": null, "description": "layer replication is not supported"},
    "exclude_modules": {"type": "null", "default": null, "description": "not supported: name the targets instead"},
    "lora_bias": {"type": "boolean", "enum": [false], "default": false, "description": "a trainable bias on B is not supported"},
    "use_qalora": {"type": "boolean", "enum": [false], "default": false, "description": "QA-LoRA is not supported"},
    "qalora_group_size": {"type": "integer", "default": 16, "description": "ignored (QA-LoRA only)"},
    "eva_config": {"type": "null", "default": null, "description": "EVA initialisation is not supported"},
    "corda_config": {"type": "null", "default": null, "description": "CorDA initialisation is not supported"},
    "trainable_token_indices": {"type": "null", "default": null, "description": "trainable tokens are not supported"},
    "target_parameters": {"type": ["null", "array"], "enum": [null, []], "default": null, "description": "LoRA on bare parameters is not supported"},
    "alora_invocation_tokens": {"type": "null", "default": null, "description": "activated LoRA is not supported"},
    "enable_lora": {"type": "null", "default": null, "description": "old PEFT's fused-QKV LoRA is not supported"},
    "merge_weights": {"type": "boolean", "default": false, "description": "ignored (old PEFT's merge-in-eval flag)"}
  }
})schema";

// JSON number text; PEFT writes floats for dropout, so keep a ".0" there.
std::string json_number(double v, bool integral_as_int) {
  if (integral_as_int && v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<std::int64_t>(v));
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

struct LoraSite {
  const Site* site;
  Tensor A, B;
  Tensor magnitude;  // DoRA only: [out]
};

struct Shared {
  float scaling = 1, dropout = 0;
};

class LoraHook : public AdapterHook {
 public:
  LoraHook(std::shared_ptr<const Shared> shared, Tensor A, Tensor B)
      : shared_(std::move(shared)), A_(std::move(A)), B_(std::move(B)) {}

  Tensor linear(const Site&, const LinearCall& call, const Rows& rows) override {
    // Dropout in training passes only, as the backbone's own (PEFT: module.training).
    const Tensor in = shared_->dropout > 0 ? ops::dropout(call.x, shared_->dropout, training_mode()) : call.x;
    const Tensor delta = ops::scale(ops::linear(ops::linear(in, A_), B_), shared_->scaling);
    return ops::add(call.y, rows.gate(delta));
  }

 private:
  std::shared_ptr<const Shared> shared_;
  Tensor A_, B_;
};

class Lora : public PeftMethod {
 public:
  explicit Lora(const Config& c)
      : r_(c.integer("r")), alpha_(c.number("lora_alpha")), dropout_(c.number("lora_dropout")),
        use_rslora_(c.boolean("use_rslora")), use_dora_(c.boolean("use_dora")), layers_(c.integers("layers_to_transform")) {
    if (dropout_ >= 1)
      throw ConfigError("lora", fmt::format("{}: lora_dropout = {} must be below 1", c.origin(), dropout_),
                        "a dropout of 1 would drop the whole LoRA branch");
    if (c.is_string("target_modules")) {
      target_string_ = c.string("target_modules");
      is_string_ = true;
    } else {
      targets_ = c.has("target_modules") ? c.strings("target_modules") : std::vector<std::string>{"query", "value"};
      if (targets_.empty())
        throw ConfigError("lora", fmt::format("{}: target_modules is an empty list", c.origin()),
                          "name the linear sites to adapt, e.g. [\"query\", \"value\"], or \"all-linear\"");
    }
    // true, false or "gaussian" (the schema's enum)
    init_ = c.is_boolean("init_lora_weights") ? (c.boolean("init_lora_weights") ? "true" : "false") : c.string("init_lora_weights");
    shared_->scaling = static_cast<float>(use_rslora_ ? alpha_ / std::sqrt(static_cast<double>(r_)) : alpha_ / r_);
    shared_->dropout = static_cast<float>(dropout_);
  }

  void attach(AttachContext& context) override {
    backbone_ = &context.backbone();
    // A string: "all-linear", graft's names, or PEFT's full-name regex.
    const std::vector<const Site*> chosen = is_string_ ? peft::select_linear(context, target_string_, layers_)
                                                       : context.select(SiteKind::linear, targets_, layers_);
    if (chosen.empty())
      throw ConfigError("lora", fmt::format("adapter '{}': target_modules and layers_to_transform select no linear site",
                                            context.adapter_name()),
                        "the modules named exist, but not in the layers listed");
    // Checked against the backbone before anything is allocated: an update B·A of
    // rank above min(out, in) adds nothing but memory (r: 100000 would take gigabytes).
    for (const Site* s : chosen)
      if (r_ > std::min(s->in_features, s->out_features))
        throw ConfigError("lora", fmt::format("adapter '{}': r {} exceeds the rank an update of {} [{} x {}] can have ({})",
                                              context.adapter_name(), r_, s->name, s->out_features, s->in_features,
                                              std::min(s->in_features, s->out_features)),
                          "pick r at most the smaller side of the targeted weights; 4 to 64 is usual");
    std::map<std::string, Tensor> weights;  // DoRA's magnitude starts at the frozen rows' norms
    if (use_dora_)
      for (const auto& p : backbone_->parameters()) weights.emplace(p.name, p.tensor);
    const std::uint64_t seed = context.seed();
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      const Site& s = *chosen[i];
      const float bound_a = 1.f / std::sqrt(static_cast<float>(s.in_features));  // kaiming_uniform_(a=√5)
      Tensor A = init_ == "gaussian" ? nn::parameter({r_, s.in_features}, 1.f / static_cast<float>(r_), init_stream(seed, 2 * i))
                                     : nn::uniform_parameter({r_, s.in_features}, bound_a, init_stream(seed, 2 * i));
      Tensor B = init_ == "false" ? nn::uniform_parameter({s.out_features, r_}, 1.f / std::sqrt(static_cast<float>(r_)), init_stream(seed, 2 * i + 1))
                                  : nn::zeros_parameter({s.out_features, r_});
      if (!use_dora_) {
        sites_.push_back({&s, A, B, Tensor()});
        context.register_hook(s, std::make_shared<LoraHook>(shared_, A, B));
        continue;
      }
      auto w = weights.find(s.checkpoint_module + ".weight");
      if (w == weights.end() || w->second.shape() != Shape{s.out_features, s.in_features})
        throw ConfigError("lora", fmt::format("adapter '{}': DoRA at {} needs its weight '{}.weight' [{}, {}], which the "
                                              "backbone does not expose",
                                              context.adapter_name(), s.name, s.checkpoint_module, s.out_features, s.in_features),
                          "leave this module out of target_modules, or set use_dora to false");
      // As PEFT's dora_init: ‖W + s·B·A‖ with the initial A and B (B = 0 unless init_lora_weights is false).
      Tensor m = nn::zeros_parameter({s.out_features});
      const Tensor norms = lora::dora_row_norms(w->second, A, B, shared_->scaling);
      std::memcpy(m.raw(), norms.raw(), norms.nbytes());
      sites_.push_back({&s, A, B, m});
      context.register_hook(s, std::make_shared<lora::DoraHook>(A, B, m, shared_->scaling, shared_->dropout));
    }
  }

  std::vector<nn::NamedParameter> parameters() const override {
    std::vector<nn::NamedParameter> out;
    for (const LoraSite& s : sites_) {
      out.push_back({peft::tensor_name(*s.site, "lora_A.weight"), s.A});
      out.push_back({peft::tensor_name(*s.site, "lora_B.weight"), s.B});
      if (s.magnitude.defined()) out.push_back({peft::tensor_name(*s.site, "lora_magnitude_vector"), s.magnitude});
    }
    return out;
  }

  std::string describe() const override {
    std::vector<const Site*> chosen;
    std::vector<std::string> modules;
    std::int64_t count = 0;
    for (const LoraSite& s : sites_) {
      chosen.push_back(s.site);
      if (std::find(modules.begin(), modules.end(), s.site->module) == modules.end()) modules.push_back(s.site->module);
      count += s.A.numel() + s.B.numel() + (s.magnitude.defined() ? s.magnitude.numel() : 0);
    }
    const std::string layers = peft::layer_ranges(chosen);
    return fmt::format("{} r={} alpha={}{} on {} linear sites ({}; {} {}): {} trainable parameters",
                       use_dora_ ? "DoRA" : "LoRA", r_,
                       json_number(alpha_, true), use_rslora_ ? " (rsLoRA)" : "", sites_.size(), fmt::join(modules, ", "),
                       layers.find_first_of("-,") == std::string::npos ? "layer" : "layers", layers, thousands(count));
  }

  std::string adapter_config_json() const override {
    std::vector<const Site*> chosen;
    for (const LoraSite& s : sites_) chosen.push_back(s.site);
    const auto targets = peft::targets(backbone_->sites(), chosen);
    const std::string base = peft::base_model_name(backbone_->info().source);
    // PEFT 0.10's LoraConfig keys, every one at the value that reproduces graft's adapter.
    return fmt::format(
        R"({{"peft_type": "LORA", "task_type": null, "base_model_name_or_path": {}, "revision": null, "inference_mode": true,
 "auto_mapping": null, "r": {}, "lora_alpha": {}, "lora_dropout": {}, "target_modules": {}, "layers_to_transform": {},
 "layers_pattern": null, "use_rslora": {}, "init_lora_weights": {}, "bias": "none", "fan_in_fan_out": false,
 "use_dora": {}, "modules_to_save": null, "rank_pattern": {{}}, "alpha_pattern": {{}}, "megatron_config": null,
 "megatron_core": "megatron.core", "loftq_config": {{}}, "layer_replication": null}})",
        json_string(base), r_, json_number(alpha_, true), json_number(dropout_, false), targets.target_modules,
        targets.layers_to_transform, use_rslora_, init_ == "gaussian" ? "\"gaussian\"" : init_, use_dora_);
  }

  // PEFT names tensors after the module path of the model it wrapped: a LLaMA adapter
  // made on LlamaModel has "layers.0...", one made on LlamaForCausalLM "model.layers.0...".
  // A name missing here is looked up under a prefix added or dropped.
  void load_state(const std::map<std::string, Tensor>& tensors) override {
    const auto params = parameters();
    const auto resolved = peft::resolve_names(params, tensors);
    const bool none = std::none_of(params.begin(), params.end(), [&](const auto& p) { return resolved.count(p.name) > 0; });
    if (none && !tensors.empty() && !params.empty())
      throw FormatError("lora",
                        fmt::format("none of the {} saved tensors belongs to this backbone: the file has '{}', this backbone "
                                    "expects names such as '{}'", tensors.size(), tensors.begin()->first, params.front().name),
                        "the adapter was made for another model (see base_model_name_or_path in adapter_config.json)");
    PeftMethod::load_state(resolved);
  }

  Tensor delta_weight(const Site& site) const override {
    for (const LoraSite& s : sites_) {
      if (s.site != &site) continue;
      if (!s.magnitude.defined()) return ops::scale(ops::matmul(s.B, s.A), shared_->scaling);  // [out, r]·[r, in]
      for (const auto& p : backbone_->parameters())
        if (p.name == site.checkpoint_module + ".weight")
          return lora::dora_delta_weight(p.tensor, s.A, s.B, s.magnitude, shared_->scaling);
    }
    return Tensor();
  }

 private:
  std::int64_t r_;
  double alpha_, dropout_;
  bool use_rslora_, use_dora_;
  std::vector<std::int64_t> layers_;
  std::vector<std::string> targets_;  // a list target_modules
  std::string target_string_;         // a string one
  bool is_string_ = false;
  std::string init_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  const Backbone* backbone_ = nullptr;
  std::vector<LoraSite> sites_;
};

PeftMethod* create(const Config& c) { return new Lora(c); }

}  // namespace

GRAFT_PLUGIN("lora", "1.0.0", "LoRA (Hu et al. 2021): low-rank updates B·A on linear layers; Hugging Face PEFT format",
             kSchema, create, .peft_types = "LORA", .default_lr = 1e-3)
