// Inverted dropout as an OpenMP kernel. Each element's keep/drop decision is a hash of
// (seed, call number, element index), so masks are reproducible and thread-independent.
#include <atomic>

#include "graft/ops.h"
#include "ops/op_util.h"
#include "tensor/bf16_rounding.h"
#include "tensor/simd_clones.h"

namespace graft::ops {
namespace {

std::atomic<std::uint64_t> g_seed{0x5eed};
std::atomic<std::uint64_t> g_calls{0};

inline std::uint64_t mix(std::uint64_t z) {  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t next_stream() { return mix(g_seed.load() ^ mix(g_calls.fetch_add(1) + 1)); }

// The hash's 64-bit multiplies and compares vectorise only from AVX2 on (AVX-512 has
// them natively): hence the clones.
GRAFT_SIMD_CLONES void mask_scale(const float* xp, float* yp, std::int64_t n, std::uint64_t stream, std::uint64_t threshold,
                                  float keep_scale) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) yp[i] = mix(stream + static_cast<std::uint64_t>(i)) >= threshold ? xp[i] * keep_scale : 0.f;
}

// The same mask on bf16 values: widened, scaled in f32, rounded once.
GRAFT_SIMD_CLONES void mask_scale_bf16(const std::uint16_t* xp, std::uint16_t* yp, std::int64_t n, std::uint64_t stream,
                                       std::uint64_t threshold, float keep_scale) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i)
    yp[i] = mix(stream + static_cast<std::uint64_t>(i)) >= threshold ? round_to_bf16(bf16_bits_to_f32(xp[i]) * keep_scale)
                                                                     : std::uint16_t{0};
}

// x with element i dropped where the hash of (stream, i) falls below p, the rest scaled;
// in x's dtype.
Tensor apply_mask(const Tensor& x, float p, std::uint64_t stream) {
  require_floating("dropout", x);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const float keep_scale = 1.f / (1.f - p);
  const auto threshold = static_cast<std::uint64_t>(static_cast<double>(p) * 18446744073709551616.0);
  if (x.dtype() == DType::bf16)
    mask_scale_bf16(x.data<std::uint16_t>(), y.data<std::uint16_t>(), x.numel(), stream, threshold, keep_scale);
  else
    mask_scale(x.data<float>(), y.data<float>(), x.numel(), stream, threshold, keep_scale);
  return y;
}

class DropoutOp : public Op, public SavesInputs {
 public:
  bool reads_input(std::size_t, const std::vector<bool>&) const override { return false; }  // the mask is a hash
  explicit DropoutOp(float p) : p_(p), stream_(next_stream()) {}
  std::string_view name() const override { return "dropout"; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override { return {apply_mask(in[0], p_, stream_)}; }
  std::vector<Tensor> backward(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>&) override {
    // The same hash regenerates the mask: nothing but the stream id was stored.
    return {apply_mask(gout[0], p_, stream_)};
  }

 private:
  float p_;
  std::uint64_t stream_;
};

// matmul(dropout(a), b) without keeping dropout(a): backward regenerates it from a
// (attention keeps its probabilities once, not also dropped).
class DropoutMatmulOp : public Op, public SavesInputs {
 public:
  explicit DropoutMatmulOp(float p) : p_(p), stream_(next_stream()) {}
  std::string_view name() const override { return "dropout_matmul"; }
  // d(a) reads b; d(b) reads dropout(a), regenerated from a.
  bool reads_input(std::size_t i, const std::vector<bool>& needs) const override { return needs[1 - i]; }
  std::vector<Tensor> forward(const std::vector<Tensor>& in) override {
    return {matmul(apply_mask(in[0], p_, stream_), in[1])};
  }
  std::vector<Tensor> backward(const std::vector<Tensor>& in, const std::vector<Tensor>&, const std::vector<Tensor>& gout,
                               const std::vector<bool>& needs) override {
    std::vector<Tensor> grads(2);
    if (needs[0]) grads[0] = apply_mask(matmul(gout[0], in[1], false, true, in[0].dtype()), p_, stream_);
    if (needs[1]) grads[1] = matmul(apply_mask(in[0], p_, stream_), gout[0], true, false);
    return grads;
  }

 private:
  float p_;
  std::uint64_t stream_;
};

}  // namespace

void manual_seed(std::uint64_t seed) {
  g_seed = seed;
  g_calls = 0;
}

Tensor dropout(const Tensor& x, float p, bool training) {
  if (p < 0.f || p >= 1.f) throw ConfigError("dropout", fmt::format("probability {} is outside [0, 1)", p));
  if (!training || p == 0.f) return x;
  return autograd::apply1(make_op<DropoutOp>(p), {x});
}

Tensor dropout_matmul(const Tensor& a, const Tensor& b, float p, bool training) {
  if (p < 0.f || p >= 1.f) throw ConfigError("dropout", fmt::format("probability {} is outside [0, 1)", p));
  if (!training || p == 0.f) return matmul(a, b);
  require_floating("matmul", b);
  return autograd::apply1(make_op<DropoutMatmulOp>(p), {a, b});
}

}  // namespace graft::ops
