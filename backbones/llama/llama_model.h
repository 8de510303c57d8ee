// Llama-architecture decoder (Llama 2, TinyLlama, llama2.c models): RMSNorm, rotary
// embeddings, grouped-query attention, SwiGLU feed-forward, optional tied LM head.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "graft/backbone.h"

namespace graft::backbones {

struct LlamaConfig {
  std::int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, max_seq_len = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.f;
  bool rope_interleaved = false;  // llama2.c / Meta layout; Hugging Face checkpoints rotate halves
  bool tied_embeddings = true;
};

struct LlamaLayer {
  Tensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

struct LlamaWeights {
  Tensor embed;  // [vocab, dim]
  std::vector<LlamaLayer> layers;
  Tensor final_norm;
  Tensor lm_head;  // [vocab, dim]; the embedding itself when tied
};

// Keys and values of every layer for the tokens seen so far: [B, KV, S, head_dim].
struct KvCache : DecodingCache {
  std::vector<Tensor> keys, values;
  Tensor key_mask;  // [B, S]
  std::int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].dim(2); }
};

class LlamaModel : public Backbone {
 public:
  LlamaModel(LlamaConfig config, LlamaWeights weights, std::string source);

  const BackboneInfo& info() const override { return info_; }
  const std::vector<Site>& sites() const override { return sites_; }
  Tensor forward(const Batch& batch, ForwardHooks* hooks = nullptr, Tensor* mask_out = nullptr,
                 bool training = false) const override;
  std::vector<nn::NamedParameter> parameters() const override;

  // Forward over new tokens, reading and extending `cache` (generation).
  std::unique_ptr<DecodingCache> new_decoding_cache() const override { return std::make_unique<KvCache>(); }
  Tensor forward_cached(const Tensor& input_ids, DecodingCache& cache, ForwardHooks* hooks = nullptr) const override;
  Tensor lm_logits(const Tensor& hidden) const override;

  const LlamaConfig& config() const { return config_; }
  // Holds the matmul weights in bf16 (norms and embeddings stay f32).
  void convert_weights(DType dtype);

 private:
  Tensor run(const Tensor& ids, const Tensor& key_mask, std::int64_t past, KvCache* cache, ForwardHooks* hooks,
             Tensor* mask_out) const;
  const Site& site(int layer, int slot) const { return sites_[1 + layer * kSitesPerLayer + slot]; }
  void declare_sites();

  static constexpr int kSitesPerLayer = 12;
  LlamaConfig config_;
  LlamaWeights weights_;
  BackboneInfo info_;
  std::vector<Site> sites_;
};

// llama2.c checkpoint (the format of ../shared/models/README.md).
std::unique_ptr<LlamaModel> load_llama2c(const std::filesystem::path& path, DType dtype = DType::f32);
// Hugging Face LLaMA folder: config.json + model.safetensors.
std::unique_ptr<LlamaModel> load_hf_llama(const std::filesystem::path& folder, DType dtype = DType::f32);

}  // namespace graft::backbones
