// Every op's backward against central finite differences, one case per op (plus the
// broadcasting and masking variants). Tolerances: step 1e-2, |a−n| <= 1e-3 + 1e-2·|n|
// unless a case states otherwise.
#include "gradcheck.h"

namespace graft {
namespace {

using testing::random_tensor;

struct Input {
  Shape shape;
  bool trainable = true;
  float lo = -1.f, hi = 1.f;
  bool integer = false;  // ids / targets, given in `ints`
  std::vector<std::int64_t> ints = {};
};

struct Case {
  std::string name;
  std::vector<Input> inputs;
  testing::TensorFn fn;
  testing::GradcheckTolerance tol = {};
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }


std::vector<Case> cases() {
  using namespace ops;
  return {
      {"matmul", {{{3, 4}}, {{4, 5}}}, [](auto& in) { return matmul(in[0], in[1]); }},
      {"matmul_transpose_a", {{{4, 3}}, {{4, 5}}}, [](auto& in) { return matmul(in[0], in[1], true, false); }},
      {"matmul_transpose_b", {{{3, 4}}, {{5, 4}}}, [](auto& in) { return matmul(in[0], in[1], false, true); }},
      {"matmul_batched_shared_rhs", {{{2, 3, 4}}, {{4, 5}}}, [](auto& in) { return matmul(in[0], in[1]); }},
      {"matmul_batched_both_transposed", {{{2, 4, 3}}, {{2, 5, 4}}}, [](auto& in) { return matmul(in[0], in[1], true, true); }},
      {"linear", {{{2, 3, 4}}, {{5, 4}}, {{5}}}, [](auto& in) { return linear(in[0], in[1], in[2]); }},
      {"add_broadcast_rhs", {{{3, 4}}, {{4}}}, [](auto& in) { return add(in[0], in[1]); }},
      {"add_broadcast_lhs", {{{1, 4}}, {{3, 4}}}, [](auto& in) { return add(in[0], in[1]); }},
      {"sub_broadcast_lhs", {{{3, 1}}, {{3, 4}}}, [](auto& in) { return sub(in[0], in[1]); }},
      {"mul_broadcast_both", {{{2, 1, 4}}, {{3, 1}}}, [](auto& in) { return mul(in[0], in[1]); }},
      {"scale", {{{3, 4}}}, [](auto& in) { return scale(in[0], -2.5f); }},
      {"gelu_erf", {{{3, 5}, true, -3.f, 3.f}}, [](auto& in) { return gelu(in[0], GeluApprox::erf); }},
      {"gelu_tanh", {{{3, 5}, true, -3.f, 3.f}}, [](auto& in) { return gelu(in[0], GeluApprox::tanh); }},
      {"relu", {{{3, 5}, true, 0.05f, 1.f}}, [](auto& in) { return relu(scale(in[0], -1.f)); }},
      {"relu_positive", {{{3, 5}, true, 0.05f, 1.f}}, [](auto& in) { return relu(in[0]); }},
      {"silu", {{{3, 5}, true, -3.f, 3.f}}, [](auto& in) { return silu(in[0]); }},
      {"tanh", {{{3, 5}, true, -2.f, 2.f}}, [](auto& in) { return ops::tanh(in[0]); }},
      {"softmax", {{{2, 3, 5}, true, -2.f, 2.f}}, [](auto& in) { return softmax(in[0]); }},
      {"softmax_masked", {{{2, 2, 3, 4}, true, -2.f, 2.f}, {{2, 1, 1, 4}, false}},
       [](auto& in) {
         // Padding-style mask: the last key of batch 1 is hidden.
         Tensor mask = Tensor::from_floats({0, 0, 0, 0, 0, 0, 0, -1e9f}, {2, 1, 1, 4});
         return softmax(in[0], mask);
       }},
      {"softmax_mask_gradient", {{{2, 3}}, {{1, 3}}}, [](auto& in) { return softmax(in[0], in[1]); }},
      {"layer_norm", {{{4, 6}, true, -2.f, 2.f}, {{6}, true, 0.5f, 1.5f}, {{6}}},
       [](auto& in) { return layer_norm(in[0], in[1], in[2], 1e-5f); }},
      // 40 columns: the gamma/beta gradient kernel sums 16 columns a task, plus a remainder.
      {"layer_norm_wide", {{{3, 40}, true, -2.f, 2.f}, {{40}, true, 0.5f, 1.5f}, {{40}, true}},
       [](auto& in) { return layer_norm(in[0], in[1], in[2], 1e-5f); }},
      {"layer_norm_frozen_affine", {{{4, 6}, true, -2.f, 2.f}, {{6}, false, 0.5f, 1.5f}, {{6}, false}},
       [](auto& in) { return layer_norm(in[0], in[1], in[2], 1e-5f); }},
      {"rms_norm", {{{4, 6}, true, -2.f, 2.f}, {{6}, true, 0.5f, 1.5f}}, [](auto& in) { return rms_norm(in[0], in[1], 1e-5f); }},
      {"embedding", {{{5, 3}}, {{2, 3}, false, 0, 0, true, {4, 0, 4, 2, 1, 4}}},
       [](auto& in) { return embedding(in[0], in[1]); }},
      {"concat", {{{2, 3}}, {{2, 2}}}, [](auto& in) { return concat({in[0], in[1]}, 1); }},
      {"slice", {{{3, 5}}}, [](auto& in) { return slice(in[0], 1, 1, 3); }},
      {"slice_of_slice_rows", {{{3, 4, 2}}}, [](auto& in) { return slice(slice(in[0], 0, 1, 1), 1, 1, 2); }},
      {"gather_rows_repeated", {{{4, 2, 3}}}, [](auto& in) { return gather_rows(in[0], {3, 0, 3}); }},
      {"scatter_rows", {{{4, 3}}, {{2, 3}}}, [](auto& in) { return scatter_rows(in[0], {2, 0}, in[1]); }},
      {"permute", {{{2, 3, 4}}}, [](auto& in) { return permute(in[0], {2, 0, 1}); }},
      {"transpose", {{{2, 3, 4}}}, [](auto& in) { return transpose(in[0], 0, 2); }},
      {"reshape", {{{2, 6}}}, [](auto& in) { return reshape(in[0], {3, -1}); }},
      {"sum_axes", {{{2, 3, 4}}}, [](auto& in) { return sum(in[0], {0, 2}); }},
      {"mean_keepdim", {{{2, 3, 4}}}, [](auto& in) { return mean(in[0], {1}, true); }},
      {"sum_all", {{{2, 3}}}, [](auto& in) { return sum(in[0]); }},
      {"dropout", {{{4, 8}}},
       [](auto& in) {
         manual_seed(7);  // the same mask on every evaluation
         return dropout(in[0], 0.3f, true);
       }},
      {"dropout_matmul", {{{2, 3, 4}}, {{2, 4, 5}}},
       [](auto& in) {
         manual_seed(7);
         return dropout_matmul(in[0], in[1], 0.3f, true);
       }},
      {"cross_entropy_ignore_index", {{{4, 5}, true, -2.f, 2.f}, {{4}, false, 0, 0, true, {2, -100, 0, 4}}},
       [](auto& in) { return cross_entropy(in[0], in[1]); }},
      {"mse", {{{3, 4}}, {{3, 4}}}, [](auto& in) { return mse(in[0], in[1]); }},
      {"rope_half", {{{1, 3, 2, 4}}, {{3}, false, 0, 0, true, {0, 3, 7}}}, [](auto& in) { return rope(in[0], in[1]); }},
      {"rope_interleaved", {{{2, 3, 1, 6}}, {{3}, false, 0, 0, true, {1, 2, 5}}},
       [](auto& in) { return rope(in[0], in[1], 10000.f, true); }},
  };
}

class Gradcheck : public ::testing::TestWithParam<Case> {};

TEST_P(Gradcheck, BackwardMatchesFiniteDifferences) {
  const Case& c = GetParam();
  std::vector<Tensor> inputs;
  std::uint64_t seed = 1;
  for (const Input& spec : c.inputs) {
    if (spec.integer) {
      inputs.push_back(Tensor::from_ints(spec.ints, spec.shape));
      continue;
    }
    Tensor t = random_tensor(spec.shape, seed++, spec.lo, spec.hi);
    t.set_requires_grad(spec.trainable);
    inputs.push_back(t);
  }
  testing::expect_gradients_match(c.fn, inputs, c.tol, c.name);
}

INSTANTIATE_TEST_SUITE_P(Ops, Gradcheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace graft
