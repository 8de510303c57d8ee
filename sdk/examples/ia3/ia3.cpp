// (IA)³ — "Infused Adapter by Inhibiting and Amplifying Inner Activations" (Liu et al.
// 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
// Learning") — as a graft plugin built out of tree against the installed SDK.
//
// The method learns one vector per adapted projection and multiplies it elementwise
// into the activations: the keys and values of every attention layer (k ⊙ l_k,
// v ⊙ l_v) and the FFN's intermediate activation after its nonlinearity
// (down((l_ff ⊙ act(up x)))). The vectors start at ones, so a fresh adapter computes
// exactly what the frozen backbone computes.
//
// Config keys, tensor names and adapter_config.json follow Hugging Face PEFT's IA3:
//   - a target that is not a feedforward module scales the output of its linear layer,
//     y ⊙ l with l of shape [out, 1];
//   - a feedforward module (feedforward_modules, a subset of target_modules) scales the
//     input, (x ⊙ l) Wᵀ + b with l of shape [1, in];
//   - tensors are saved as "base_model.model.<module>.ia3_l";
//   - it merges (delta_weight) as PEFT's IA3 merge does: output rows diag(l)·W (and the
//     bias l ⊙ b), input columns W·diag(l).
// The defaults, keys + values + ffn.down as a feedforward module, are the paper's
// placement on every backbone (and PEFT's LLaMA default: k_proj, v_proj, down_proj).
//
// How an input scaling is computed at a graft `linear` site, whose hook receives x, the
// frozen W and b, and the already computed y = x Wᵀ + b:
//   - in general, exactly, as y + (x ⊙ (l − 1)) Wᵀ: one more matmul with the frozen W
//     (its backward-data only; W never gets a gradient), and exactly y while l = 1;
//   - on LLaMA, for free: its FFN is down(silu(gate x) ⊙ up x), and elementwise
//     products commute, so down((silu(g) ⊙ u) ⊙ l) = down(silu(g) ⊙ (u ⊙ l)): scaling the
//     input of down_proj equals scaling the output of up_proj. The vector is still
//     down_proj's ([1, intermediate]) and saved under down_proj's name.
// Stacked with another adapter that scales the input of the same site (a hook sees the
// site's original x), the first form composes as x ⊙ (l₁ + l₂ − 1) where PEFT multiplies,
// x ⊙ l₁ ⊙ l₂; output scalings, and the LLaMA form, multiply as PEFT does.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "graft/error.h"
#include "graft/init.h"        // init_stream: one seed per tensor
#include "graft/ops.h"
#include "graft/peft_names.h"  // PEFT's tensor names and target_modules
#include "graft/plugin.h"
#include "graft/text.h"

namespace {

using graft::json_string;
using graft::thousands;
using namespace graft;

// A JSON Schema subset the host validates before create() runs: unknown keys, wrong
// types and values outside an enum never reach the plugin. Keys are PEFT's IA3Config's.
constexpr const char* kSchema = R"schema({
  "type": "object",
  "properties": {
    "target_modules": {"type": ["array", "string", "null"], "items": {"type": "string"}, "default": ["key", "value", "ffn.down"],
      "description": "linear sites to scale: graft names (key, attention.value, ffn.down, layers.0-3.*) or checkpoint module names (k_proj, output.dense); a single string naming no site is read as PEFT does, a regex over full module names; \"all-linear\" takes every linear site; null = the default"},
    "feedforward_modules": {"type": ["array", "string", "null"], "items": {"type": "string"}, "default": null,
      "description": "targets whose input is scaled instead of their output (a subset of target_modules); null = ffn.down where targeted"},
    "exclude_modules": {"type": ["array", "string", "null"], "items": {"type": "string"}, "default": null,
      "description": "linear sites removed from target_modules"},
    "init_ia3_weights": {"type": "boolean", "default": true,
      "description": "true: vectors start at ones (the backbone's outputs unchanged); false: N(0, 1), as PEFT's torch.randn"},
    "fan_in_fan_out": {"type": "boolean", "enum": [false], "default": false, "description": "graft's linear weights are [out, in]"},
    "modules_to_save": {"type": "null", "default": null, "description": "graft saves the task head with the adapter instead"}
  }
})schema";

const std::vector<std::string> kDefaultTargets = {"key", "value", "ffn.down"};
const std::vector<std::string> kDefaultFeedforward = {"ffn.down"};

// ---------------------------------------------------------------------------------
// The hooks: what runs at a site during every forward pass. Written with graft::ops,
// so autograd differentiates them; `rows` is the per-row selection (Rows::gate zeroes
// the rows this adapter does not own).

