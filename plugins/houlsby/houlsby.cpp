// Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020) and parallel
// adapters (He et al. 2022) with AdapterHub's BnConfig keys and tensor names.
//
// Placement. graft's sublayer_output site hands a hook the block's input x (the
// residual) and its output h (after its output projection, before the residual add);
// the backbone then computes LN(h' + x) (BERT) or x + h' (LLaMA, pre-norm). The
// sequential adapter returns
//   h' = h + scaling · up(act(down(h)))
// which is AdapterHub's original_ln_before=false, original_ln_after=true,
// residual_before_ln=true placement — exactly its Houlsby (DoubleSeqBn) layout on both
// architectures. With is_parallel (AdapterHub's ParallelAdapter, ParBnConfig) the
// bottleneck reads the block's input instead, beside the block:
//   h' = h + scaling · up(act(down(x)))
// where AdapterHub ignores original_ln_before, residual_before_ln and
// adapter_residual_before_ln, as here. Keys whose values need what graft does not do
// (the backbone's own layer norm before the adapter) are rejected by name, never
// approximated: original_ln_before=true for a sequential adapter (Pfeiffer/SeqBn's
// LN(h + residual)), original_ln_after=false. residual_before_ln is accepted with any
// value: with original_ln_before=false all of its values take the residual from h.
//
// Names: AdapterHub's state-dict keys. BERT-family sites carry the adapter in the
// output module (`encoder.layer.3.attention.output.adapters.NAME.adapter_down.0.weight`,
// `encoder.layer.3.output.adapters.NAME...`); other architectures in the decoder layer
// (`model.layers.3.attention_adapters.adapters.NAME...`, `...output_adapters...`), as
// AdapterHub's Llama support does. With ln_before the layer norm is adapter_down.0 and
// the down projection adapter_down.1 (AdapterHub's Sequential order).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <cstring>

#include "graft/error.h"
#include "graft/init.h"
#include "graft/ops.h"
#include "graft/peft_names.h"
#include "graft/plugin.h"
#include "graft/text.h"

namespace {

using graft::json_string;
using graft::thousands;
using namespace graft;

constexpr const char* kSchema = R"json({
  "type": "object",
  "properties": {
    "mh_adapter": {"type": "boolean", "default": true, "description": "adapter after the attention block (sublayer_output 'attention')"},
    "output_adapter": {"type": "boolean", "default": true, "description": "adapter after the feed-forward block (sublayer_output 'ffn')"},
    "reduction_factor": {"type": "number", "default": 16, "minimum": 1, "description": "bottleneck = floor(hidden / reduction_factor), at least 1"},
    "non_linearity": {"type": "string", "default": "swish", "enum": ["relu", "gelu", "gelu_new", "swish", "silu", "tanh"],
                      "description": "bottleneck activation (AdapterHub: Houlsby swish, Pfeiffer relu)"},
    "original_ln_before": {"type": "boolean", "default": false, "description": "only false for a sequential adapter (graft does not apply the backbone's norm before it); ignored with is_parallel, as in AdapterHub"},
    "original_ln_after": {"type": "boolean", "default": true, "description": "only true: graft's backbones always apply residual + their norm after the hook"},
    "residual_before_ln": {"type": ["boolean", "string"], "default": true, "enum": [true, false, "post_add"],
                           "description": "any value: equivalent when original_ln_before is false"},
    "adapter_residual_before_ln": {"type": "boolean", "default": false, "description": "with ln_after: add h before the adapter's own layer norm"},
    "ln_before": {"type": "boolean", "default": false, "description": "adapter-owned layer norm before the down projection"},
    "ln_after": {"type": "boolean", "default": false, "description": "adapter-owned layer norm after the up projection"},
    "init_weights": {"type": "string", "default": "bert", "enum": ["bert", "houlsby", "mam_adapter"],
                     "description": "bert: N(0, 0.02^2); houlsby: N(0, 0.01^2) truncated at 2 std; mam_adapter: kaiming-uniform down, zero up (exact identity)"},
    "is_parallel": {"type": "boolean", "default": false, "description": "parallel adapter (He et al. 2022): the bottleneck reads the block's input, beside the block"},
    "scaling": {"type": ["number", "string"], "default": 1.0, "description": "factor on the adapter's output (He et al. 2022): a number, \"learned\" (one trainable scalar) or \"channel\" (one per hidden unit), both starting at 1"},
    "leave_out": {"type": "array", "items": {"type": "integer"}, "default": [], "description": "layers without adapters"},
    "train_layer_norms": {"type": "boolean", "default": false, "description": "also train the backbone's layer norms (Houlsby et al. 2019) as copies the adapter owns, starting from the backbone's: every norm of the adapter's layers, and the embeddings' (BERT) or final (LLaMA) one; the shared backbone is not changed"}
  }
})json";

