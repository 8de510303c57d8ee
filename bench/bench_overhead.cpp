// Framework overhead: the same oneDNN primitives called directly versus through
// graft's ops (cached primitives, tensor handles, output allocation, tape checks).
// Prints throughput ratios graft/direct; 1.0 means no overhead.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "graft/autograd.h"
#include "graft/ops.h"
#include "tensor/dnnl_bridge.h"

using namespace graft;
namespace bridge = graft::dnnl_bridge;
using dnnl::memory;

namespace {

// Median seconds per call over `reps` calls, after warm-up.
double time_per_call(const std::function<void()>& fn, int reps) {
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    samples.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(samples.begin(), samples.begin() + reps / 2, samples.end());
  return samples[reps / 2];
}

Tensor filled(Shape shape, float v) { return Tensor::full(std::move(shape), v); }

dnnl::matmul direct_linear(std::int64_t M, std::int64_t K, std::int64_t N, DType wdt) {
  auto src = bridge::plain_desc({M, K}, wdt);
  auto wei = bridge::strided_desc({K, N}, wdt, {1, K});  // W [N, K] read transposed
  auto bias = bridge::plain_desc({1, N}, DType::f32);
  auto dst = bridge::plain_desc({M, N}, DType::f32);
  return dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, bias, dst), bridge::engine()));
}

void report(const char* name, double direct, double graft_s, double flops) {
  fmt::print("{:<34} direct {:8.3f} ms ({:6.1f} GFLOP/s)   graft {:8.3f} ms ({:6.1f} GFLOP/s)   ratio {:.3f}\n", name,
             direct * 1e3, flops / direct * 1e-9, graft_s * 1e3, flops / graft_s * 1e-9, direct / graft_s);
}

void bench_linear(std::int64_t M, std::int64_t K, std::int64_t N, DType dt, int reps) {
  Tensor x = filled({M, K}, 0.01f), w = ops::to_dtype(filled({N, K}, 0.02f), dt), b = filled({N}, 0.1f);
  Tensor xs = ops::to_dtype(x, dt), y = Tensor::empty({M, N});
  auto prim = direct_linear(M, K, N, dt);
  auto args = std::unordered_map<int, memory>{{DNNL_ARG_SRC, bridge::memory(xs)},
                                               {DNNL_ARG_WEIGHTS, bridge::memory(w, bridge::strided_desc({K, N}, dt, {1, K}))},
                                               {DNNL_ARG_BIAS, bridge::memory(b, bridge::plain_desc({1, N}, DType::f32))},
                                               {DNNL_ARG_DST, bridge::memory(y)}};
  const double direct = time_per_call([&] { prim.execute(bridge::stream(), args); bridge::stream().wait(); }, reps);
  NoGradGuard no_grad;
  const double through = time_per_call([&] { ops::linear(xs, w, b); }, reps);
  report(fmt::format("linear {}x{}x{} {}", M, K, N, dtype_name(dt)).c_str(), direct, through, 2.0 * M * K * N);
}

void bench_block(std::int64_t M, std::int64_t D, std::int64_t F, int reps) {
  Tensor x = filled({M, D}, 0.01f), w1 = filled({F, D}, 0.02f), b1 = filled({F}, 0.1f), w2 = filled({D, F}, 0.02f),
         b2 = filled({D}, 0.1f), h = Tensor::empty({M, F}), g = Tensor::empty({M, F}), y = Tensor::empty({M, D});
  auto up = direct_linear(M, D, F, DType::f32), down = direct_linear(M, F, D, DType::f32);
  auto md = bridge::plain_desc({M, F}, DType::f32);
  dnnl::eltwise_forward gelu(dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_gelu_erf, md, 0.f, 0.f),
      bridge::engine()));
  auto& s = bridge::stream();
  const double direct = time_per_call(
      [&] {
        up.execute(s, {{DNNL_ARG_SRC, bridge::memory(x)},
                       {DNNL_ARG_WEIGHTS, bridge::memory(w1, bridge::strided_desc({D, F}, DType::f32, {1, D}))},
                       {DNNL_ARG_BIAS, bridge::memory(b1, bridge::plain_desc({1, F}, DType::f32))},
                       {DNNL_ARG_DST, bridge::memory(h)}});
        gelu.execute(s, {{DNNL_ARG_SRC, bridge::memory(h)}, {DNNL_ARG_DST, bridge::memory(g)}});
        down.execute(s, {{DNNL_ARG_SRC, bridge::memory(g)},
                         {DNNL_ARG_WEIGHTS, bridge::memory(w2, bridge::strided_desc({F, D}, DType::f32, {1, F}))},
                         {DNNL_ARG_BIAS, bridge::memory(b2, bridge::plain_desc({1, D}, DType::f32))},
                         {DNNL_ARG_DST, bridge::memory(y)}});
        s.wait();
      },
      reps);
  NoGradGuard no_grad;
  const double through = time_per_call([&] { ops::linear(ops::gelu(ops::linear(x, w1, b1)), w2, b2); }, reps);
  report(fmt::format("linear→GELU→linear {}x{}x{}", M, D, F).c_str(), direct, through, 4.0 * M * D * F);
}

}  // namespace

int main() {
  fmt::print("graft framework overhead (ratio = direct time / graft time; aim >= 0.95)\n");
  bench_linear(512, 768, 3072, DType::f32, 15);
  bench_linear(512, 768, 3072, DType::bf16, 15);
  bench_linear(64, 384, 384, DType::f32, 200);
  bench_block(512, 768, 3072, 10);
  bench_block(128, 384, 1536, 50);
  return 0;
}