// y ⊙ l: keys, values, and (on LLaMA) up_proj's output for down_proj's input scaling.
class ScaleOutput : public AdapterHook {
 public:
  explicit ScaleOutput(Tensor l) : l_(std::move(l)) {}
  Tensor linear(const Site&, const LinearCall& call, const Rows& rows) override {
    const Tensor& y = call.y;
    const Tensor scaled = ops::mul(y, ops::reshape(l_, {l_.numel()}));  // broadcasts over [B, T, n]
    if (rows.all()) return scaled;
    return ops::add(y, rows.gate(ops::sub(scaled, y)));  // y + mask · (y ⊙ l − y)
  }

 private:
  Tensor l_;  // [n, 1] or [1, n]: PEFT's layout, flattened here
};

// (x ⊙ l) Wᵀ + b = y + (x ⊙ (l − 1)) Wᵀ, with the frozen weight W of this site.
class ScaleInput : public AdapterHook {
 public:
  explicit ScaleInput(Tensor l) : l_(std::move(l)), ones_(Tensor::full({l_.numel()}, 1.f)) {}
  Tensor linear(const Site&, const LinearCall& call, const Rows& rows) override {
    const Tensor shift = ops::sub(ops::reshape(l_, {l_.numel()}), ones_);  // l − 1: zero at init
    return ops::add(call.y, rows.gate(ops::linear(ops::mul(call.x, shift), call.weight)));
  }

 private:
  Tensor l_, ones_;
};

// ---------------------------------------------------------------------------------
// target_modules / feedforward_modules / exclude_modules: null, one string, or a list.
struct ModuleSpec {
  bool null = true;
  bool is_string = false;
  std::string text;               // when is_string
  std::vector<std::string> list;  // otherwise
};

ModuleSpec read_spec(const Config& c, const std::string& key) {
  ModuleSpec s;
  if (!c.has(key)) return s;  // absent or null
  s.null = false;
  s.is_string = c.is_string(key);
  if (s.is_string) s.text = c.string(key);
  else s.list = c.strings(key);  // the schema allows only a string or a list of strings here
  return s;
}

// The linear sites a spec names. AttachContext::select does the naming (site names,
// module names, checkpoint names, globs) and reports a pattern that matches nothing
// with a list of what the backbone has; for a string, peft::select_linear adds
// "all-linear" and PEFT's reading, a regex over full module names.
std::vector<const Site*> select_linear(const AttachContext& context, const ModuleSpec& spec, const std::string& key) {
  if (spec.is_string) return peft::select_linear(context, spec.text, {}, key);
  if (spec.list.empty()) return {};  // select() would read {} as "every site"
  return context.select(SiteKind::linear, spec.list);
}

bool contains(const std::vector<const Site*>& sites, const Site* s) { return std::find(sites.begin(), sites.end(), s) != sites.end(); }

// ---------------------------------------------------------------------------------

struct Vector {
  const Site* site;  // the module the vector belongs to (and is named after)
  bool feedforward;  // input scaled ([1, in]) rather than output ([out, 1])
  Tensor l;
  const Site* hooked;  // where its hook runs: `site`, or on LLaMA up_proj for down_proj's vector
  bool scales_output;  // its hook scales `hooked`'s output rows (else its input columns)
};

class Ia3 : public PeftMethod {
 public:
  explicit Ia3(const Config& c)
      : targets_(read_spec(c, "target_modules")), feedforward_(read_spec(c, "feedforward_modules")),
        exclude_(read_spec(c, "exclude_modules")), init_ones_(c.boolean("init_ia3_weights")) {
    if (!targets_.null && !targets_.is_string && targets_.list.empty())
      throw ConfigError("ia3", fmt::format("{}: target_modules is an empty list", c.origin()),
                        "name the linear sites to scale, e.g. [\"key\", \"value\", \"ffn.down\"]");
  }

