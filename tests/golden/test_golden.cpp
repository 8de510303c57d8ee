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
#include "nn/optim.h"

using nlohmann::json;
using namespace graft;

namespace {

const std::string kFixtures = std::string(GRAFT_SOURCE_DIR) + "/tests/golden/fixtures.json";

const json& fixtures() {
  static const json doc = [] {
    std::ifstream in(kFixtures);
    return in ? json::parse(in) : json();
  }();
  return doc;
}

DType dtype_of(const std::string& name) {
  if (name == "f32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  if (name == "i64") return DType::i64;
  throw std::runtime_error("fixture dtype " + name);
}

Tensor tensor_of(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const DType dtype = dtype_of(j.at("dtype"));
  if (dtype == DType::i64) return Tensor::from_ints(j.at("data").get<std::vector<std::int64_t>>(), shape);
  return Tensor::from_floats(j.at("data").get<std::vector<float>>(), shape, dtype);
}

struct Tolerance {
  double abs, rel;
};
Tolerance tol_of(const json& j) { return {j.at("abs").get<double>(), j.at("rel").get<double>()}; }

// Compares elementwise; reports the first few violations and the largest deviation.
// Returns the largest |got - want| so callers can print what was measured.
double expect_close(const std::string& what, const Tensor& got, const json& want, Tolerance tol) {
  EXPECT_EQ(got.shape(), want.at("shape").get<Shape>()) << what << ": shape";
  const std::vector<float> g = got.to_floats();
  const auto w = want.at("data").get<std::vector<float>>();
  if (g.size() != w.size()) return INFINITY;
  double max_abs = 0, max_rel = 0;
  int reported = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double d = std::fabs(static_cast<double>(g[i]) - w[i]);
    max_abs = std::max(max_abs, d);
    if (w[i] != 0) max_rel = std::max(max_rel, d / std::fabs(w[i]));
    if (!(d <= tol.abs + tol.rel * std::fabs(w[i])) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << g[i] << ", PyTorch " << w[i] << " (|diff| " << d
                    << " > abs " << tol.abs << " + rel " << tol.rel << ")";
  }
  std::printf("  %-48s max |diff| %.3g, max rel %.3g\n", what.c_str(), max_abs, max_rel);
  return max_abs;
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
