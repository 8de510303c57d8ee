// Prefix tuning (Li & Liang 2021) as Hugging Face PEFT implements it: n trained key and
// value rows prepended to the attention of every layer, every query of a selected row
// attending to them. Files and parameter layout are PEFT's, so adapters move between
// the two:
//   table [n, L·2·kv_dim] (PEFT's prompt_encoder.embedding, saved as prompt_embeddings),
//   viewed as [n, L·2, kv_heads, head_dim]: layer l's keys are slot 2l, its values 2l+1.
//   kv_dim = num_key_value_heads·head_dim: on grouped-query models PEFT (>= 0.12, #1901)
//   sets token_dim = kv_dim and num_attention_heads = num_key_value_heads.
// With prefix_projection the table is the output of PEFT's PrefixEncoder MLP, Linear
// (token_dim → encoder_hidden_size), Tanh, Linear (→ L·2·token_dim), applied to an
// embedding [n, token_dim]; saving folds it to the table (as PEFT's
// get_prompt_embedding_to_save does), and loading a saved adapter restores the folded
// table, which then trains directly — PEFT too loads prompt_embeddings in place of the
// MLP (inference mode) and cannot resume the MLP from a saved file.
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "graft/plugin.h"
#include "graft/text.h"

namespace {

using graft::json_string;
using graft::thousands;
using namespace graft;

constexpr const char* kSchema = R"json({
  "type": "object",
  "properties": {
    "num_virtual_tokens": {"type": "integer", "default": 20, "minimum": 1,
      "description": "prefix length n: key/value rows prepended in every attention layer"},
    "prefix_projection": {"type": "boolean", "default": false,
      "description": "train the prefix through PEFT's PrefixEncoder MLP (Linear, Tanh, Linear); folded away when saved"},
    "encoder_hidden_size": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "hidden width of the projection MLP (null: token_dim)"},
    "token_dim": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: width of one key (or value) row, num_key_value_heads * head_dim; must match the backbone"},
    "num_layers": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: the backbone's layer count; must match"},
    "num_attention_heads": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: the backbone's key/value head count; must match"},
    "num_transformer_submodules": {"type": ["integer", "null"], "default": null, "minimum": 1,
      "description": "PEFT: 1 (decoder or encoder); 2 is for encoder-decoder models, which graft has none of"}
  }
})json";

// A PEFT bookkeeping key must agree with the backbone when it is given.
void expect_match(const Config& c, const char* key, std::int64_t actual, const std::string& what, const std::string& hint) {
  if (c.has(key) && c.integer(key) != actual)
    throw ConfigError("prefix_tuning", fmt::format("{}: {} = {} does not match the backbone's {} ({})", c.origin(), key,
                                                   c.integer(key), what, actual),
                      hint);
}

struct Prefix {
  std::int64_t n = 0, layers = 0, kv_heads = 0, head_dim = 0, encoder_hidden = 0;
  bool projection = false;  // the MLP is live (false once a saved table was loaded)
  Tensor table;             // [n, L·2·kv_dim] when not projecting
  Tensor embedding, w1, b1, w2, b2;

  std::int64_t kv_dim() const { return kv_heads * head_dim; }

  // Layer `layer`'s keys (slot 0) or values (slot 1) as [n, kv_dim], differentiable.
  Tensor rows(int layer, int slot) const {
    const std::int64_t start = (2 * layer + slot) * kv_dim();
    if (!projection) return ops::slice(table, 1, start, kv_dim());
    // Only this layer's part of the second Linear: the MLP is cheap, the product of its
    // output width L·2·kv_dim is not recomputed per layer.
    const Tensor h = ops::tanh(ops::linear(embedding, w1, b1));
    return ops::linear(h, ops::slice(w2, 0, start, kv_dim()), ops::slice(b2, 0, start, kv_dim()));
  }

  // The table the hooks see, [n, L·2·kv_dim]: with the projection, assembled from the
  // same per-layer products the hooks compute, so a saved adapter reproduces them bit
  // for bit.
  Tensor folded() const {
    NoGradGuard no_grad;
    if (!projection) return table.clone();
    std::vector<Tensor> parts;
    for (int l = 0; l < layers; ++l)
      for (int slot = 0; slot < 2; ++slot) parts.push_back(rows(l, slot));
    return ops::concat(parts, 1).clone();
  }
};

class PrefixHook : public AdapterHook {
 public:
  explicit PrefixHook(std::shared_ptr<const Prefix> prefix) : p_(std::move(prefix)) {}

