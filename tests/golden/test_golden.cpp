// Golden tests: graft's ops against PyTorch 1.13 reference values written by
// tests/golden/make_fixtures.py into fixtures.json. Each case runs the op on the stored
// inputs, checks the output and (f32 cases) the input gradients for the stored upstream
// gradient, with the tolerance recorded in the case: |got - want| <= abs + rel*|want|.
// A 10-step AdamW run of a small MLP checks ops, autograd and the optimiser together.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "graft/nn.h"
#include "graft/ops.h"
#include "ops/op_util.h"
#include "golden/fixture.h"
#include "nn/optim.h"

using nlohmann::json;
using namespace graft;
using graft::testing::expect_close;
using graft::testing::tensor_of;
using graft::testing::tol_of;
using graft::testing::Tolerance;

namespace {

const std::string kFixtures = std::string(GRAFT_SOURCE_DIR) + "/tests/golden/fixtures.json";

const json& fixtures() {
  static const json doc = graft::testing::load_fixture(kFixtures);
  return doc;
}

// Runs the case's op on graft tensors named as in the fixture.
Tensor run_op(const std::string& op, const json& params, std::map<std::string, Tensor>& in) {
  if (op == "matmul")
    return ops::matmul(in.at("a"), in.at("b"), params.at("transpose_a").get<bool>(), params.at("transpose_b").get<bool>());
  if (op == "linear") return ops::linear(in.at("x"), in.at("weight"), in.at("bias"));
  if (op == "layer_norm") return ops::layer_norm(in.at("x"), in.at("gamma"), in.at("beta"), params.at("eps").get<float>());
  if (op == "softmax") return ops::softmax(in.at("x"), in.at("mask"));
  if (op == "gelu") return ops::gelu(in.at("x"), params.at("approx") == "erf" ? ops::GeluApprox::erf : ops::GeluApprox::tanh);
  if (op == "cross_entropy") return ops::cross_entropy(in.at("logits"), in.at("targets"), params.at("ignore_index").get<std::int64_t>());
  throw std::runtime_error("fixture op " + op);
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  if (fixtures().contains("cases"))
    for (const auto& c : fixtures()["cases"]) names.push_back(c.at("name"));
  if (names.empty()) names.push_back("fixtures_missing");
  return names;
}

const json* find_case(const std::string& name) {
  if (!fixtures().contains("cases")) return nullptr;
  for (const auto& c : fixtures()["cases"])
    if (c.at("name") == name) return &c;
  return nullptr;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesPyTorch) {
  const std::string& name = GetParam();
  const json* c = find_case(name);
  ASSERT_NE(c, nullptr) << "no case '" << name << "' in " << kFixtures << " (run tests/golden/make_fixtures.py)";
  if (c->contains("bf16_compute") && c->at("bf16_compute") != (ops::bf16_matmul_native() ? "native" : "widened"))
    GTEST_SKIP() << "a case for CPUs " << (ops::bf16_matmul_native() ? "without" : "with") << " native bf16";
  const bool with_grads = c->contains("grads");
  std::map<std::string, Tensor> in;
  for (const auto& input : c->at("inputs")) {
    Tensor t = tensor_of(input);
    if (with_grads && c->at("grads").contains(input.at("name"))) t.set_requires_grad(true);
    in[input.at("name")] = t;
  }
  Tensor out = run_op(c->at("op"), c->at("params"), in);
  expect_close(name + " output", out, c->at("output"), tol_of(c->at("tol")));
  if (!with_grads) return;
  out.backward(tensor_of(c->at("grad_output")));
  for (const auto& [input, want] : c->at("grads").items()) {
    const Tensor g = in.at(input).grad();
    ASSERT_TRUE(g.defined()) << name << ": no gradient for " << input;
    expect_close(name + " d" + input, g, want, tol_of(c->at("grad_tol")));
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, Golden, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string id = info.param;
                           for (char& ch : id)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return id;
                         });

// linear → GELU → linear → cross-entropy, 10 AdamW steps from PyTorch's initial weights.
TEST(GoldenTraining, MlpAdamWTenSteps) {
  ASSERT_TRUE(fixtures().contains("mlp_adamw")) << "no mlp_adamw in " << kFixtures;
  const json& m = fixtures()["mlp_adamw"];
  const Tensor x = tensor_of(m.at("x")), y = tensor_of(m.at("y"));
  std::vector<nn::NamedParameter> params;
  for (const char* name : {"w1", "b1", "w2", "b2"}) {
    Tensor t = tensor_of(m.at("init").at(name));
    t.set_requires_grad(true);
    params.push_back({name, t});
  }
  nn::AdamW opt(params, {.lr = m.at("lr").get<float>(), .beta1 = m.at("betas")[0].get<float>(),
                         .beta2 = m.at("betas")[1].get<float>(), .eps = m.at("eps").get<float>(),
                         .weight_decay = m.at("weight_decay").get<float>()});
  const auto want = m.at("losses").get<std::vector<double>>();
  const double rel_tol = m.at("loss_rel_tol").get<double>();
  double max_rel = 0;
  for (std::size_t step = 0; step < want.size(); ++step) {
    opt.zero_grad();
    Tensor h = ops::gelu(ops::linear(x, params[0].tensor, params[1].tensor));
    Tensor loss = ops::cross_entropy(ops::linear(h, params[2].tensor, params[3].tensor), y);
    loss.backward();
    const double rel = std::fabs(loss.item() - want[step]) / std::fabs(want[step]);
    max_rel = std::max(max_rel, rel);
    EXPECT_LE(rel, rel_tol) << "mlp_adamw step " << step << ": loss " << loss.item() << ", PyTorch " << want[step];
    opt.step();
  }
  std::printf("  %-48s max rel %.3g\n", "mlp_adamw losses", max_rel);
  for (const auto& p : params) expect_close("mlp_adamw final " + p.name, p.tensor, m.at("final").at(p.name), tol_of(m.at("final_tol")));
}

}  // namespace