constexpr float kAdapterLnEps = 1e-5f;  // torch.nn.LayerNorm's default, as AdapterHub uses

struct Options {
  bool mh_adapter, output_adapter, ln_before, ln_after, adapter_residual_before_ln, parallel, train_layer_norms;
  double reduction_factor, scaling;
  std::string scaling_kind;  // "" (the number `scaling`), "learned" or "channel"
  std::string non_linearity, init_weights;
  std::vector<std::int64_t> leave_out;
};

[[noreturn]] void reject(const std::string& key, const std::string& value, const std::string& why, const std::string& hint) {
  throw ConfigError("houlsby", fmt::format("key '{}' = {} cannot be honoured: {}", key, value, why), hint);
}

Options parse(const Config& c) {
  const bool parallel = c.boolean("is_parallel");
  if (c.boolean("original_ln_before") && !parallel)
    reject("original_ln_before", "true",
           "it feeds the adapter LN(h + residual) through the backbone's own layer norm, which graft applies only after the "
           "hook",
           "graft places adapters as original_ln_before=false (AdapterHub's Houlsby layout); for Pfeiffer's single adapter "
           "use {\"mh_adapter\": false, \"non_linearity\": \"relu\"}");
  if (!c.boolean("original_ln_after"))
    reject("original_ln_after", "false", "graft's backbones always add the residual and apply their own norm after the hook",
           "leave original_ln_after at true");
  double scaling = 1.0;
  std::string scaling_kind;
  if (c.is_number("scaling")) {  // a number or one of two words (the schema's type list)
    scaling = c.number("scaling");
  } else {
    scaling_kind = c.string("scaling");
    if (scaling_kind != "learned" && scaling_kind != "channel")
      reject("scaling", json_string(scaling_kind), "it is neither a number nor \"learned\" or \"channel\"",
             "AdapterHub's ParBnConfig uses 4.0; \"learned\" trains one factor per adapter");
  }
  Options o{c.boolean("mh_adapter"), c.boolean("output_adapter"), c.boolean("ln_before"), c.boolean("ln_after"),
            c.boolean("adapter_residual_before_ln"), parallel, c.boolean("train_layer_norms"), c.number("reduction_factor"),
            scaling, scaling_kind,
            c.string("non_linearity"), c.string("init_weights"), c.integers("leave_out")};
  if (!o.mh_adapter && !o.output_adapter)
    throw ConfigError("houlsby", "mh_adapter and output_adapter are both false: the adapter would add nothing",
                      "set mh_adapter (after attention) and/or output_adapter (after the FFN)");
  return o;
}

Tensor activate(const std::string& name, const Tensor& x) {
  if (name == "relu") return ops::relu(x);
  if (name == "gelu") return ops::gelu(x, ops::GeluApprox::erf);
  if (name == "gelu_new") return ops::gelu(x, ops::GeluApprox::tanh);
  if (name == "tanh") return ops::tanh(x);
  return ops::silu(x);  // swish, silu
}

Tensor init_weight(const std::string& scheme, Shape shape, bool up, std::uint64_t seed) {
  if (scheme == "houlsby") return nn::truncated_normal_parameter(std::move(shape), 1e-2f, seed);  // trunc_normal_(std=1e-2)
  if (scheme == "mam_adapter")  // kaiming_uniform_(a=sqrt(5)) down: bound 1/sqrt(fan_in); up zero
    return up ? nn::zeros_parameter(std::move(shape)) : nn::uniform_parameter(shape, 1.f / std::sqrt(float(shape[1])), seed);
  return nn::parameter(std::move(shape), 0.02f, seed);  // "bert": BERT's initializer_range
}

struct SiteAdapter {
  const Site* site = nullptr;
  std::string prefix;  // "<module>.adapters.<name>."
  Tensor norm_before_g, norm_before_b, down_w, down_b, up_w, up_b, norm_after_g, norm_after_b;
  Tensor scaling;  // learned/channel scaling: [1] or [hidden]
};