  void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask, const Rows& rows) override {
    const std::int64_t B = k.dim(0), n = p_->n;
    if (mask.ndim() != 4 || mask.dim(0) != B)
      throw ShapeError("prefix_tuning", fmt::format("{}: expected an additive mask [B, 1, T, S], got {}", site.name,
                                                    shape_str(mask.shape())));
    k = ops::concat({per_batch(p_->rows(site.layer, 0), B), k}, 2);
    v = ops::concat({per_batch(p_->rows(site.layer, 1), B), v}, 2);
    // The prefix is visible to every query of a row the adapter applies to (padding
    // included, as in PEFT's all-ones prefix mask) and hidden from the others.
    const std::int64_t queries = mask.dim(2);
    Tensor columns = Tensor::zeros({B, 1, queries, n});
    if (!rows.all()) {
      const std::vector<float> owned = rows.mask.to_floats();
      float* c = columns.data<float>();
      for (std::int64_t b = 0; b < B; ++b)
        if (owned[b] == 0.f) std::fill(c + b * queries * n, c + (b + 1) * queries * n, kMaskedScore);  // as if absent
    }
    mask = ops::concat({columns, mask}, 3);
  }

 private:
  // [n, kv_dim] → [B, kv_heads, n, head_dim], the same rows for every batch row.
  Tensor per_batch(const Tensor& rows, std::int64_t B) const {
    Tensor one = ops::reshape(ops::permute(ops::reshape(rows, {p_->n, p_->kv_heads, p_->head_dim}), {1, 0, 2}),
                              {1, p_->kv_heads, p_->n, p_->head_dim});
    return B == 1 ? one : ops::concat(std::vector<Tensor>(static_cast<std::size_t>(B), one), 0);
  }

  std::shared_ptr<const Prefix> p_;
};

class PrefixTuning : public PeftMethod {
 public:
  explicit PrefixTuning(const Config& c) : config_(c) {}

  void attach(AttachContext& context) override {
    const auto sites = context.select(SiteKind::attention_kv, {});
    if (sites.empty()) throw ConfigError("prefix_tuning", "the backbone declares no attention_kv sites");
    const Site& first = *sites.front();
    for (const Site* s : sites)
      if (s->num_kv_heads != first.num_kv_heads || s->head_dim != first.head_dim)
        throw ConfigError("prefix_tuning", fmt::format("{} has another key/value shape than {}", s->name, first.name));
    auto p = std::make_shared<Prefix>();
    p->n = config_.integer("num_virtual_tokens");
    p->layers = static_cast<std::int64_t>(sites.size());
    p->kv_heads = first.num_kv_heads;
    p->head_dim = first.head_dim;
    const std::string hint = "the adapter was made for another backbone (or, on a grouped-query model, by PEFT < 0.12, "
                             "whose prefix rows have num_attention_heads heads instead of num_key_value_heads)";
    expect_match(config_, "num_layers", p->layers, "layer count", hint);
    expect_match(config_, "token_dim", p->kv_dim(), "key/value width (num_key_value_heads * head_dim)", hint);
    expect_match(config_, "num_attention_heads", p->kv_heads, "key/value head count", hint);
    expect_match(config_, "num_transformer_submodules", 1, "transformer stack count", "graft has no encoder-decoder backbones");
    const std::int64_t max_positions = context.backbone().info().max_positions;
    if (p->n >= max_positions)  // prefix rows count as past positions
      throw ConfigError("prefix_tuning",
                        fmt::format("num_virtual_tokens {} leaves no position for the input: the backbone places {} tokens",
                                    p->n, max_positions),
                        "use 8 to 100 virtual tokens");
    p->encoder_hidden = config_.has("encoder_hidden_size") ? config_.integer("encoder_hidden_size") : p->kv_dim();
    if (p->encoder_hidden > 64 * p->kv_dim())
      throw ConfigError("prefix_tuning",
                        fmt::format("encoder_hidden_size {} is over 64 times the key/value width {}", p->encoder_hidden, p->kv_dim()),
                        "PEFT's default is the key/value width; 512 to 1024 is usual");
    p->projection = config_.boolean("prefix_projection");

    // PEFT's initialisation: torch.nn.Embedding is N(0, 1); torch.nn.Linear draws
    // weight and bias from U(±1/sqrt(fan_in)).
    const std::uint64_t seed = context.seed();
    const std::int64_t width = p->layers * 2 * p->kv_dim();
    if (p->projection) {
      const float in_bound = 1.f / std::sqrt(static_cast<float>(p->kv_dim()));
      const float hidden_bound = 1.f / std::sqrt(static_cast<float>(p->encoder_hidden));
      p->embedding = nn::parameter({p->n, p->kv_dim()}, 1.f, init_stream(seed, 0));
      p->w1 = nn::uniform_parameter({p->encoder_hidden, p->kv_dim()}, in_bound, init_stream(seed, 1));
      p->b1 = nn::uniform_parameter({p->encoder_hidden}, in_bound, init_stream(seed, 2));
      p->w2 = nn::uniform_parameter({width, p->encoder_hidden}, hidden_bound, init_stream(seed, 3));
      p->b2 = nn::uniform_parameter({width}, hidden_bound, init_stream(seed, 4));
    } else {
      p->table = nn::parameter({p->n, width}, 1.f, init_stream(seed, 0));
    }
    source_ = context.backbone().info().source;
    prefix_ = p;
    auto hook = std::make_shared<PrefixHook>(p);
    for (const Site* s : sites) {
      context.register_hook(*s, hook);
      context.declare_prefix(*s, p->n);  // the backbone numbers the real tokens after it, as Hugging Face does
    }
  }

