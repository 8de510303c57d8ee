#include "bert/bert_model.h"

#include <fmt/format.h>

#include "common/attention.h"
#include "graft/autograd.h"
#include "graft/error.h"

namespace graft::backbones {
namespace {

enum Slot { kQuery, kKey, kValue, kOutput, kUp, kDown, kAttention, kFfn, kKv, kAttentionNorm, kFfnNorm };

}  // namespace

BertModel::BertModel(BertConfig config, BertWeights weights, std::string source, std::string prefix)
    : config_(std::move(config)), weights_(std::move(weights)), prefix_(std::move(prefix)) {
  info_.architecture = config_.model_type;
  info_.source = std::move(source);
  info_.num_layers = static_cast<int>(config_.layers);
  info_.hidden_size = config_.hidden;
  info_.num_heads = info_.num_kv_heads = config_.heads;
  info_.intermediate_size = config_.intermediate;
  info_.vocab_size = config_.vocab;
  // RoBERTa numbers positions from padding_idx + 1: that many fewer tokens fit.
  info_.max_positions = config_.model_type == "roberta" ? config_.max_positions - config_.pad_token_id - 1 : config_.max_positions;
  for (const auto& p : parameters()) info_.parameter_count += p.tensor.numel();
  declare_sites();
}

void BertModel::declare_sites() {
  const std::int64_t H = config_.hidden, F = config_.intermediate;
  sites_.push_back({"embeddings", SiteKind::input_embeddings, -1, "embeddings", prefix_ + "embeddings.word_embeddings", 0, H});
  for (int l = 0; l < config_.layers; ++l) {
    const std::string layer = fmt::format("layers.{}.", l), hf = fmt::format("{}encoder.layer.{}.", prefix_, l);
    auto linear = [&](const char* module, const char* hf_module, std::int64_t in, std::int64_t out) {
      sites_.push_back({layer + module, SiteKind::linear, l, module, hf + hf_module, in, out});
    };
    linear("attention.query", "attention.self.query", H, H);
    linear("attention.key", "attention.self.key", H, H);
    linear("attention.value", "attention.self.value", H, H);
    linear("attention.output", "attention.output.dense", H, H);
    linear("ffn.up", "intermediate.dense", H, F);
    linear("ffn.down", "output.dense", F, H);
    sites_.push_back({layer + "attention", SiteKind::sublayer_output, l, "attention", hf + "attention.output", 0, H});
    sites_.push_back({layer + "ffn", SiteKind::sublayer_output, l, "ffn", hf + "output", 0, H});
    sites_.push_back({layer + "attention.kv", SiteKind::attention_kv, l, "attention.kv", hf + "attention.self", 0, H,
                      config_.heads, config_.heads, H / config_.heads});
    sites_.push_back({layer + "attention.norm", SiteKind::norm, l, "attention.norm", hf + "attention.output.LayerNorm", 0, H});
    sites_.push_back({layer + "ffn.norm", SiteKind::norm, l, "ffn.norm", hf + "output.LayerNorm", 0, H});
  }
  sites_.push_back({"head", SiteKind::head, -1, "head", "classifier", H, 0});
  sites_.push_back({"embeddings.norm", SiteKind::norm, -1, "embeddings.norm", prefix_ + "embeddings.LayerNorm", 0, H});
}

std::vector<nn::NamedParameter> BertModel::parameters() const {
  const BertWeights& w = weights_;
  const std::string e = prefix_ + "embeddings.";
  std::vector<nn::NamedParameter> out{{e + "word_embeddings.weight", w.word},
                                      {e + "position_embeddings.weight", w.position},
                                      {e + "token_type_embeddings.weight", w.token_type},
                                      {e + "LayerNorm.weight", w.emb_ln_g},
                                      {e + "LayerNorm.bias", w.emb_ln_b}};
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const BertLayer& x = w.layers[l];
    const std::string p = fmt::format("{}encoder.layer.{}.", prefix_, l);
    const std::pair<const char*, const Tensor*> named[] = {
        {"attention.self.query.weight", &x.wq},     {"attention.self.query.bias", &x.bq},
        {"attention.self.key.weight", &x.wk},       {"attention.self.key.bias", &x.bk},
        {"attention.self.value.weight", &x.wv},     {"attention.self.value.bias", &x.bv},
        {"attention.output.dense.weight", &x.wo},   {"attention.output.dense.bias", &x.bo},
        {"attention.output.LayerNorm.weight", &x.attn_ln_g}, {"attention.output.LayerNorm.bias", &x.attn_ln_b},
        {"intermediate.dense.weight", &x.w_up},     {"intermediate.dense.bias", &x.b_up},
        {"output.dense.weight", &x.w_down},         {"output.dense.bias", &x.b_down},
        {"output.LayerNorm.weight", &x.ffn_ln_g},   {"output.LayerNorm.bias", &x.ffn_ln_b}};
    for (const auto& [name, tensor] : named) out.push_back({p + name, *tensor});
  }
  return out;
}

void BertModel::convert_weights(DType dtype) {
  for (BertLayer& x : weights_.layers)
    for (Tensor* t : {&x.wq, &x.wk, &x.wv, &x.wo, &x.w_up, &x.w_down}) *t = ops::to_dtype(*t, dtype);
  info_.dtype = dtype;
}