  void attach(AttachContext& context) override {
    backbone_ = &context.backbone();
    // Which linear sites get a vector.
    std::vector<const Site*> targets =
        targets_.null ? context.select(SiteKind::linear, kDefaultTargets) : select_linear(context, targets_, "target_modules");
    if (!exclude_.null) {
      const auto excluded = select_linear(context, exclude_, "exclude_modules");
      std::erase_if(targets, [&](const Site* s) { return contains(excluded, s); });
    }
    if (targets.empty())
      throw ConfigError("ia3", fmt::format("adapter '{}': no linear site is left to scale", context.adapter_name()),
                        "exclude_modules removes every site target_modules names");

    // Which of them are feedforward modules (input scaled).
    std::vector<const Site*> feedforward;
    if (feedforward_.null) {
      try {
        feedforward = context.select(SiteKind::linear, kDefaultFeedforward);
      } catch (const ConfigError&) {  // a backbone without ffn.down: no feedforward module
      }
    } else if (feedforward_.is_string) {
      feedforward = select_linear(context, feedforward_, "feedforward_modules");
    } else {
      for (const std::string& pattern : feedforward_.list) {
        const auto named = context.select(SiteKind::linear, {pattern});
        if (std::none_of(named.begin(), named.end(), [&](const Site* s) { return contains(targets, s); }))
          throw ConfigError("ia3", fmt::format("adapter '{}': feedforward_modules entry '{}' names no site of target_modules",
                                               context.adapter_name(), pattern),
                            "feedforward_modules must be a subset of target_modules, as in PEFT");
        feedforward.insert(feedforward.end(), named.begin(), named.end());
      }
    }

    const bool llama_ffn = backbone_->info().architecture == "llama";  // down(silu(gate x) ⊙ up x)

    const std::uint64_t seed = context.seed();
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const Site& s = *targets[i];
      const bool ff = contains(feedforward, &s);
      const Shape shape = ff ? Shape{1, s.in_features} : Shape{s.out_features, 1};
      Tensor l = init_ones_ ? nn::ones_parameter(shape) : nn::parameter(shape, 1.f, init_stream(seed, i));
      if (!ff) {
        context.register_hook(s, std::make_shared<ScaleOutput>(l));
        vectors_.push_back({&s, ff, l, &s, true});
      } else if (const Site* up = llama_ffn && s.module == "ffn.down" ? sibling(s, "ffn.up") : nullptr) {
        context.register_hook(*up, std::make_shared<ScaleOutput>(l));
        vectors_.push_back({&s, ff, l, up, true});
      } else {
        context.register_hook(s, std::make_shared<ScaleInput>(l));  // the hook gets the frozen W with x
        vectors_.push_back({&s, ff, l, &s, false});
      }
    }
  }

  std::vector<nn::NamedParameter> parameters() const override {
    std::vector<nn::NamedParameter> out;
    for (const Vector& v : vectors_) out.push_back({tensor_name(*v.site), v.l});
    return out;
  }

  std::string describe() const override {
    std::vector<std::string> outputs, inputs;
    std::set<int> layers;
    std::int64_t count = 0;
    for (const Vector& v : vectors_) {
      auto& list = v.feedforward ? inputs : outputs;
      if (std::find(list.begin(), list.end(), v.site->module) == list.end()) list.push_back(v.site->module);
      layers.insert(v.site->layer);
      count += v.l.numel();
    }
    std::vector<std::string> parts;
    if (!outputs.empty()) parts.push_back(fmt::format("outputs of {}", fmt::join(outputs, ", ")));
    if (!inputs.empty()) parts.push_back(fmt::format("inputs of {}", fmt::join(inputs, ", ")));
    return fmt::format("(IA)³ on {} linear sites in {} layers ({} scaled): {} trainable parameters", vectors_.size(), layers.size(),
                       fmt::join(parts, "; "), thousands(count));
  }

  std::string adapter_config_json() const override {
    std::vector<const Site*> linear, chosen, ff_sites;
    for (const Site& s : backbone_->sites())
      if (s.kind == SiteKind::linear) linear.push_back(&s);
    for (const Vector& v : vectors_) {
      chosen.push_back(v.site);
      if (v.feedforward) ff_sites.push_back(v.site);
    }
    // target_modules / feedforward_modules under which PEFT selects exactly what graft
    // did: a list of layer-independent name suffixes ("key", "k_proj") where that is
    // exact, else a regex of full module names (PEFT matches a string with re.fullmatch).
    // A list when the selection is whole modules in every layer, each with a suffix of
    // its own; the feedforward list is then the feedforward modules' entries (PEFT
    // wants it a subset of target_modules).
    std::vector<std::string> modules;
    for (const Site* s : chosen)
      if (std::find(modules.begin(), modules.end(), s->module) == modules.end()) modules.push_back(s->module);
    std::size_t whole = 0;
    for (const Site* s : linear) whole += std::find(modules.begin(), modules.end(), s->module) != modules.end();
    bool listed = whole == chosen.size();
    std::vector<std::string> target_entries, ff_entries;
    for (const std::string& m : modules) {
      const std::string suffix = listed ? peft::module_suffix(linear, m) : "";
      listed = listed && !suffix.empty();
      target_entries.push_back(suffix);
      if (std::any_of(ff_sites.begin(), ff_sites.end(), [&](const Site* s) { return s->module == m; })) ff_entries.push_back(suffix);
    }
    // PEFT matches feedforward entries by plain endswith among the targets: check that.
    for (const Site* s : chosen) {
      bool named = false;
      for (const auto& e : ff_entries) named = named || s->checkpoint_module.ends_with(e);
      listed = listed && named == contains(ff_sites, s);
    }
    auto json_list = [](const std::vector<std::string>& entries) {
      std::vector<std::string> quoted;
      for (const auto& e : entries) quoted.push_back(json_string(e));
      return fmt::format("[{}]", fmt::join(quoted, ", "));
    };
    const std::string targets = listed ? json_list(target_entries) : json_string(peft::names_regex(chosen));
    const std::string feedforward = listed ? json_list(ff_entries) : (ff_sites.empty() ? "[]" : json_string(peft::names_regex(ff_sites)));

    const std::string base = peft::base_model_name(backbone_->info().source);
    return fmt::format(R"({{"peft_type": "IA3", "task_type": null, "base_model_name_or_path": {}, "revision": null,
 "inference_mode": true, "auto_mapping": null, "target_modules": {}, "feedforward_modules": {}, "fan_in_fan_out": false,
 "modules_to_save": null, "init_ia3_weights": {}}})",
                       json_string(base), targets, feedforward, init_ones_);
  }

  // For merging and exporting merged checkpoints: what the hooks at `site` do to its
  // weight. An output scaling is diag(l)·W (the host scales the bias with it, as PEFT's
  // IA3 merge does), an input scaling W·diag(l); on LLaMA down_proj's input vector acts
  // on up_proj's output, so it folds into up_proj's rows (PEFT folds it into down_proj's
  // columns: the same function, since the product between them is elementwise). Output
  // scalings of one site multiply, as their hooks do. Returned as the delta from W.
  Tensor delta_weight(const Site& site) const override {
    std::vector<float> rows(static_cast<std::size_t>(site.out_features), 1.f), columns(static_cast<std::size_t>(site.in_features), 1.f);
    bool any = false;
    for (const Vector& v : vectors_) {
      if (v.hooked != &site) continue;
      any = true;
      const std::vector<float> l = v.l.to_floats();
      auto& scale = v.scales_output ? rows : columns;
      if (l.size() != scale.size())
        throw ShapeError("ia3", fmt::format("vector of {} has {} entries for {} {} of {}", v.site->name, l.size(), scale.size(),
                                            v.scales_output ? "output rows" : "input columns", site.name));
      for (std::size_t i = 0; i < l.size(); ++i) scale[i] *= l[i];
    }
    if (!any) return Tensor();
    Tensor weight;
    for (const auto& p : backbone_->parameters())
      if (p.name == site.checkpoint_module + ".weight") weight = p.tensor;
    if (!weight.defined()) return Tensor();  // the host then keeps the hook running
    const std::vector<float> w = weight.to_floats();  // f32 whatever the backbone holds
    std::vector<float> delta(w.size());
    const std::size_t in = columns.size();
    for (std::size_t o = 0; o < rows.size(); ++o)
      for (std::size_t i = 0; i < in; ++i) {
        const float x = w[o * in + i];
        delta[o * in + i] = rows[o] * x * columns[i] - x;
      }
    return Tensor::from_floats(delta, {site.out_features, site.in_features});
  }

  // PEFT names tensors after the module path of the model it wrapped: an adapter made on
  // BertForSequenceClassification has "bert.encoder.layer.0…" where this backbone may have
  // "encoder.layer.0…". A name missing here is looked up with a prefix added or dropped;
  // the base class then checks every name and shape.
  void load_state(const std::map<std::string, Tensor>& tensors) override {
    PeftMethod::load_state(peft::resolve_names(parameters(), tensors));
  }

 private:
  static std::string tensor_name(const Site& s) { return peft::tensor_name(s, "ia3_l"); }  // base_model.model.<module>.ia3_l

  const Site* sibling(const Site& s, const std::string& module) const {
    for (const Site& other : backbone_->sites())
      if (other.kind == SiteKind::linear && other.layer == s.layer && other.module == module &&
          other.out_features == s.in_features)
        return &other;
    return nullptr;
  }

  ModuleSpec targets_, feedforward_, exclude_;
  bool init_ones_;
  const Backbone* backbone_ = nullptr;
  std::vector<Vector> vectors_;
};

PeftMethod* create(const Config& c) { return new Ia3(c); }

}  // namespace

GRAFT_PLUGIN("ia3", "1.0.0",
             "(IA)³ (Liu et al. 2022): learned vectors scaling keys, values and FFN activations; Hugging Face PEFT format",
             kSchema, create, .peft_types = "IA3", .default_lr = 5e-3)
