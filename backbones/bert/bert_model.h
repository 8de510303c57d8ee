// BERT-family encoders (BERT, RoBERTa, MiniLM) from Hugging Face checkpoints: learned
// positions and segments, post-layer-norm blocks, GELU feed-forward.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "graft/backbone.h"
#include "graft/ops.h"

namespace graft::backbones {

struct BertConfig {
  std::string model_type = "bert";  // bert | roberta (positions offset past padding_idx)
  std::int64_t hidden = 0, layers = 0, heads = 0, intermediate = 0, vocab = 0, max_positions = 0, type_vocab = 0;
  float layer_norm_eps = 1e-12f;
  ops::GeluApprox gelu = ops::GeluApprox::erf;
  std::int64_t pad_token_id = 0;
  float dropout = 0.1f, attention_dropout = 0.1f;  // used only when training with dropout on
};

struct BertLayer {
  Tensor wq, bq, wk, bk, wv, bv, wo, bo, attn_ln_g, attn_ln_b, w_up, b_up, w_down, b_down, ffn_ln_g, ffn_ln_b;
};

struct BertWeights {
  Tensor word, position, token_type, emb_ln_g, emb_ln_b;
  std::vector<BertLayer> layers;
};

class BertModel : public Backbone {
 public:
  BertModel(BertConfig config, BertWeights weights, std::string source, std::string prefix);

  const BackboneInfo& info() const override { return info_; }
  const std::vector<Site>& sites() const override { return sites_; }
  Tensor forward(const Batch& batch, ForwardHooks* hooks = nullptr, Tensor* mask_out = nullptr,
                 bool training = false) const override;
  std::vector<nn::NamedParameter> parameters() const override;

  const BertConfig& config() const { return config_; }
  void convert_weights(DType dtype);

 private:
  Tensor position_ids(const Batch& batch, std::int64_t virtual_tokens, std::int64_t length,
                      const std::vector<std::int64_t>& offsets, const std::vector<std::int64_t>& lead) const;
  void declare_sites();

  static constexpr int kSitesPerLayer = 11;
  BertConfig config_;
  BertWeights weights_;
  std::string prefix_;  // "bert.", "roberta." or "" — as found in the checkpoint
  BackboneInfo info_;
  std::vector<Site> sites_;
};

// A Hugging Face folder whose config.json has model_type bert or roberta.
std::unique_ptr<BertModel> load_hf_bert(const std::filesystem::path& folder, DType dtype = DType::f32);

}  // namespace graft::backbones
