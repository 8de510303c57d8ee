// Hugging Face LLaMA folders: config.json + model.safetensors, weights named
// model.layers.N.self_attn.q_proj.weight etc. HF stores q/k rows permuted for the
// rotate-half RoPE layout, which graft's rope(…, interleaved=false) matches.
#include <fmt/format.h>

#include "common/checkpoint.h"
#include "graft/error.h"
#include "io/json_config.h"
#include "llama/llama_model.h"

namespace graft::backbones {

std::unique_ptr<LlamaModel> load_hf_llama(const std::filesystem::path& folder, DType dtype) {
  const auto config_path = folder / "config.json";
  const nlohmann::json j = io::load_json(config_path);
  const std::string origin = config_path.string();
  const auto model_type = io::optional_key<std::string>(j, "model_type", "llama", origin);
  if (model_type != "llama" && model_type != "mistral")
    throw FormatError("llama", fmt::format("'{}': model_type '{}' is not a LLaMA architecture", origin, model_type),
                      "supported: llama (and llama-compatible mistral without sliding windows)");
  LlamaConfig c;
  c.dim = io::require_key<std::int64_t>(j, "hidden_size", origin);
  c.hidden_dim = io::require_key<std::int64_t>(j, "intermediate_size", origin);
  c.n_layers = io::require_key<std::int64_t>(j, "num_hidden_layers", origin);
  c.n_heads = io::require_key<std::int64_t>(j, "num_attention_heads", origin);
  c.n_kv_heads = io::optional_key<std::int64_t>(j, "num_key_value_heads", c.n_heads, origin);
  c.vocab_size = io::require_key<std::int64_t>(j, "vocab_size", origin);
  c.max_seq_len = io::optional_key<std::int64_t>(j, "max_position_embeddings", 2048, origin);
  c.norm_eps = io::optional_key<float>(j, "rms_norm_eps", 1e-6f, origin);
  c.rope_theta = io::optional_key<float>(j, "rope_theta", 10000.f, origin);
  c.tied_embeddings = io::optional_key<bool>(j, "tie_word_embeddings", false, origin);
  c.rope_interleaved = false;
  for (const auto& [key, value] : {std::pair<const char*, std::int64_t>{"hidden_size", c.dim}, {"intermediate_size", c.hidden_dim},
                                   {"num_attention_heads", c.n_heads}, {"num_key_value_heads", c.n_kv_heads},
                                   {"vocab_size", c.vocab_size}, {"max_position_embeddings", c.max_seq_len}})
    io::require_range(origin, key, static_cast<double>(value), 1, 1 << 24);
  io::require_range(origin, "num_hidden_layers", static_cast<double>(c.n_layers), 1, 1024);
  io::require_range(origin, "rms_norm_eps", c.norm_eps, 1e-30, 0.1);
  io::require_range(origin, "rope_theta", c.rope_theta, 1, 1e9);
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0)
    throw FormatError("llama", fmt::format("'{}': hidden_size {} / num_attention_heads {} / num_key_value_heads {} do not divide",
                                           origin, c.dim, c.n_heads, c.n_kv_heads),
                      "heads must divide hidden_size and key/value heads must divide heads");
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null())
    throw FormatError("llama", fmt::format("'{}': rope_scaling is not supported yet", origin),
                      "use a checkpoint without rope_scaling");

  const CheckpointReader ckpt(find_weights_file(folder));
  const std::int64_t D = c.dim, F = c.hidden_dim, V = c.vocab_size, kv = c.n_kv_heads * (D / c.n_heads);
  LlamaWeights w;
  w.embed = ckpt.require("model.embed_tokens.weight", {V, D});
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    w.layers.push_back({ckpt.require(p + "input_layernorm.weight", {D}), ckpt.require(p + "self_attn.q_proj.weight", {D, D}),
                        ckpt.require(p + "self_attn.k_proj.weight", {kv, D}), ckpt.require(p + "self_attn.v_proj.weight", {kv, D}),
                        ckpt.require(p + "self_attn.o_proj.weight", {D, D}), ckpt.require(p + "post_attention_layernorm.weight", {D}),
                        ckpt.require(p + "mlp.gate_proj.weight", {F, D}), ckpt.require(p + "mlp.up_proj.weight", {F, D}),
                        ckpt.require(p + "mlp.down_proj.weight", {D, F})});
  }
  w.final_norm = ckpt.require("model.norm.weight", {D});
  w.lm_head = c.tied_embeddings ? w.embed : ckpt.require("lm_head.weight", {V, D});
  if (ckpt.contains(fmt::format("model.layers.{}.self_attn.q_proj.weight", c.n_layers)))
    throw FormatError("llama",
                      fmt::format("'{}': num_hidden_layers is {}, but '{}' holds more layers", origin, c.n_layers,
                                  ckpt.path().string()),
                      "config.json and the weights come from different models; restore the original config.json");
  auto model = std::make_unique<LlamaModel>(c, std::move(w), folder.string());
  if (dtype != DType::f32) model->convert_weights(dtype);
  return model;
}

}  // namespace graft::backbones
