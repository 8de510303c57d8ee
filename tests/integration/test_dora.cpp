// DoRA (plugins/lora with use_dora, as PEFT 0.10) on all-MiniLM-L6-v2, stories260K and
// the tiny BERT/LLaMA fixtures: parameter counts, the identity at init, the hook against
// an independent reference, gradients against finite differences, training, save and
// load, merging, and adapters moving between graft and PEFT
// (tests/golden/make_peft_dora_fixtures.py).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "graft/error.h"
#include "graft/ops.h"
#include "integration/lora_fixtures.h"
#include "peft/site_select.h"

namespace graft::testing {
namespace {

namespace fs = std::filesystem;
const fs::path kDoraDir = kGolden / "peft_dora";

std::int64_t trainable(const AdapterSet& set) {
  std::int64_t n = 0;
  for (const auto& p : parameters_of(set)) n += p.tensor.numel();
  return n;
}

// LoRA's r·(in + out) plus the magnitude's out, over the linear sites of `modules`.
std::int64_t closed_form(const Backbone& bb, std::int64_t r, const std::vector<std::string>& modules) {
  std::int64_t total = 0;
  for (const Site& s : bb.sites())
    if (s.kind == SiteKind::linear && std::find(modules.begin(), modules.end(), s.module) != modules.end())
      total += r * (s.in_features + s.out_features) + s.out_features;
  return total;
}

// Random B, and magnitudes scaled by [0.5, 1.5): the adapter then changes both the
// direction and the length of every row.
void randomize_dora(AdapterSet& set, const std::string& name, std::uint64_t seed) {
  randomize_b(set, name, seed);
  for (const auto& p : set.method(name).parameters()) {
    if (p.name.find("lora_magnitude_vector") == std::string::npos) continue;
    const auto r = random_tensor(p.tensor.shape(), seed++, 0.5f, 1.5f).to_floats();
    float* m = p.tensor.data<float>();
    for (std::size_t i = 0; i < r.size(); ++i) m[i] *= r[i];
  }
}

const std::vector<std::string> kAllLinear = {"attention.query", "attention.key", "attention.value", "attention.output",
                                             "ffn.gate", "ffn.up", "ffn.down"};

TEST(Dora, ParameterCountsMatchClosedForm) {
  for (Backbone* bb : {minilm().model.get(), stories260k().model.get()}) {
    auto set = attach(*bb, "lora", R"({"use_dora": true})");
    EXPECT_EQ(trainable(*set), closed_form(*bb, 8, {"attention.query", "attention.value"}));
    std::printf("  %s: %s\n", bb->info().architecture.c_str(), set->method("task").describe().c_str());
    EXPECT_EQ(set->method("task").describe().rfind("DoRA r=8", 0), 0u);
    auto all = attach(*bb, "lora", R"({"use_dora": true, "r": 2, "target_modules": "all-linear"})");
    EXPECT_EQ(trainable(*all), closed_form(*bb, 2, kAllLinear));
  }
}

TEST(Dora, InitialOutputIsTheFrozenBackbonesBitForBit) {
  for (Backbone* bb : {minilm().model.get(), stories260k().model.get()}) {
    const Batch batch = two_row_batch(bb->info().vocab_size);
    const Tensor frozen = hidden(*bb, nullptr, batch);
    for (const char* config : {R"({"use_dora": true})", R"({"use_dora": true, "target_modules": "all-linear", "lora_dropout": 0.1})"}) {
      auto set = attach(*bb, "lora", config);
      const Tensor adapted = hidden(*bb, set.get(), batch);
      EXPECT_EQ(std::memcmp(adapted.raw(), frozen.raw(), frozen.nbytes()), 0) << bb->info().architecture << " " << config;
    }
  }
}

// ---- the hook against an independent reference ------------------------------------

// Attach without an AdapterSet, to call the hook a method registers directly.
class CapturingContext : public AttachContext {
 public:
  explicit CapturingContext(const Backbone& bb) : bb_(bb) {}
  const std::string& adapter_name() const override { return name_; }
  const Backbone& backbone() const override { return bb_; }
  std::vector<const Site*> select(SiteKind kind, const std::vector<std::string>& patterns,
                                  const std::vector<std::int64_t>& layers) const override {
    return select_sites(bb_.sites(), kind, patterns, layers, "test");
  }
  void register_hook(const Site& site, std::shared_ptr<AdapterHook> hook) override { hooks[&site] = std::move(hook); }
  void declare_prefix(const Site&, std::int64_t) override {}
  std::uint64_t seed() const override { return 5; }
  std::vector<std::int64_t> tokenize(const std::string&) const override { return {}; }
  std::map<const Site*, std::shared_ptr<AdapterHook>> hooks;

