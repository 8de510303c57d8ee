// llama2.c checkpoints: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len), then f32 tensors in a fixed order. A negative
// vocab_size marks an unshared classifier at the end. The file size must equal what
// the header implies, so truncated or padded files are rejected before any read.
#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "graft/error.h"
#include "graft/ops.h"
#include "llama/llama_model.h"

namespace graft::backbones {
namespace {

struct Header {
  std::int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

std::vector<char> read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IoError("llama2c", fmt::format("cannot read '{}'", path.string()), "check the path to the .bin checkpoint");
  std::vector<char> bytes(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

}  // namespace

std::unique_ptr<LlamaModel> load_llama2c(const std::filesystem::path& path, DType dtype) {
  const std::vector<char> bytes = read_all(path);
  const std::string file = path.string();
  Header h;
  if (bytes.size() < sizeof(Header))
    throw FormatError("llama2c", fmt::format("'{}' is {} bytes, shorter than the 28-byte header", file, bytes.size()),
                      "is this a llama2.c checkpoint?");
  std::memcpy(&h, bytes.data(), sizeof(Header));
  const bool shared = h.vocab_size > 0;
  LlamaConfig c;
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = std::abs(static_cast<std::int64_t>(h.vocab_size));
  c.max_seq_len = h.seq_len;
  c.rope_interleaved = true;
  c.tied_embeddings = shared;
  const bool sane = c.dim > 0 && c.dim <= 65536 && c.hidden_dim > 0 && c.hidden_dim <= 1 << 20 && c.n_layers > 0 &&
                    c.n_layers <= 1024 && c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0 &&
                    c.dim % c.n_heads == 0 && (c.dim / c.n_heads) % 2 == 0 && c.vocab_size > 0 && c.vocab_size <= 1 << 24 &&
                    c.max_seq_len > 0 && c.max_seq_len <= 1 << 20;
  if (!sane)
    throw FormatError("llama2c",
                      fmt::format("'{}': implausible header (dim {}, hidden {}, layers {}, heads {}, kv heads {}, vocab {}, seq {})",
                                  file, h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len),
                      "heads must divide dim, kv heads must divide heads: is this a llama2.c checkpoint?");

  const std::int64_t L = c.n_layers, D = c.dim, F = c.hidden_dim, V = c.vocab_size;
  const std::int64_t head = D / c.n_heads, kv = c.n_kv_heads * head;
  std::size_t cursor = sizeof(Header);
  // Each read checks the remaining bytes first: a short file names the tensor it cut.
  auto take = [&](const char* name, Shape shape) {
    const std::size_t n = static_cast<std::size_t>(shape_numel(shape)) * sizeof(float);
    if (cursor + n > bytes.size())
      throw FormatError("llama2c", fmt::format("'{}' ends inside tensor '{}' (needs {} bytes at offset {}, file has {})", file,
                                               name, n, cursor, bytes.size()),
                        "the file is truncated, or its header does not match its weights");
    std::vector<float> values(static_cast<std::size_t>(shape_numel(shape)));
    std::memcpy(values.data(), bytes.data() + cursor, n);
    cursor += n;
    Tensor t = Tensor::from_floats(values, std::move(shape));
    if (const std::int64_t bad = count_non_finite(t); bad > 0)
      throw FormatError("llama2c", fmt::format("'{}': tensor '{}' holds {} non-finite values (NaN or inf)", file, name, bad),
                        "the checkpoint is corrupt (or was saved from a diverged run): export it again");
    return t;
  };
  LlamaWeights w;
  w.embed = take("token_embedding", {V, D});
  Tensor rms_att = take("rms_att", {L, D}), wq = take("wq", {L, D, D}), wk = take("wk", {L, kv, D});
  Tensor wv = take("wv", {L, kv, D}), wo = take("wo", {L, D, D}), rms_ffn = take("rms_ffn", {L, D});
  Tensor w1 = take("w1", {L, F, D}), w2 = take("w2", {L, D, F}), w3 = take("w3", {L, F, D});
  w.final_norm = take("rms_final", {D});
  take("freq_cis_real", {c.max_seq_len, head / 2});  // RoPE tables: recomputed, not read
  take("freq_cis_imag", {c.max_seq_len, head / 2});
  w.lm_head = shared ? w.embed : take("wcls", {V, D});
  if (cursor != bytes.size())
    throw FormatError("llama2c", fmt::format("'{}' has {} bytes after the last tensor", file, bytes.size() - cursor),
                      "the header does not match the weights (vocab sign, kv heads?)");
  for (std::int64_t l = 0; l < L; ++l) {
    auto layer = [&](const Tensor& stacked) { return ops::slice(stacked, 0, l, 1).view(Shape(stacked.shape().begin() + 1, stacked.shape().end())); };
    w.layers.push_back({layer(rms_att), layer(wq), layer(wk), layer(wv), layer(wo), layer(rms_ffn), layer(w1), layer(w3), layer(w2)});
  }
  auto model = std::make_unique<LlamaModel>(c, std::move(w), file);
  if (dtype != DType::f32) model->convert_weights(dtype);
  return model;
}

}  // namespace graft::backbones
