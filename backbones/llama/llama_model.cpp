#include "llama/llama_model.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/attention.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"

namespace graft::backbones {
namespace {

enum Slot { kQuery, kKey, kValue, kOutput, kGate, kUp, kDown, kAttention, kFfn, kKv, kAttentionNorm, kFfnNorm };

}  // namespace

LlamaModel::LlamaModel(LlamaConfig config, LlamaWeights weights, std::string source)
    : config_(config), weights_(std::move(weights)) {
  info_.architecture = "llama";
  info_.source = std::move(source);
  info_.num_layers = static_cast<int>(config_.n_layers);
  info_.hidden_size = config_.dim;
  info_.num_heads = config_.n_heads;
  info_.num_kv_heads = config_.n_kv_heads;
  info_.intermediate_size = config_.hidden_dim;
  info_.vocab_size = config_.vocab_size;
  info_.max_positions = config_.max_seq_len;
  info_.causal = true;
  for (const auto& p : parameters()) info_.parameter_count += p.tensor.numel();
  declare_sites();
}

void LlamaModel::declare_sites() {
  const std::int64_t head_dim = config_.dim / config_.n_heads, kv_dim = config_.n_kv_heads * head_dim;
  sites_.push_back({"embeddings", SiteKind::input_embeddings, -1, "embeddings", "model.embed_tokens", 0, config_.dim});
  for (int l = 0; l < config_.n_layers; ++l) {
    const std::string layer = fmt::format("layers.{}.", l), hf = fmt::format("model.layers.{}.", l);
    auto linear = [&](const char* module, const char* hf_module, std::int64_t in, std::int64_t out) {
      sites_.push_back({layer + module, SiteKind::linear, l, module, hf + hf_module, in, out});
    };
    linear("attention.query", "self_attn.q_proj", config_.dim, config_.dim);
    linear("attention.key", "self_attn.k_proj", config_.dim, kv_dim);
    linear("attention.value", "self_attn.v_proj", config_.dim, kv_dim);
    linear("attention.output", "self_attn.o_proj", config_.dim, config_.dim);
    linear("ffn.gate", "mlp.gate_proj", config_.dim, config_.hidden_dim);
    linear("ffn.up", "mlp.up_proj", config_.dim, config_.hidden_dim);
    linear("ffn.down", "mlp.down_proj", config_.hidden_dim, config_.dim);
    sites_.push_back({layer + "attention", SiteKind::sublayer_output, l, "attention", hf + "self_attn", 0, config_.dim});
    sites_.push_back({layer + "ffn", SiteKind::sublayer_output, l, "ffn", hf + "mlp", 0, config_.dim});
    sites_.push_back({layer + "attention.kv", SiteKind::attention_kv, l, "attention.kv", hf + "self_attn", 0, config_.dim,
                      config_.n_heads, config_.n_kv_heads, head_dim});
    sites_.push_back({layer + "attention.norm", SiteKind::norm, l, "attention.norm", hf + "input_layernorm", 0, config_.dim});
    sites_.push_back({layer + "ffn.norm", SiteKind::norm, l, "ffn.norm", hf + "post_attention_layernorm", 0, config_.dim});
  }
  sites_.push_back({"head", SiteKind::head, -1, "head", "lm_head", config_.dim, config_.vocab_size});
  sites_.push_back({"norm", SiteKind::norm, -1, "norm", "model.norm", 0, config_.dim});
}

std::vector<nn::NamedParameter> LlamaModel::parameters() const {
  std::vector<nn::NamedParameter> out{{"model.embed_tokens.weight", weights_.embed}};
  for (std::size_t l = 0; l < weights_.layers.size(); ++l) {
    const LlamaLayer& w = weights_.layers[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    out.push_back({p + "input_layernorm.weight", w.attn_norm});
    out.push_back({p + "self_attn.q_proj.weight", w.wq});
    out.push_back({p + "self_attn.k_proj.weight", w.wk});
    out.push_back({p + "self_attn.v_proj.weight", w.wv});
    out.push_back({p + "self_attn.o_proj.weight", w.wo});
    out.push_back({p + "post_attention_layernorm.weight", w.ffn_norm});
    out.push_back({p + "mlp.gate_proj.weight", w.w_gate});
    out.push_back({p + "mlp.up_proj.weight", w.w_up});
    out.push_back({p + "mlp.down_proj.weight", w.w_down});
  }
  out.push_back({"model.norm.weight", weights_.final_norm});
  if (!config_.tied_embeddings) out.push_back({"lm_head.weight", weights_.lm_head});
  return out;
}

void LlamaModel::convert_weights(DType dtype) {
  auto convert = [&](Tensor& t) { t = ops::to_dtype(t, dtype); };
  for (LlamaLayer& w : weights_.layers)
    for (Tensor* t : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) convert(*t);
  if (!config_.tied_embeddings) convert(weights_.lm_head);
  info_.dtype = dtype;
}

Tensor LlamaModel::forward(const Batch& batch, ForwardHooks* hooks, Tensor* mask_out, bool training) const {
  const TrainingModeGuard mode(training);  // LLaMA has no dropout of its own; the hooks may
  const Tensor& ids = batch.input_ids;
  Tensor mask = batch.attention_mask.defined() ? batch.attention_mask : ones_mask(ids.dim(0), ids.dim(1));
  return run(ids, mask, 0, nullptr, hooks, mask_out);
}

Tensor LlamaModel::forward_cached(const Tensor& input_ids, DecodingCache& decoding, ForwardHooks* hooks) const {
  auto* kv = dynamic_cast<KvCache*>(&decoding);
  if (!kv) throw Error("llama", "forward_cached was given a cache another backbone made", "use new_decoding_cache()");
  KvCache& cache = *kv;
  const std::int64_t past = cache.length();
  Tensor new_mask = ones_mask(input_ids.dim(0), input_ids.dim(1));
  cache.key_mask = past ? ops::concat({cache.key_mask, new_mask}, 1) : new_mask;
  if (cache.keys.empty()) {
    cache.keys.resize(config_.n_layers);
    cache.values.resize(config_.n_layers);
  }
  return run(input_ids, cache.key_mask, past, &cache, hooks, nullptr);
}

Tensor LlamaModel::lm_logits(const Tensor& hidden) const { return ops::linear(hidden, weights_.lm_head); }

Tensor LlamaModel::run(const Tensor& ids, const Tensor& key_mask, std::int64_t past, KvCache* cache, ForwardHooks* hooks,
                       Tensor* mask_out) const {
  if (ids.ndim() != 2) throw ShapeError("llama", fmt::format("input ids must be [batch, seq], got {}", shape_str(ids.shape())));
  const std::int64_t B = ids.dim(0), H = config_.n_heads, KV = config_.n_kv_heads, D = config_.dim / H;
  Tensor h = ops::embedding(weights_.embed, ids);
  Tensor keys_mask = key_mask;
  // Virtual input tokens are prepended once: with a cache they are past tokens after
  // the first call, and the cache's key mask must count them.
  if (hooks && past == 0) hooks->input_embeddings(sites_[0], h, keys_mask, Rows{});
  if (cache) cache->key_mask = keys_mask;
  // Virtual tokens prepended by a hook are part of the sequence: positions count them,
  // as in Hugging Face PEFT, so adapters move between the two unchanged.
  const std::int64_t Tq = h.dim(1);
  if (past + Tq > config_.max_seq_len)
    throw ShapeError("llama", fmt::format("{} tokens exceed the model's context of {}", past + Tq, config_.max_seq_len),
                     "shorten the input or the number of generated tokens");
  // An attention_kv prefix counts as past tokens, as in Hugging Face: the real tokens of
  // a row with an n-row prefix start at position past + n (RoPE then also sees the
  // prefix keys, which carry no rotation, at Hugging Face's relative angles).
  // Masked columns the host put in front of a row's virtual tokens (a mixed batch) take
  // no position, so the row numbers as it would alone (with a cache too: the hooks keep
  // the padding they set on the first call).
  std::vector<std::int64_t> offsets = hooks ? hooks->prefix_offsets(B) : std::vector<std::int64_t>{};
  const std::vector<std::int64_t> lead = hooks ? hooks->leading_padding() : std::vector<std::int64_t>{};
  if (!lead.empty()) {
    if (offsets.empty()) offsets.assign(static_cast<std::size_t>(B), 0);
    for (std::int64_t b = 0; b < B; ++b) offsets[b] -= lead[b];
  }
  const bool uniform = offsets.empty() || std::all_of(offsets.begin(), offsets.end(), [&](auto o) { return o == offsets[0]; });
  const std::int64_t rows = uniform ? 1 : B;
  std::vector<std::int64_t> pos(static_cast<std::size_t>(rows * Tq));
  for (std::int64_t b = 0; b < rows; ++b)
    for (std::int64_t t = 0; t < Tq; ++t) pos[b * Tq + t] = std::max<std::int64_t>(0, past + (offsets.empty() ? 0 : offsets[b]) + t);
  const std::int64_t last = *std::max_element(pos.begin(), pos.end());
  if (last >= config_.max_seq_len)
    throw ShapeError("llama", fmt::format("{} positions (prefix included) exceed the model's context of {}", last + 1,
                                          config_.max_seq_len));
  const Tensor positions = uniform ? Tensor::from_ints(pos, {Tq}) : Tensor::from_ints(pos, {B, Tq});
  Tensor mask = additive_mask(keys_mask, Tq, true);

  for (int l = 0; l < config_.n_layers; ++l) {
    const LlamaLayer& w = weights_.layers[l];
    Tensor x = site_norm(site(l, kAttentionNorm), hooks, h, w.attn_norm, Tensor(), config_.norm_eps);
    Tensor q = site_linear(site(l, kQuery), hooks, x, w.wq);
    Tensor k = site_linear(site(l, kKey), hooks, x, w.wk);
    Tensor v = site_linear(site(l, kValue), hooks, x, w.wv);
    q = ops::permute(ops::rope(ops::reshape(q, {B, Tq, H, D}), positions, config_.rope_theta, config_.rope_interleaved),
                     {0, 2, 1, 3});
    k = ops::permute(ops::rope(ops::reshape(k, {B, Tq, KV, D}), positions, config_.rope_theta, config_.rope_interleaved),
                     {0, 2, 1, 3});
    v = ops::permute(ops::reshape(v, {B, Tq, KV, D}), {0, 2, 1, 3});
    if (cache) {
      if (cache->keys[l].defined()) {
        k = ops::concat({cache->keys[l], k}, 2);
        v = ops::concat({cache->values[l], v}, 2);
      }
      cache->keys[l] = k;
      cache->values[l] = v;
    }
    Tensor layer_mask = mask;
    if (hooks) hooks->attention_kv(site(l, kKv), k, v, layer_mask, Rows{});
    Tensor attn = attention(q, k, v, layer_mask, 0.f, false, w.wq.dtype());
    attn = site_linear(site(l, kOutput), hooks, attn, w.wo);
    h = ops::add(h, site_sublayer(site(l, kAttention), hooks, h, attn));

    x = site_norm(site(l, kFfnNorm), hooks, h, w.ffn_norm, Tensor(), config_.norm_eps);
    Tensor gate = ops::silu(site_linear(site(l, kGate), hooks, x, w.w_gate));
    Tensor up = site_linear(site(l, kUp), hooks, x, w.w_up);
    Tensor down = site_linear(site(l, kDown), hooks, ops::mul(gate, up), w.w_down);
    h = ops::add(h, site_sublayer(site(l, kFfn), hooks, h, down));
  }
  if (mask_out) *mask_out = keys_mask;
  return site_norm(sites_.back(), hooks, h, weights_.final_norm, Tensor(), config_.norm_eps);
}

}  // namespace graft::backbones
