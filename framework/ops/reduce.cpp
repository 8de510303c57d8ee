// sum / mean over axes: leading or trailing blocks of axes as OpenMP loops, other shapes
// on oneDNN's reduction primitive; their backward (and every
// broadcast an op has to undo) uses broadcast_to / sum_to_shape defined here.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "graft/ops.h"
#include "ops/op_util.h"
#include "ops/primitive_cache.h"
#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace {

namespace bridge = dnnl_bridge;
using dnnl::algorithm;

// Sums (or means) over leading rows or trailing columns of x viewed as [rows, cols], as
// OpenMP loops: oneDNN 2.6's reduction is its reference kernel below AVX512 (~19 ms for
// a bias gradient over 4096 rows here), and these two shapes are nearly every reduction
// graft does (bias gradients, undone broadcasts, pooling, losses). False: another shape.
bool reduce_rows_or_columns(algorithm alg, const Tensor& x, const Shape& kept, Tensor& out) {
  const Shape& in = x.shape();
  std::size_t lead = 0;  // axes [0, lead) reduced, the rest kept whole: column sums
  while (lead < in.size() && kept[lead] == 1) ++lead;
  bool columns = true, rows_kept = true;
  for (std::size_t i = lead; i < in.size(); ++i) columns &= kept[i] == in[i];
  std::size_t keep = 0;  // axes [0, keep) kept whole, the rest reduced: row sums
  while (keep < in.size() && kept[keep] == in[keep]) ++keep;
  for (std::size_t i = keep; i < in.size(); ++i) rows_kept &= kept[i] == 1;
  if (!columns && !rows_kept) return false;
  const std::int64_t outer = shape_numel(Shape(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(columns ? lead : keep)));
  const std::int64_t inner = x.numel() / std::max<std::int64_t>(outer, 1);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  if (columns) {  // dst[c] = Σ_r src[r, c]: each thread sums a range of rows, then the partials add
    const int threads = outer * inner > (1 << 15) ? std::max(1, omp_get_max_threads()) : 1;
    std::vector<float> partial(static_cast<std::size_t>(threads) * static_cast<std::size_t>(inner), 0.f);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      float* acc = partial.data() + static_cast<std::size_t>(t) * static_cast<std::size_t>(inner);
      for (std::int64_t r = outer * t / threads; r < outer * (t + 1) / threads; ++r) {
        const float* row = src + r * inner;
#pragma omp simd
        for (std::int64_t c = 0; c < inner; ++c) acc[c] += row[c];
      }
    }
    const float scale = alg == algorithm::reduction_mean ? 1.f / static_cast<float>(std::max<std::int64_t>(outer, 1)) : 1.f;
    for (std::int64_t c = 0; c < inner; ++c) {
      float total = 0;
      for (int t = 0; t < threads; ++t) total += partial[static_cast<std::size_t>(t) * static_cast<std::size_t>(inner) + static_cast<std::size_t>(c)];
      dst[c] = total * scale;
    }
    return true;
  }
  const float scale = alg == algorithm::reduction_mean ? 1.f / static_cast<float>(std::max<std::int64_t>(inner, 1)) : 1.f;
#pragma omp parallel for schedule(static) if (outer * inner > (1 << 15))
  for (std::int64_t r = 0; r < outer; ++r) {  // dst[r] = Σ_c src[r, c]
    float total = 0;
#pragma omp simd reduction(+ : total)
    for (std::int64_t c = 0; c < inner; ++c) total += src[r * inner + c];
    dst[r] = total * scale;
  }
  return true;
}

// Reduces f32 `x` to `kept` (same rank, 1 on reduced axes).
Tensor reduce(algorithm alg, const Tensor& x, const Shape& kept) {
  Tensor out = Tensor::empty(kept);
  if (kept == x.shape()) {
    std::memcpy(out.raw(), x.raw(), x.nbytes());
    return out;
  }
  if (reduce_rows_or_columns(alg, x, kept, out)) return out;
  const std::string key = fmt::format("reduction.{}|{}|{}", alg == algorithm::reduction_sum ? "sum" : "mean",
                                      key_of(x), key_of(kept, DType::f32));
  const auto& cached = cached_primitive(key, [&] {
    return bridge::guarded("reduction", [&] {
      return make_cached<dnnl::reduction>(dnnl::reduction::primitive_desc(
          dnnl::reduction::desc(alg, bridge::plain_desc(x.shape(), DType::f32), bridge::plain_desc(kept, DType::f32), 0.f, 0.f),
          primitive_attr(), bridge::engine()));
    });
  });
  bridge::guarded("reduction", [&] {
    cached.execute({{DNNL_ARG_SRC, bridge::memory(x)}, {DNNL_ARG_DST, bridge::memory(out)}});
    bridge::stream().wait();
  });
  return out;
}