 private:
  const Backbone& bb_;
  std::string name_ = "task";
};

// PEFT's formula written out with ops, the norm ‖W + s·B·A‖ given as a constant.
Tensor reference_dora(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& A, const Tensor& B, const Tensor& m,
                      const Tensor& norm, float s) {
  std::vector<float> inv = norm.to_floats();
  for (float& v : inv) v = 1.f / v;
  const Tensor g = ops::mul(m, Tensor::from_floats(inv, norm.shape()));
  const Tensor adapted = ops::add(ops::linear(x, W), ops::scale(ops::linear(ops::linear(x, A), B), s));
  return ops::add(ops::mul(g, adapted), b);
}

TEST(Dora, HookMatchesReferenceAndItsGradientsMatchFiniteDifferences) {
  const Backbone& bb = *tiny_bert().model;
  auto method = plugins().create("lora", R"({"use_dora": true, "r": 3, "lora_alpha": 6, "target_modules": ["layers.1.ffn.up"]})", "test");
  CapturingContext ctx(bb);
  method->attach(ctx);
  ASSERT_EQ(ctx.hooks.size(), 1u);
  // Named, not a structured binding: clang 14 cannot capture those in the lambdas below.
  const Site* site = ctx.hooks.begin()->first;
  const auto& hook = ctx.hooks.begin()->second;
  const auto params = method->parameters();  // A, B, m
  ASSERT_EQ(params.size(), 3u);
  Tensor A = params[0].tensor, B = params[1].tensor, m = params[2].tensor;
  std::memcpy(B.raw(), random_tensor(B.shape(), 3, -0.3f, 0.3f).raw(), B.nbytes());
  for (float* v = m.data<float>(), *e = v + m.numel(); v < e; ++v) *v *= 1.3f;
  std::map<std::string, Tensor> w;
  for (const auto& p : bb.parameters()) w[p.name] = p.tensor;
  const Tensor W = w.at(site->checkpoint_module + ".weight"), bias = w.at(site->checkpoint_module + ".bias");
  Tensor x = random_tensor({2, 3, site->in_features}, 4);
  x.set_requires_grad(true);
  const float s = 2.f;  // lora_alpha / r

  // The norm of the adapted rows, computed here in double.
  std::vector<float> norms(site->out_features);
  {
    NoGradGuard no_grad;
    const std::vector<float> adapted = ops::add(W, ops::scale(ops::matmul(B, A), s)).to_floats();
    for (std::int64_t o = 0; o < site->out_features; ++o) {
      double sum = 0;
      for (std::int64_t i = 0; i < site->in_features; ++i) sum += double(adapted[o * site->in_features + i]) * adapted[o * site->in_features + i];
      norms[o] = static_cast<float>(std::sqrt(sum));
    }
  }
  const Tensor norm = Tensor::from_floats(norms, {site->out_features});
  auto graft_fn = [&](const std::vector<Tensor>& in) {
    return hook->linear(*site, {in[0], W, bias, ops::linear(in[0], W, bias)}, Rows{});
  };
  auto ref_fn = [&](const std::vector<Tensor>& in) { return reference_dora(in[0], W, bias, A, B, m, norm, s); };
  {
    NoGradGuard no_grad;
    const double d = max_abs_diff(graft_fn({x}), ref_fn({x}));
    std::printf("  hook vs reference: max |diff| %.3g\n", d);
    EXPECT_LT(d, 1e-5);
  }
  // Gradients of x, A, B and m: graft's (norm detached inside the hook) equal the
  // reference's with the norm held constant, whose own gradients match finite differences.
  const Tensor R = random_tensor({2, 3, site->out_features}, 9);
  std::vector<std::vector<float>> grads[2];
  int k = 0;
  for (const auto& fn : {std::function<Tensor(const std::vector<Tensor>&)>(graft_fn), std::function<Tensor(const std::vector<Tensor>&)>(ref_fn)}) {
    for (Tensor* t : {&x, &A, &B, &m}) t->zero_grad();
    fn({x}).backward(R);
    for (Tensor* t : {&x, &A, &B, &m}) grads[k].push_back(t->grad().to_floats());
    ++k;
  }
  for (std::size_t i = 0; i < grads[0].size(); ++i) {
    double d = 0;
    for (std::size_t j = 0; j < grads[0][i].size(); ++j) d = std::max(d, std::fabs(double(grads[0][i][j]) - grads[1][i][j]));
    EXPECT_LT(d, 1e-5) << "gradient " << i;
  }
  expect_gradients_match(ref_fn, {x}, {1e-2f, 2e-3f, 2e-2f}, "reference in x");
  expect_gradients_match([&](const std::vector<Tensor>&) { return ref_fn({x}); }, {A, B, m}, {1e-2f, 2e-3f, 2e-2f},
                         "reference in A, B, m");
}

// Through the whole model, against finite differences: the magnitude (the norm does not
// depend on it, so the detached norm is exact there). `channels` > 0 checks only the
// first channels of row 0, as f32 rounding over a real model's every output would drown
// the differences.
void gradcheck_magnitudes(const Backbone& bb, const std::string& config, const std::string& label, std::int64_t channels = 0) {
  auto set = attach(bb, "lora", config);
  randomize_dora(*set, "task", 21);
  const Batch batch = two_row_batch(bb.info().vocab_size);
  std::vector<Tensor> inputs;
  for (const auto& p : parameters_of(*set))
    if (p.name.find("lora_magnitude_vector") != std::string::npos) inputs.push_back(p.tensor);
  ASSERT_FALSE(inputs.empty());
  auto f = [&](const std::vector<Tensor>&) {
    const Tensor out = forward_with(bb, set.get(), batch);
    return channels > 0 ? ops::slice(ops::slice(out, 0, 0, 1), 2, 0, channels) : out;
  };
  expect_gradients_match(f, inputs, {1e-2f, 2e-3f, 2e-2f}, label);
}

TEST(Dora, MagnitudeGradientsMatchFiniteDifferences) {
  gradcheck_magnitudes(*tiny_bert().model, R"({"use_dora": true, "r": 2, "target_modules": "all-linear"})", "tiny bert");
  gradcheck_magnitudes(*tiny_llama().model, R"({"use_dora": true, "r": 2, "target_modules": "all-linear"})", "tiny llama");
  gradcheck_magnitudes(*minilm().model, R"({"use_dora": true, "r": 2, "target_modules": ["value"], "layers_to_transform": [4]})",
                       "MiniLM", 8);
  gradcheck_magnitudes(*stories260k().model,
                       R"({"use_dora": true, "r": 2, "target_modules": ["q_proj", "down_proj"], "layers_to_transform": [1]})",
                       "stories260K", 8);
}

TEST(Dora, TrainsSst2OnMiniLm) {
  const LearningRun run = learn_sst2({"lora", R"({"use_dora": true})", 40, 1e-3f, 1});
  EXPECT_LT(run.after.loss, run.before.loss - 0.05);
  EXPECT_GT(run.after.accuracy, run.before.accuracy + 0.1);
  EXPECT_TRUE(run.backbone_unchanged) << "training changed the frozen backbone";
}

TEST(Dora, TrainsCausalLmOnStories260K) {
  const LearningRun run = learn_stories({"lora", R"({"use_dora": true, "target_modules": "all-linear"})", 60, 3e-3f, 1});
  EXPECT_LT(run.after.loss, run.before.loss - 0.1);
  EXPECT_TRUE(run.backbone_unchanged) << "training changed the frozen backbone";
}

TEST(Dora, SaveLoadReproducesOutputsExactly) {
  for (Backbone* bb : {minilm().model.get(), stories260k().model.get()}) {
    auto set = attach(*bb, "lora", R"({"use_dora": true, "target_modules": "all-linear", "r": 4})", 3);
    randomize_dora(*set, "task", 13);
    const Batch batch = two_row_batch(bb->info().vocab_size);
    const Tensor want = hidden(*bb, set.get(), batch);
    const fs::path dir = fs::temp_directory_path() / fmt::format("graft_dora_{}_{}", bb->info().architecture, ::getpid());
    fs::remove_all(dir);
    save_adapter(dir, *set, "task", *bb, nullptr);
    const json config = load_fixture((dir / "adapter_config.json").string());
    EXPECT_EQ(config.at("use_dora"), true);
    for (bool manifest : {true, false}) {  // graft's folder, and as PEFT would read it
      if (!manifest) fs::remove(dir / "graft_adapter.json");
      AdapterSet restored(*bb);
      load_adapter(dir, restored, "restored", plugins(), *bb, nullptr);
      const Tensor got = hidden(*bb, &restored, batch);
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << bb->info().architecture << " manifest " << manifest;
    }
    fs::remove_all(dir);
  }
}

TEST(Dora, MergesThroughTheHost) {
  for (const std::string name : {"tiny_bert", "tiny_llama"}) {
    Backbone& b = name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
    const Batch batch = fixture_batch(name);
    const auto original = snapshot(b);
    auto set = attach(b, "lora", R"({"use_dora": true, "r": 4, "target_modules": "all-linear"})", 9);
    randomize_dora(*set, "task", 31);
    const Tensor unmerged = hidden(b, set.get(), batch);
    set->merge("task");
    const double merged = max_abs_diff(hidden(b, nullptr, batch), unmerged);
    set->unmerge("task");
    std::printf("  %s: merged (bare backbone) vs unmerged %.3g\n", name.c_str(), merged);
    EXPECT_LT(merged, 1e-5);
    EXPECT_TRUE(bit_identical(b, original));
  }
}

TEST(Dora, LoadsAdaptersSavedByPeft) {
  for (const std::string name : {"tiny_bert", "tiny_llama"}) {
    Backbone& b = name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
    const fs::path dir = kDoraDir / (name + "_dora");
    const json ref = load_fixture((dir / "reference.json").string());
    AdapterSet set(b);
    EXPECT_EQ(load_adapter(dir, set, "peft", plugins(), b, nullptr).method, "lora");
    std::printf("  %s\n", set.method("peft").describe().c_str());
    const Batch batch = fixture_batch(name);
    const std::string key = b.info().causal ? "logits" : "last_hidden_state";
    compare_masked(name + " + PEFT DoRA " + key, outputs_of(b, &set, batch), ref.at(key), batch.attention_mask,
                   ref.at("tolerance").at("f32_abs").get<double>());
  }
}

TEST(Dora, GraftSavedAdaptersForPeft) {
  auto randomize = [](AdapterSet& set) { randomize_dora(set, "task", 51); };
  check_graft_saved(kDoraDir / "graft_saved_tiny_bert", "tiny_bert", "lora",
                    R"({"use_dora": true, "r": 4, "lora_alpha": 8, "target_modules": ["attention.query", "attention.value", "ffn.down"]})",
                    randomize);
  check_graft_saved(kDoraDir / "graft_saved_tiny_llama", "tiny_llama", "lora",
                    R"({"use_dora": true, "r": 4, "lora_alpha": 16, "use_rslora": true, "target_modules": ["q_proj", "v_proj", "up_proj"], "layers_to_transform": [1]})",
                    randomize);
}

}  // namespace
}  // namespace graft::testing
