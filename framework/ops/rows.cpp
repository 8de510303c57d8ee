// Row gather and scatter along axis 0: how one batch is split among the adapters of a
// mixed (per-row) selection and put back together. A row is contiguous, so each moves
// as one memcpy whatever its dtype.
#include <cstring>

#include "graft/ops.h"
#include "ops/op_util.h"

namespace graft::ops {
namespace {

std::size_t row_bytes(const Tensor& t) { return t.dim(0) == 0 ? 0 : t.nbytes() / static_cast<std::size_t>(t.dim(0)); }

void check_rows(const char* op, const std::vector<std::int64_t>& rows, std::int64_t batch) {
  for (std::int64_t r : rows)
    if (r < 0 || r >= batch) throw ShapeError(op, fmt::format("row {} is outside a batch of {}", r, batch));
}

Tensor gather_kernel(const Tensor& x, const std::vector<std::int64_t>& rows) {
  Shape shape = x.shape();
  shape[0] = static_cast<std::int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, x.dtype());
  const std::size_t bytes = row_bytes(x);
  auto* dst = static_cast<char*>(out.raw());
  const auto* src = static_cast<const char*>(x.raw());
  for (std::size_t i = 0; i < rows.size(); ++i) std::memcpy(dst + i * bytes, src + rows[i] * bytes, bytes);
  return out;
}

class GatherRowsOp : public Op {
 public:
  explicit GatherRowsOp(std::vector<std::int64_t> rows) : rows_(std::move(rows)) {}
  std::string_view name() const override { return "gather_rows"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    if (in[0].ndim() == 0) throw ShapeError("gather_rows", "a scalar has no rows");
    check_rows("gather_rows", rows_, in[0].dim(0));
    return {gather_kernel(in[0], rows_)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    Tensor dx = Tensor::zeros(in[0].shape());
    const Tensor g = as_f32(gout[0]);
    const std::size_t width = static_cast<std::size_t>(dx.numel() / std::max<std::int64_t>(dx.dim(0), 1));
    float* d = dx.data<float>();
    const float* s = g.data<float>();
    for (std::size_t i = 0; i < rows_.size(); ++i)  // a row picked twice gets both gradients
      for (std::size_t j = 0; j < width; ++j) d[rows_[i] * width + j] += s[i * width + j];
    return {dx};
  }

 private:
  std::vector<std::int64_t> rows_;
};

class ScatterRowsOp : public Op {
 public:
  explicit ScatterRowsOp(std::vector<std::int64_t> rows) : rows_(std::move(rows)) {}
  std::string_view name() const override { return "scatter_rows"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    const Tensor &base = in[0], &values = in[1];
    Shape expected = base.shape();
    if (expected.empty()) throw ShapeError("scatter_rows", "a scalar has no rows");
    expected[0] = static_cast<std::int64_t>(rows_.size());
    if (values.shape() != expected || values.dtype() != base.dtype())
      throw ShapeError("scatter_rows", fmt::format("{} rows of {} {} cannot take {} {}", rows_.size(), dtype_name(base.dtype()),
                                                   shape_str(base.shape()), dtype_name(values.dtype()), shape_str(values.shape())));
    check_rows("scatter_rows", rows_, base.dim(0));
    Tensor out = base.clone();
    const std::size_t bytes = row_bytes(base);
    auto* dst = static_cast<char*>(out.raw());
    const auto* src = static_cast<const char*>(values.raw());
    for (std::size_t i = 0; i < rows_.size(); ++i) std::memcpy(dst + rows_[i] * bytes, src + i * bytes, bytes);
    return {out};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    std::vector<Tensor> grads(2);
    const Tensor g = as_f32(gout[0]);
    if (needs[1]) grads[1] = gather_kernel(g, rows_);
    if (needs[0]) {
      Tensor d = g.clone();
      const std::size_t bytes = row_bytes(d);
      for (std::int64_t r : rows_) std::memset(static_cast<char*>(d.raw()) + r * bytes, 0, bytes);
      grads[0] = d;
    }
    return grads;
  }

 private:
  std::vector<std::int64_t> rows_;
};

}  // namespace

Tensor gather_rows(const Tensor& x, const std::vector<std::int64_t>& rows) {
  return autograd::apply1(make_op<GatherRowsOp>(rows), {x});
}

Tensor scatter_rows(const Tensor& base, const std::vector<std::int64_t>& rows, const Tensor& values) {
  return autograd::apply1(make_op<ScatterRowsOp>(rows), {base, values});
}

}  // namespace graft::ops
