// Hugging Face BERT / RoBERTa / MiniLM folders: config.json + model.safetensors. Weight
// names may carry the task model's prefix ("bert.", "roberta.") or none (base models,
// sentence-transformers); the prefix found is kept so adapter files name modules the
// way the checkpoint does.
#include <fmt/format.h>

#include "bert/bert_model.h"
#include "common/checkpoint.h"
#include "graft/error.h"
#include "io/json_config.h"

namespace graft::backbones {

std::unique_ptr<BertModel> load_hf_bert(const std::filesystem::path& folder, DType dtype) {
  const auto config_path = folder / "config.json";
  const nlohmann::json j = io::load_json(config_path);
  const std::string origin = config_path.string();
  BertConfig c;
  c.model_type = io::require_key<std::string>(j, "model_type", origin);
  if (c.model_type != "bert" && c.model_type != "roberta")
    throw FormatError("bert", fmt::format("'{}': model_type '{}' is not a BERT-family encoder", origin, c.model_type),
                      "supported encoders: bert (BERT, MiniLM), roberta");
  c.hidden = io::require_key<std::int64_t>(j, "hidden_size", origin);
  c.layers = io::require_key<std::int64_t>(j, "num_hidden_layers", origin);
  c.heads = io::require_key<std::int64_t>(j, "num_attention_heads", origin);
  c.intermediate = io::require_key<std::int64_t>(j, "intermediate_size", origin);
  c.vocab = io::require_key<std::int64_t>(j, "vocab_size", origin);
  c.max_positions = io::require_key<std::int64_t>(j, "max_position_embeddings", origin);
  c.type_vocab = io::optional_key<std::int64_t>(j, "type_vocab_size", 2, origin);
  c.layer_norm_eps = io::optional_key<float>(j, "layer_norm_eps", 1e-12f, origin);
  c.pad_token_id = io::optional_key<std::int64_t>(j, "pad_token_id", c.model_type == "roberta" ? 1 : 0, origin);
  c.dropout = io::optional_key<float>(j, "hidden_dropout_prob", 0.1f, origin);
  c.attention_dropout = io::optional_key<float>(j, "attention_probs_dropout_prob", 0.1f, origin);
  const auto act = io::optional_key<std::string>(j, "hidden_act", "gelu", origin);
  if (act == "gelu") c.gelu = ops::GeluApprox::erf;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.gelu = ops::GeluApprox::tanh;
  else
    throw FormatError("bert", fmt::format("'{}': hidden_act '{}' is not supported", origin, act),
                      "supported: gelu, gelu_new, gelu_pytorch_tanh");
  // Every size before any allocation; the weights are then checked against them.
  for (const auto& [key, value] : {std::pair<const char*, std::int64_t>{"hidden_size", c.hidden}, {"num_attention_heads", c.heads},
                                   {"intermediate_size", c.intermediate}, {"num_hidden_layers", c.layers},
                                   {"vocab_size", c.vocab}, {"max_position_embeddings", c.max_positions}})
    io::require_range(origin, key, static_cast<double>(value), 1, 1 << 24);
  io::require_range(origin, "num_hidden_layers", static_cast<double>(c.layers), 1, 1024);
  io::require_range(origin, "type_vocab_size", static_cast<double>(c.type_vocab), 1, 1 << 16);
  io::require_range(origin, "layer_norm_eps", c.layer_norm_eps, 1e-30, 0.1);
  io::require_range(origin, "hidden_dropout_prob", c.dropout, 0, 0.99);
  io::require_range(origin, "attention_probs_dropout_prob", c.attention_dropout, 0, 0.99);
  io::require_range(origin, "pad_token_id", static_cast<double>(c.pad_token_id), 0, static_cast<double>(c.vocab - 1));
  if (const auto positions = io::optional_key<std::string>(j, "position_embedding_type", "absolute", origin);
      positions != "absolute")
    throw FormatError("bert", fmt::format("'{}': position_embedding_type '{}' is not supported", origin, positions),
                      "graft's BERT-family encoder has absolute position embeddings only");
  if (c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0)
    throw FormatError("bert", fmt::format("'{}': hidden_size {} is not a multiple of num_attention_heads {}", origin, c.hidden, c.heads),
                      "config.json is inconsistent");

  const CheckpointReader ckpt(find_weights_file(folder));
  const std::string prefix = ckpt.find_prefix("embeddings.word_embeddings.weight", {"", c.model_type + ".", "bert.", "model."});
  const std::int64_t H = c.hidden, F = c.intermediate;
  auto get = [&](const std::string& name, const Shape& shape) { return ckpt.require(prefix + name, shape); };
  BertWeights w;
  w.word = get("embeddings.word_embeddings.weight", {c.vocab, H});
  w.position = get("embeddings.position_embeddings.weight", {c.max_positions, H});
  w.token_type = get("embeddings.token_type_embeddings.weight", {c.type_vocab, H});
  w.emb_ln_g = get("embeddings.LayerNorm.weight", {H});
  w.emb_ln_b = get("embeddings.LayerNorm.bias", {H});
  for (std::int64_t l = 0; l < c.layers; ++l) {
    const std::string p = fmt::format("encoder.layer.{}.", l);
    BertLayer x;
    x.wq = get(p + "attention.self.query.weight", {H, H});
    x.bq = get(p + "attention.self.query.bias", {H});
    x.wk = get(p + "attention.self.key.weight", {H, H});
    x.bk = get(p + "attention.self.key.bias", {H});
    x.wv = get(p + "attention.self.value.weight", {H, H});
    x.bv = get(p + "attention.self.value.bias", {H});
    x.wo = get(p + "attention.output.dense.weight", {H, H});
    x.bo = get(p + "attention.output.dense.bias", {H});
    x.attn_ln_g = get(p + "attention.output.LayerNorm.weight", {H});
    x.attn_ln_b = get(p + "attention.output.LayerNorm.bias", {H});
    x.w_up = get(p + "intermediate.dense.weight", {F, H});
    x.b_up = get(p + "intermediate.dense.bias", {F});
    x.w_down = get(p + "output.dense.weight", {H, F});
    x.b_down = get(p + "output.dense.bias", {H});
    x.ffn_ln_g = get(p + "output.LayerNorm.weight", {H});
    x.ffn_ln_b = get(p + "output.LayerNorm.bias", {H});
    w.layers.push_back(std::move(x));
  }
  if (ckpt.contains(prefix + fmt::format("encoder.layer.{}.attention.self.query.weight", c.layers)))
    throw FormatError("bert",
                      fmt::format("'{}': num_hidden_layers is {}, but '{}' holds more layers", origin, c.layers,
                                  ckpt.path().string()),
                      "config.json and the weights come from different models; restore the original config.json");
  auto model = std::make_unique<BertModel>(c, std::move(w), folder.string(), prefix);
  if (dtype != DType::f32) model->convert_weights(dtype);
  return model;
}

}  // namespace graft::backbones