struct Reduction {
  Shape kept;    // input rank, 1 on reduced axes
  Shape result;  // what the caller sees (kept, or with reduced axes dropped)
  std::int64_t count = 1;
};

Reduction plan(const char* op, const Shape& shape, const std::vector<int>& axes, bool keepdim) {
  Reduction r;
  r.kept = shape;
  std::vector<bool> reduced(shape.size(), axes.empty());
  for (int a : axes) reduced[normalize_axis(op, a, static_cast<int>(shape.size()))] = true;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (reduced[i]) {
      r.count *= shape[i];
      r.kept[i] = 1;
      if (keepdim) r.result.push_back(1);
    } else {
      r.result.push_back(shape[i]);
    }
  }
  return r;
}

class ReduceOp : public Op {
 public:
  ReduceOp(bool mean, std::vector<int> axes, bool keepdim) : mean_(mean), axes_(std::move(axes)), keepdim_(keepdim) {}
  std::string_view name() const override { return mean_ ? "mean" : "sum"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    require_floating(mean_ ? "mean" : "sum", in[0]);
    const Tensor x = as_f32(in[0]);
    const Reduction r = plan(mean_ ? "mean" : "sum", x.shape(), axes_, keepdim_);
    return {reduce(mean_ ? algorithm::reduction_mean : algorithm::reduction_sum, x, r.kept).view(r.result)};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&,
                               const std::vector<Tensor>& gout, const std::vector<bool>&) override {
    const Reduction r = plan(mean_ ? "mean" : "sum", in[0].shape(), axes_, keepdim_);
    Tensor g = broadcast_to(as_f32(gout[0]).view(r.kept), in[0].shape());
    return {mean_ ? scale(g, 1.f / static_cast<float>(r.count)) : g};
  }

 private:
  bool mean_;
  std::vector<int> axes_;
  bool keepdim_;
};

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return autograd::apply1(make_op<ReduceOp>(false, axes, keepdim), {x});
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return autograd::apply1(make_op<ReduceOp>(true, axes, keepdim), {x});
}

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const Tensor x = as_f32(g);
  Shape kept = pad_to_rank(shape, x.shape().size());
  if (kept.size() != x.shape().size())
    throw ShapeError("sum_to_shape", fmt::format("cannot reduce {} to {}", shape_str(x.shape()), shape_str(shape)));
  return reduce(algorithm::reduction_sum, x, kept).view(shape);
}

Tensor broadcast_to(const Tensor& x_in, const Shape& shape) {
  const Tensor x = as_f32(x_in);
  const Shape src = pad_to_rank(x.shape(), shape.size());
  if (src.size() != shape.size())
    throw ShapeError("broadcast_to", fmt::format("cannot broadcast {} to {}", shape_str(x.shape()), shape_str(shape)));
  const int rank = static_cast<int>(shape.size());
  // Source stride per output axis; 0 where the source axis is broadcast.
  std::vector<std::int64_t> stride(rank, 0);
  std::int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    if (src[i] != 1 && src[i] != shape[i])
      throw ShapeError("broadcast_to", fmt::format("cannot broadcast {} to {}", shape_str(x.shape()), shape_str(shape)));
    stride[i] = src[i] == 1 ? 0 : s;
    s *= src[i];
  }
  Tensor out = Tensor::empty(shape);
  const float* in = x.data<float>();
  float* o = out.data<float>();
  const std::int64_t inner = rank ? shape[rank - 1] : 1;
  const std::int64_t rows = out.numel() / std::max<std::int64_t>(inner, 1);
  const std::int64_t inner_stride = rank ? stride[rank - 1] : 0;
#pragma omp parallel for if (rows > 256)
  for (std::int64_t row = 0; row < rows; ++row) {
    std::int64_t rem = row, offset = 0;
    for (int i = rank - 2; i >= 0; --i) {
      offset += (rem % shape[i]) * stride[i];
      rem /= shape[i];
    }
    float* dst = o + row * inner;
    for (std::int64_t j = 0; j < inner; ++j) dst[j] = in[offset + j * inner_stride];
  }
  return out;
}

}  // namespace graft::ops
