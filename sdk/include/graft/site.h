// Sites: the named injection points a backbone declares when it is built, and the
// hook interface through which PEFT methods act on them during a forward pass.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graft/tensor.h"

namespace graft {

enum class SiteKind { linear, sublayer_output, attention_kv, input_embeddings, head };
const char* site_kind_name(SiteKind kind);

struct Site {
  std::string name;    // "layers.3.attention.query"
  SiteKind kind;
  int layer = -1;      // index in the layer stack; -1 for embeddings and head
  std::string module;  // the name without "layers.N.": "attention.query", "ffn.up", "attention", "embeddings"
  std::string checkpoint_module;  // the module's name in the checkpoint ("model.layers.3.self_attn.q_proj"),
                                  // which adapter files in Hugging Face PEFT's format refer to
  std::int64_t in_features = 0;   // linear: weight [out_features, in_features]
  std::int64_t out_features = 0;  // linear: output width; others: hidden size
  std::int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;  // attention_kv
};

// What a method may do at each kind of site. A backbone calls these during forward;
// the defaults leave the frozen computation untouched. Hooks are written with ops, so
// gradients flow through them without hand-written backward code.
class SiteHooks {
 public:
  virtual ~SiteHooks() = default;
  // linear: y = x Wᵀ + b was computed from x; return y or a modified y (y + Δ, y·s).
  virtual Tensor linear(const Site& site, const Tensor& x, const Tensor& y) { return y; }
  // sublayer_output: h [B, T, hidden] before the residual add; return a transformed h.
  virtual Tensor sublayer_output(const Site& site, const Tensor& h) { return h; }
  // attention_kv: keys and values [B, kv_heads, S, head_dim] and the additive mask
  // [B, 1, T, S]; prepend rows to k and v and matching columns to the mask.
  virtual void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask) {}
  // input_embeddings: token embeddings x [B, T, hidden] (before positions are added)
  // and the key mask [B, T] (1 keep, 0 pad); prepend virtual tokens to both. Positions
  // are assigned after this hook, so virtual tokens take the first ones, as in PEFT.
  virtual void input_embeddings(const Site& site, Tensor& x, Tensor& mask) {}
  // attention_kv prefixes are past tokens (Hugging Face passes them as past_key_values):
  // the real tokens of row b take positions from offsets[b] on. Asked once per forward,
  // after input_embeddings and before positions are assigned; empty: no prefix.
  virtual std::vector<std::int64_t> prefix_positions(std::int64_t batch) { return {}; }
};

}  // namespace graft
