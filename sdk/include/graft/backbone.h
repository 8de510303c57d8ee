// A frozen pre-trained transformer: its description, its sites, its weights and a
// forward pass that calls the hooks at every site.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graft/nn.h"
#include "graft/site.h"
#include "graft/tensor.h"

namespace graft {

struct BackboneInfo {
  std::string architecture;  // "bert", "roberta", "llama"
  std::string source;        // the folder or file it was loaded from
  int num_layers = 0;
  std::int64_t hidden_size = 0, num_heads = 0, num_kv_heads = 0, intermediate_size = 0;
  std::int64_t vocab_size = 0, max_positions = 0;
  std::int64_t parameter_count = 0;
  DType dtype = DType::f32;  // how the frozen weights are held
  bool causal = false;       // decoder (causal attention) or encoder
};

// A tokenised batch: ids [B, T] (i64), attention mask [B, T] (1 token, 0 padding),
// token type ids [B, T] (encoders with segment embeddings; may be undefined).
struct Batch {
  Tensor input_ids;
  Tensor attention_mask;
  Tensor token_type_ids;
};

// Past keys and values of a decoder between incremental decoding calls; each backbone
// keeps its own kind.
class DecodingCache {
 public:
  virtual ~DecodingCache() = default;
};

class Backbone {
 public:
  virtual ~Backbone() = default;
  virtual const BackboneInfo& info() const = 0;
  virtual const std::vector<Site>& sites() const = 0;
  // Final hidden states [B, T', hidden]; T' > T when a hook prepended virtual tokens.
  // `mask_out`, when given, receives the key mask [B, T'] that matches them.
  // `training` turns on the checkpoint's own dropout (as a PyTorch model in train mode).
  // `hooks`: the selected adapters' hooks for this pass (AdapterSet::bind); null: none.
  virtual Tensor forward(const Batch& batch, ForwardHooks* hooks = nullptr, Tensor* mask_out = nullptr,
                         bool training = false) const = 0;
  // Every frozen weight, under its checkpoint name (for full fine-tuning and checks).
  virtual std::vector<nn::NamedParameter> parameters() const = 0;
  // Next-token logits [.., vocab] from final hidden states, for models with an LM head
  // (decoders); encoders throw a ConfigError.
  virtual Tensor lm_logits(const Tensor& hidden) const;
  // Incremental decoding (decoders; encoders throw a ConfigError): an empty cache, and
  // the final hidden states of `input_ids` [B, T] after the tokens already in `cache`,
  // which it then extends.
  virtual std::unique_ptr<DecodingCache> new_decoding_cache() const;
  virtual Tensor forward_cached(const Tensor& input_ids, DecodingCache& cache, ForwardHooks* hooks = nullptr) const;
};

}  // namespace graft