// `offsets` [B] (or empty): positions taken by an attention_kv prefix in each row;
// `lead` [B] (or empty): masked columns the host put in front of a row's virtual tokens
// (a mixed batch), which take no position: the row numbers as it would alone.
Tensor BertModel::position_ids(const Batch& batch, std::int64_t virtual_tokens, std::int64_t length,
                               const std::vector<std::int64_t>& offsets, const std::vector<std::int64_t>& lead) const {
  const std::int64_t B = batch.input_ids.dim(0), T = batch.input_ids.dim(1);
  std::vector<std::int64_t> pos(static_cast<std::size_t>(B * length));
  if (config_.model_type != "roberta") {
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t skip = lead.empty() ? 0 : lead[b];
      for (std::int64_t t = 0; t < length; ++t)
        pos[b * length + t] = t < skip ? 0 : (offsets.empty() ? 0 : offsets[b]) + t - skip;
    }
  } else {
    // RoBERTa numbers non-pad tokens from padding_idx + 1; pads keep padding_idx.
    const std::vector<std::int64_t> ids = batch.input_ids.to_ints();
    const std::int64_t pad = config_.pad_token_id;
    for (std::int64_t b = 0; b < B; ++b) {
      std::int64_t count = 0;
      const std::int64_t skip = lead.empty() ? 0 : lead[b];
      for (std::int64_t t = 0; t < length; ++t) {
        const bool real = t < virtual_tokens ? t >= skip : ids[b * T + (t - virtual_tokens)] != pad;
        pos[b * length + t] = real ? pad + (offsets.empty() ? 0 : offsets[b]) + ++count : pad;
      }
    }
  }
  for (auto p : pos)
    if (p >= config_.max_positions)
      throw ShapeError("bert", fmt::format("sequence of {} tokens (after any prefix) exceeds the model's {} positions", length, config_.max_positions),
                       "truncate inputs to the model's maximum length");
  return Tensor::from_ints(pos, {B, length});
}

Tensor BertModel::forward(const Batch& batch, ForwardHooks* hooks, Tensor* mask_out, bool training) const {
  const TrainingModeGuard mode(training);  // for the hooks' own dropout
  const Tensor& ids = batch.input_ids;
  if (ids.ndim() != 2) throw ShapeError("bert", fmt::format("input ids must be [batch, seq], got {}", shape_str(ids.shape())));
  const std::int64_t B = ids.dim(0), T = ids.dim(1), H = config_.hidden, heads = config_.heads, D = H / heads;
  const BertWeights& w = weights_;
  Tensor key_mask = batch.attention_mask.defined() ? batch.attention_mask : ones_mask(B, T);

  Tensor x = ops::embedding(w.word, ids);
  if (hooks) hooks->input_embeddings(sites_[0], x, key_mask, Rows{});
  const std::int64_t L = x.dim(1), virtual_tokens = L - T;
  const std::vector<std::int64_t> offsets = hooks ? hooks->prefix_offsets(B) : std::vector<std::int64_t>{};
  // Segment ids: virtual tokens are segment 0, as PEFT pads them.
  std::vector<std::int64_t> types(static_cast<std::size_t>(B * L), 0);
  if (batch.token_type_ids.defined()) {
    const auto given = batch.token_type_ids.to_ints();
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < T; ++t) types[b * L + virtual_tokens + t] = given[b * T + t];
  }
  const std::vector<std::int64_t> lead = hooks ? hooks->leading_padding() : std::vector<std::int64_t>{};
  x = ops::add(x, ops::embedding(w.position, position_ids(batch, virtual_tokens, L, offsets, lead)));
  x = ops::add(x, ops::embedding(w.token_type, Tensor::from_ints(types, {B, L})));
  Tensor h = ops::dropout(site_norm(sites_.back(), hooks, x, w.emb_ln_g, w.emb_ln_b, config_.layer_norm_eps), config_.dropout,
                          training);
  const Tensor mask = additive_mask(key_mask, L, false);

  for (int l = 0; l < config_.layers; ++l) {
    const BertLayer& p = w.layers[l];
    const Site* s = &sites_[1 + l * kSitesPerLayer];
    auto heads_first = [&](const Tensor& t) { return ops::permute(ops::reshape(t, {B, L, heads, D}), {0, 2, 1, 3}); };
    Tensor q = heads_first(site_linear(s[kQuery], hooks, h, p.wq, p.bq));
    Tensor k = heads_first(site_linear(s[kKey], hooks, h, p.wk, p.bk));
    Tensor v = heads_first(site_linear(s[kValue], hooks, h, p.wv, p.bv));
    Tensor layer_mask = mask;
    if (hooks) hooks->attention_kv(s[kKv], k, v, layer_mask, Rows{});
    Tensor context = attention(q, k, v, layer_mask, config_.attention_dropout, training, p.wq.dtype());
    Tensor attn = ops::dropout(site_linear(s[kOutput], hooks, context, p.wo, p.bo), config_.dropout, training);
    h = site_norm(s[kAttentionNorm], hooks, ops::add(site_sublayer(s[kAttention], hooks, h, attn), h), p.attn_ln_g, p.attn_ln_b,
                  config_.layer_norm_eps);

    Tensor up = ops::gelu(site_linear(s[kUp], hooks, h, p.w_up, p.b_up), config_.gelu);
    Tensor down = ops::dropout(site_linear(s[kDown], hooks, up, p.w_down, p.b_down), config_.dropout, training);
    h = site_norm(s[kFfnNorm], hooks, ops::add(site_sublayer(s[kFfn], hooks, h, down), h), p.ffn_ln_g, p.ffn_ln_b,
                  config_.layer_norm_eps);
  }
  if (mask_out) *mask_out = key_mask;
  return h;
}

}  // namespace graft::backbones