class BottleneckHook : public AdapterHook {
 public:
  BottleneckHook(const SiteAdapter& a, const Options& o) : a_(a), o_(o) {}
  Tensor sublayer_output(const Site&, const SublayerCall& call, const Rows& rows) override {
    const Tensor& h = call.h;
    const Tensor& in = o_.parallel ? call.input : h;  // parallel: beside the block, from its input
    const Tensor x = o_.ln_before ? ops::layer_norm(in, a_.norm_before_g, a_.norm_before_b, kAdapterLnEps) : in;
    Tensor up = ops::linear(activate(o_.non_linearity, ops::linear(x, a_.down_w, a_.down_b)), a_.up_w, a_.up_b);
    if (a_.scaling.defined())
      up = ops::mul(up, a_.scaling);  // [1] or [hidden], broadcast over [B, T, hidden]
    else if (o_.scaling != 1.0)
      up = ops::scale(up, static_cast<float>(o_.scaling));
    if (!o_.ln_after) return ops::add(h, rows.gate(up));
    // AdapterHub's ParallelAdapter: LN(up) added to h; the residual-before-LN form is sequential only.
    if (o_.parallel) return ops::add(h, rows.gate(ops::layer_norm(up, a_.norm_after_g, a_.norm_after_b, kAdapterLnEps)));
    if (!o_.adapter_residual_before_ln)
      return ops::add(h, rows.gate(ops::layer_norm(up, a_.norm_after_g, a_.norm_after_b, kAdapterLnEps)));
    // LN(up + h) replaces h: rows this adapter does not own keep h exactly.
    const Tensor out = ops::layer_norm(ops::add(up, h), a_.norm_after_g, a_.norm_after_b, kAdapterLnEps);
    return rows.all() ? out : ops::add(h, rows.gate(ops::sub(out, h)));
  }

 private:
  const SiteAdapter& a_;  // owned by the method, which outlives its hooks
  const Options& o_;
};

// A backbone norm trained as the adapter's own copy: the norm recomputed from its input
// with the copy's weight (and bias), in place of the frozen one's output.
struct NormCopy {
  const Site* site = nullptr;
  Tensor weight, bias;  // f32 [hidden]; bias undefined for RMSNorm
};

class NormCopyHook : public AdapterHook {
 public:
  explicit NormCopyHook(const NormCopy& n) : n_(n) {}
  Tensor norm(const Site&, const NormCall& call, const Rows& rows) override {
    Tensor y = n_.bias.defined() ? ops::layer_norm(call.x, n_.weight, n_.bias, call.eps) : ops::rms_norm(call.x, n_.weight, call.eps);
    return rows.all() ? y : ops::add(call.y, rows.gate(ops::sub(y, call.y)));
  }

 private:
  const NormCopy& n_;
};

class Houlsby : public PeftMethod {
 public:
  explicit Houlsby(const Config& c) : config_json_(c.to_json()), o_(parse(c)) {}

