// Sites: the named injection points a backbone declares when it is built, and the one
// hook interface through which PEFT methods act on them during a forward pass. A
// plugin's hooks and the host's dispatcher (which a backbone calls) implement the same
// AdapterHook.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graft/tensor.h"

namespace graft {

// The additive attention mask's value for a hidden key: exp() underflows to exactly 0,
// and a fully hidden row stays finite (uniform) instead of turning into NaN. Backbones
// build their masks with it; a hook that prepends keys hides them from a row with it.
inline constexpr float kMaskedScore = -1e30f;

// `norm` (ABI 2.1): a layer norm (BERT) or RMSNorm (LLaMA) of the backbone; appended, so
// the kinds of ABI 2.0 keep their values.
enum class SiteKind { linear, sublayer_output, attention_kv, input_embeddings, head, norm };
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

// Which rows of the batch a hook applies to at this call. The host runs each adapter
// on the rows it owns gathered into a batch of their own, so it passes every row
// (mask undefined); a hook that gates with it stays correct if a caller passes a mask.
struct Rows {
  // Undefined: every row. Otherwise f32 [B] of 1 (apply) / 0 (leave unchanged).
  Tensor mask;
  bool all() const { return !mask.defined(); }
  // `delta` ([B, ...]) with the rows this adapter does not own zeroed: add it to the
  // frozen output and per-row selection needs no other code in a hook.
  Tensor gate(const Tensor& delta) const;
};

// A linear site's call: y = x Wᵀ + b was computed from x with the frozen W and b.
// weight and bias are the backbone's own tensors (f32, or bf16 for a bf16 backbone):
// read them, never write them. In a stack of adapters `y` is the previous hook's result
// while x, weight and bias stay the site's.
struct LinearCall {
  Tensor x;       // [B, T, in]
  Tensor weight;  // [out, in]
  Tensor bias;    // [out]; undefined when the layer has none (LLaMA)
  Tensor y;       // [B, T, out]
};

// A sublayer's call: `input` is what entered the attention or feed-forward block (the
// residual its output is added to; in pre-norm LLaMA before the block's RMSNorm), `h`
// the block's output before that residual add (after BERT's dropout, before its norm).
// In a stack `h` is the previous hook's result; `input` stays the block's.
struct SublayerCall {
  Tensor input;  // [B, T, hidden]
  Tensor h;      // [B, T, hidden]
};

// A norm site's call: y = norm(x) computed with the frozen weight (and bias: LayerNorm;
// undefined for RMSNorm) and eps. In a stack `y` is the previous hook's result.
struct NormCall {
  Tensor x;       // [B, T, hidden]: what enters the norm
  Tensor weight;  // [hidden]
  Tensor bias;    // [hidden]; undefined for RMSNorm
  float eps = 0;
  Tensor y;       // [B, T, hidden]
};

// What a method does at one site. Written with graft::ops: gradients flow through it.
// The defaults pass through.
class AdapterHook {
 public:
  virtual ~AdapterHook() = default;
  // linear: return call.y or a modified y (y + Δ, y·s, a function of x, W and b).
  virtual Tensor linear(const Site& site, const LinearCall& call, const Rows& rows) { return call.y; }
  // sublayer_output: return a transformed h (it is then added to the residual).
  virtual Tensor sublayer_output(const Site& site, const SublayerCall& call, const Rows& rows) { return call.h; }
  // attention_kv: keys and values [B, kv_heads, S, head_dim] and the additive mask
  // [B, 1, T, S] (0 visible, kMaskedScore hidden); prepend rows to k and v and matching
  // columns to the mask. A hook that
  // prepends must have declared their number at attach (AttachContext::declare_prefix).
  virtual void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask, const Rows& rows) {}
  // input_embeddings: token embeddings x [B, T, hidden] (before positions are added)
  // and the key mask [B, T] (1 keep, 0 pad); prepend virtual tokens to both. Positions
  // are assigned after this hook, so virtual tokens take the first ones, as in PEFT.
  virtual void input_embeddings(const Site& site, Tensor& x, Tensor& key_mask, const Rows& rows) {}
  // norm (ABI 2.1; last in the table, so hooks built against 2.0 keep their layout, and
  // the host calls it only on hooks registered at norm sites): return call.y or a
  // replacement, e.g. the norm recomputed with weights of the adapter's own.
  virtual Tensor norm(const Site& site, const NormCall& call, const Rows& rows) { return call.y; }
};

// The hooks of one forward pass, as the host binds them from a selection: the backbone
// calls them at every site (with every row) and reads where each row's real tokens
// start. attention_kv prefixes are past tokens (Hugging Face passes them as
// past_key_values), so the real tokens of row b take positions from offset b on; the
// host knows the offsets before the pass from the lengths methods declared at attach.
class ForwardHooks : public AdapterHook {
 public:
  // [batch] positions taken by prefixes in each row; empty: no prefix. A ShapeError
  // when a per-row selection was bound for another batch size.
  std::vector<std::int64_t> prefix_offsets(std::int64_t batch) const;
  // After input_embeddings: [batch] columns of masked padding the host put in front of
  // each row so rows with prompts of different lengths line up (a mixed batch); empty:
  // none. Positions do not count them: the first column after row b's padding takes
  // the position the row's first column would take alone.
  const std::vector<std::int64_t>& leading_padding() const { return leading_pad_; }

 protected:
  std::int64_t prefix_all_ = 0;            // taken in every row
  std::vector<std::int64_t> prefix_rows_;  // added per row (per-row selection), or empty
  std::vector<std::int64_t> leading_pad_;  // set by input_embeddings, or empty
};

}  // namespace graft
