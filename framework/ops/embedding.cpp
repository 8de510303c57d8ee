// Embedding gather (oneDNN has no gather primitive): rows of a [vocab, dim] table
// picked by integer ids. Backward scatter-adds into the table's gradient.
#include <cstring>

#include "graft/ops.h"
#include "ops/op_util.h"

namespace graft::ops {
namespace {

std::vector<std::int64_t> checked_ids(const Tensor& ids, std::int64_t vocab) {
  if (ids.dtype() != DType::i32 && ids.dtype() != DType::i64)
    throw ShapeError("embedding", fmt::format("ids must be i32 or i64, got {}", dtype_name(ids.dtype())));
  std::vector<std::int64_t> out = ids.to_ints();
  for (std::size_t i = 0; i < out.size(); ++i)
    if (out[i] < 0 || out[i] >= vocab)
      throw ShapeError("embedding", fmt::format("id {} at position {} is outside the vocabulary of {} rows", out[i], i, vocab),
                       "check that the tokenizer and the embedding table belong to the same model");
  return out;
}

class EmbeddingOp : public Op {
 public:
  std::string_view name() const override { return "embedding"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating("embedding", in[0]);
    require_defined("embedding", in[1], "ids");
    const Tensor& table = in[0];
    if (table.ndim() != 2) throw ShapeError("embedding", fmt::format("table must be [vocab, dim], got {}", shape_str(table.shape())));
    const std::int64_t dim = table.dim(1);
    const std::vector<std::int64_t> ids = checked_ids(in[1], table.dim(0));
    Shape out_shape = in[1].shape();
    out_shape.push_back(dim);
    Tensor out = Tensor::empty(out_shape);
    float* o = out.data<float>();
    const std::int64_t n = static_cast<std::int64_t>(ids.size());
    if (table.dtype() == DType::f32) {
      const float* t = table.data<float>();
#pragma omp parallel for if (n > 64)
      for (std::int64_t i = 0; i < n; ++i) std::memcpy(o + i * dim, t + ids[i] * dim, dim * sizeof(float));
    } else {
      const auto* t = table.data<std::uint16_t>();
#pragma omp parallel for if (n > 64)
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < dim; ++j) o[i * dim + j] = bf16_to_f32(t[ids[i] * dim + j]);
    }
    return {out};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    const Tensor& table = in[0];
    const std::int64_t dim = table.dim(1);
    const std::vector<std::int64_t> ids = in[1].to_ints();
    Tensor dt = Tensor::zeros(table.shape());
    const Tensor g = as_f32(gout[0]);
    float* d = dt.data<float>();
    const float* gp = g.data<float>();
    // Serial over ids (repeated ids add into one row), parallel over the row.
    for (std::size_t i = 0; i < ids.size(); ++i) {
      float* row = d + ids[i] * dim;
      const float* src = gp + static_cast<std::int64_t>(i) * dim;
#pragma omp simd
      for (std::int64_t j = 0; j < dim; ++j) row[j] += src[j];
    }
    return {dt, Tensor()};
  }
};

}  // namespace

Tensor embedding(const Tensor& table, const Tensor& ids) { return autograd::apply1(make_op<EmbeddingOp>(), {table, ids}); }

}  // namespace graft::ops