  void attach(AttachContext& ctx) override {
    const Backbone& backbone = ctx.backbone();
    const BackboneInfo& info = backbone.info();
    name_ = ctx.adapter_name();
    info_ = info;
    for (auto l : o_.leave_out)
      if (l < 0 || l >= info.num_layers)
        throw ConfigError("houlsby", fmt::format("leave_out names layer {}, but this {} backbone has layers 0-{}", l,
                                                 info.architecture, info.num_layers - 1),
                          "list layer indices that exist, counting from 0");
    std::vector<std::int64_t> layers;
    for (std::int64_t l = 0; l < info.num_layers; ++l)
      if (std::find(o_.leave_out.begin(), o_.leave_out.end(), l) == o_.leave_out.end()) layers.push_back(l);
    if (layers.empty())
      throw ConfigError("houlsby", fmt::format("leave_out removes all {} layers: nothing to train", info.num_layers),
                        "leave at least one layer out of leave_out");
    std::vector<std::string> modules;
    if (o_.mh_adapter) modules.push_back("attention");
    if (o_.output_adapter) modules.push_back("ffn");
    const std::vector<const Site*> sites = ctx.select(SiteKind::sublayer_output, modules, layers);

    const std::int64_t H = info.hidden_size;
    bottleneck_ = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(H / o_.reduction_factor)));
    const bool bert_layout = info.architecture == "bert" || info.architecture == "roberta";
    adapters_.reserve(sites.size());  // hooks keep references into it
    for (const Site* site : sites) {
      SiteAdapter a;
      a.site = site;
      a.prefix = module_prefix(*site, bert_layout) + ".adapters." + name_ + ".";
      const std::uint64_t seed = splitmix64(ctx.seed() ^ splitmix64(site - backbone.sites().data()));  // per site
      if (o_.ln_before) a.norm_before_g = nn::ones_parameter({H}), a.norm_before_b = nn::zeros_parameter({H});
      a.down_w = init_weight(o_.init_weights, {bottleneck_, H}, false, splitmix64(seed + 1));
      a.down_b = nn::zeros_parameter({bottleneck_});
      a.up_w = init_weight(o_.init_weights, {H, bottleneck_}, true, splitmix64(seed + 2));
      a.up_b = nn::zeros_parameter({H});
      if (o_.ln_after) a.norm_after_g = nn::ones_parameter({H}), a.norm_after_b = nn::zeros_parameter({H});
      if (!o_.scaling_kind.empty()) a.scaling = nn::ones_parameter({o_.scaling_kind == "learned" ? 1 : H});
      adapters_.push_back(std::move(a));
    }
    for (const SiteAdapter& a : adapters_) ctx.register_hook(*a.site, std::make_shared<BottleneckHook>(a, o_));
    if (o_.train_layer_norms) attach_norms(ctx, layers);
  }

  std::vector<nn::NamedParameter> parameters() const override {
    std::vector<nn::NamedParameter> out;
    const std::string down = o_.ln_before ? "adapter_down.1." : "adapter_down.0.";
    for (const SiteAdapter& a : adapters_) {
      if (o_.ln_before) out.push_back({a.prefix + "adapter_down.0.weight", a.norm_before_g}), out.push_back({a.prefix + "adapter_down.0.bias", a.norm_before_b});
      out.push_back({a.prefix + down + "weight", a.down_w});
      out.push_back({a.prefix + down + "bias", a.down_b});
      out.push_back({a.prefix + "adapter_up.weight", a.up_w});
      out.push_back({a.prefix + "adapter_up.bias", a.up_b});
      if (o_.ln_after) out.push_back({a.prefix + "adapter_norm_after.weight", a.norm_after_g}), out.push_back({a.prefix + "adapter_norm_after.bias", a.norm_after_b});
      if (a.scaling.defined()) out.push_back({a.prefix + "scaling", a.scaling});  // AdapterHub's nn.Parameter
    }
    // The norms under the backbone's own names, as PEFT's modules_to_save keeps copies.
    for (const NormCopy& n : norms_) {
      out.push_back({n.site->checkpoint_module + ".weight", n.weight});
      if (n.bias.defined()) out.push_back({n.site->checkpoint_module + ".bias", n.bias});
    }
    return out;
  }

  std::string describe() const override {
    std::int64_t count = 0;
    for (const auto& p : parameters()) count += p.tensor.numel();
    std::size_t blocks = 0;
    for (std::size_t i = 0; i < adapters_.size(); ++i)
      blocks += i == 0 || adapters_[i].site->layer != adapters_[i - 1].site->layer;
    const char* where = o_.mh_adapter && o_.output_adapter ? "attention and FFN" : o_.mh_adapter ? "attention" : "FFN";
    const std::string scaling = o_.scaling_kind.empty() ? fmt::format("{:g}", o_.scaling) : o_.scaling_kind;
    const char* kind = o_.parallel ? "Parallel" : o_.mh_adapter && o_.output_adapter ? "Houlsby" : "Bottleneck";
    const std::string norms = norms_.empty() ? "" : fmt::format(", {} layer norms trained", norms_.size());
    return fmt::format("{} adapters (reduction {:g}, bottleneck {}, {}, scaling {}) {} {} in {} of {} blocks{}: {} trainable "
                       "params, {:.2f}% of the backbone's {}",
                       kind, o_.reduction_factor, bottleneck_, o_.non_linearity, scaling, o_.parallel ? "beside" : "after", where, blocks,
                       info_.num_layers, norms, grouped(count), 100.0 * count / std::max<std::int64_t>(1, info_.parameter_count),
                       grouped(info_.parameter_count));
  }

  // AdapterHub's adapter_config.json: the BnConfig under "config", then the model.
  std::string adapter_config_json() const override {
    const std::string config = config_json_.substr(0, config_json_.rfind('}'));
    const std::string arch = info_.architecture;
    const std::string model_class = arch == "llama" ? "LlamaModel" : arch == "roberta" ? "RobertaModel" : "BertModel";
    const std::string model_name = peft::base_model_name(info_.source);
    return fmt::format(R"({{"config": {}{}"architecture": "bottleneck"}}, "hidden_size": {}, "model_class": {}, )"
                       R"("model_name": {}, "model_type": {}, "name": {}, "version": "graft-0.1"}})",
                       config, config.size() > 1 ? ", " : "", info_.hidden_size, json_string(model_class), json_string(model_name),
                       json_string(arch), json_string(name_));
  }

  // Saved files carry the adapter's name inside every key (AdapterHub's layout); load
  // them under whatever name this adapter was attached as.
  void load_state(const std::map<std::string, Tensor>& tensors) override {
    std::map<std::string, Tensor> renamed;
    const std::string mine = ".adapters." + name_ + ".";
    for (const auto& [key, t] : tensors) {
      std::string k = key;
      for (const SiteAdapter& a : adapters_) {
        const std::string stem = a.prefix.substr(0, a.prefix.size() - mine.size()) + ".adapters.";
        if (k.rfind(stem, 0) != 0) continue;
        std::size_t end = k.find(".adapter_", stem.size());
        if (end == std::string::npos && k.ends_with(".scaling")) end = k.size() - std::strlen(".scaling");
        if (end != std::string::npos) k = stem + name_ + k.substr(end);
        break;
      }
      renamed.emplace(std::move(k), t);
    }
    PeftMethod::load_state(renamed);
  }

 private:
  // Every norm site in `layers`, and those outside the layer stack (layer -1), starting
  // from the backbone's weights in f32.
  void attach_norms(AttachContext& ctx, const std::vector<std::int64_t>& layers) {
    std::map<std::string, Tensor> weights;
    for (const auto& p : ctx.backbone().parameters()) weights[p.name] = p.tensor;
    auto copy = [&](const std::string& name) {
      const auto it = weights.find(name);
      if (it == weights.end()) return Tensor();
      return Tensor::from_floats(it->second.to_floats(), it->second.shape()).set_requires_grad(true);
    };
    for (const Site& site : ctx.backbone().sites()) {
      if (site.kind != SiteKind::norm) continue;
      if (site.layer >= 0 && std::find(layers.begin(), layers.end(), site.layer) == layers.end()) continue;
      NormCopy n{&site, copy(site.checkpoint_module + ".weight"), copy(site.checkpoint_module + ".bias")};
      if (!n.weight.defined())
        throw ConfigError("houlsby", fmt::format("train_layer_norms: the backbone has no weight '{}.weight' for norm site '{}'",
                                                 site.checkpoint_module, site.name),
                          "this backbone does not name its norms as its sites say; set train_layer_norms to false");
      norms_.push_back(std::move(n));
    }
    for (const NormCopy& n : norms_) ctx.register_hook(*n.site, std::make_shared<NormCopyHook>(n));
  }
  static std::string module_prefix(const Site& site, bool bert_layout) {
    if (bert_layout) return site.checkpoint_module;  // encoder.layer.N.attention.output / encoder.layer.N.output
    const std::string layer = site.checkpoint_module.substr(0, site.checkpoint_module.find_last_of('.'));
    return layer + (site.module == "attention" ? ".attention_adapters" : ".output_adapters");
  }
  static std::string grouped(std::int64_t n) {
    std::string s = std::to_string(n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
    return s;
  }
  std::string config_json_;
  Options o_;
  std::string name_;
  BackboneInfo info_;
  std::int64_t bottleneck_ = 0;
  std::vector<SiteAdapter> adapters_;
  std::vector<NormCopy> norms_;  // train_layer_norms
};

PeftMethod* create(const Config& c) { return new Houlsby(c); }

}  // namespace

GRAFT_PLUGIN("houlsby", "0.1.0", "bottleneck adapters after attention and/or FFN (Houlsby 2019, Pfeiffer 2020), AdapterHub config",
             kSchema, create,
             // Pfeiffer et al. 2020: one adapter after the FFN block, ReLU.
             .aliases = R"({"pfeiffer": {"mh_adapter": false, "output_adapter": true, "non_linearity": "relu"}})",
             .default_lr = 1e-3)