  std::vector<nn::NamedParameter> parameters() const override {
    const Prefix& p = *prefix_;
    if (!p.projection) return {{"prompt_embeddings", p.table}};
    return {{"embedding.weight", p.embedding},
            {"transform.0.weight", p.w1},
            {"transform.0.bias", p.b1},
            {"transform.2.weight", p.w2},
            {"transform.2.bias", p.b2}};
  }

  std::string describe() const override {
    const Prefix& p = *prefix_;
    std::int64_t count = 0;
    for (const auto& x : parameters()) count += x.tensor.numel();
    return fmt::format("prefix tuning n={} on {} layers (keys and values, {} heads × {}){}, {} params", p.n, p.layers,
                       p.kv_heads, p.head_dim,
                       p.projection ? fmt::format(", projection MLP {}→{}", p.kv_dim(), p.encoder_hidden) : "", thousands(count));
  }

  std::string adapter_config_json() const override {
    const Prefix& p = *prefix_;
    return fmt::format(
        R"({{"peft_type": "PREFIX_TUNING", "task_type": null, "num_virtual_tokens": {}, "token_dim": {}, "num_layers": {},)"
        R"( "num_attention_heads": {}, "num_transformer_submodules": 1, "encoder_hidden_size": {}, "prefix_projection": {},)"
        R"( "inference_mode": true, "base_model_name_or_path": {}, "revision": null, "auto_mapping": null}})",
        p.n, p.kv_dim(), p.layers, p.kv_heads, p.encoder_hidden, config_.boolean("prefix_projection") ? "true" : "false",
        json_string(source_));
  }

  std::vector<std::pair<std::string, Tensor>> state() const override { return {{"prompt_embeddings", prefix_->folded()}}; }

  void load_state(const std::map<std::string, Tensor>& tensors) override {
    Prefix& p = *prefix_;
    const Shape want = {p.n, p.layers * 2 * p.kv_dim()};
    auto it = tensors.find("prompt_embeddings");
    if (it == tensors.end())
      throw FormatError("prefix_tuning", "the saved adapter has no tensor 'prompt_embeddings'",
                        "a prefix-tuning adapter (graft's or PEFT's) holds exactly that tensor");
    if (tensors.size() != 1)
      throw FormatError("prefix_tuning", fmt::format("the saved adapter has {} tensors; prefix tuning saves only 'prompt_embeddings'",
                                                     tensors.size()));
    if (it->second.shape() != want)
      throw FormatError("prefix_tuning", fmt::format("prompt_embeddings has shape {}, this backbone and config need {}",
                                                     shape_str(it->second.shape()), shape_str(want)),
                        "n × num_layers·2·num_key_value_heads·head_dim: the adapter was made for another backbone or n");
    const Tensor src = ops::to_dtype(it->second, DType::f32);
    if (p.projection) {  // folded: the MLP's output becomes the trained table
      p.projection = false;
      p.embedding = p.w1 = p.b1 = p.w2 = p.b2 = Tensor();
      p.table = nn::zeros_parameter(want);
    }
    std::memcpy(p.table.raw(), src.raw(), p.table.nbytes());
  }

 private:
  Config config_;
  std::string source_;
  std::shared_ptr<Prefix> prefix_;
};

PeftMethod* create(const Config& c) { return new PrefixTuning(c); }

}  // namespace

GRAFT_PLUGIN("prefix_tuning", "1.0.0",
             "Prefix tuning (Li & Liang 2021): trained key/value rows prepended in every attention layer; "
             "Hugging Face PEFT's PREFIX_TUNING format",
             kSchema, create, .peft_types = "PREFIX_TUNING", .default_lr = 1e-2)
