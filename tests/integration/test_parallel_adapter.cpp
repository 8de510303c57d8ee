// Parallel adapters (He et al. 2022; plugins/houlsby with is_parallel, AdapterHub's
// ParBnConfig) on all-MiniLM-L6-v2, stories260K and the tiny BERT/LLaMA fixtures:
// parameter counts, identity at init, the function against an independent reference,
// gradients, training, saving and per-row selection.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "graft/ops.h"
#include "train/adapter_io.h"
#include "peft_harness.h"
#include "unit/gradcheck.h"

namespace graft::testing {
namespace {

namespace fs = std::filesystem;

// AdapterHub's ParBnConfig, every key it writes that graft reads.
const std::string kParBn = R"({"is_parallel": true, "reduction_factor": 2, "non_linearity": "relu", "scaling": 4.0,
  "mh_adapter": false, "output_adapter": true, "original_ln_before": false, "original_ln_after": true,
  "residual_before_ln": true, "ln_before": false, "ln_after": false, "init_weights": "mam_adapter"})";

std::string par_bn(const std::string& overrides) {
  nlohmann::json c = nlohmann::json::parse(kParBn);
  c.update(nlohmann::json::parse(overrides));
  return c.dump();
}

std::int64_t trainable(const AdapterSet& set) {
  std::int64_t n = 0;
  for (const auto& p : parameters_of(set)) n += p.tensor.numel();
  return n;
}

// Per site: down [b, H] + b, up [H, b] + H, 2H per adapter-owned norm, and the scaling
// parameters (learned: 1, channel: H).
std::int64_t closed_form(const Backbone& bb, std::int64_t sites, double reduction, int norms = 0, std::int64_t scaling = 0) {
  const std::int64_t H = bb.info().hidden_size, b = std::max<std::int64_t>(1, static_cast<std::int64_t>(H / reduction));
  return sites * (2 * H * b + b + H + norms * 2 * H + scaling);
}

Tensor run(const Backbone& bb, const AdapterSet& set, const Batch& batch, const Selection* selection = nullptr) {
  NoGradGuard no_grad;
  return forward_with(bb, &set, batch, false, nullptr, selection);
}

// ---- (i) parameter counts --------------------------------------------------------

TEST(ParallelAdapter, ParameterCountsMatchClosedForm) {
  for (Backbone* bb : {minilm().model.get(), stories260k().model.get()}) {
    const std::int64_t L = bb->info().num_layers, H = bb->info().hidden_size;
    auto set = attach(*bb, "houlsby", kParBn);
    EXPECT_EQ(trainable(*set), closed_form(*bb, L, 2));
    const std::string d = set->method("task").describe();
    std::printf("  %s: %s\n", bb->info().architecture.c_str(), d.c_str());
    EXPECT_NE(d.find("Parallel adapters"), std::string::npos) << d;
    EXPECT_NE(d.find("beside FFN"), std::string::npos) << d;

    auto both = attach(*bb, "houlsby", par_bn(R"({"mh_adapter": true, "scaling": "learned", "reduction_factor": 8})"));
    EXPECT_EQ(trainable(*both), closed_form(*bb, 2 * L, 8, 0, 1));
    auto channel = attach(*bb, "houlsby", par_bn(R"({"scaling": "channel", "ln_before": true, "ln_after": true, "leave_out": [0]})"));
    EXPECT_EQ(trainable(*channel), closed_form(*bb, L - 1, 2, 2, H));
  }
}

TEST(ParallelAdapter, NamesAndConfigFollowAdapterHub) {
  auto set = attach(*minilm().model, "houlsby", par_bn(R"({"scaling": "learned"})"));
  const auto params = set->method("task").parameters();
  ASSERT_EQ(params.size(), 5u * 6);
  EXPECT_EQ(params[0].name, "encoder.layer.0.output.adapters.task.adapter_down.0.weight");
  EXPECT_EQ(params[4].name, "encoder.layer.0.output.adapters.task.scaling");
  const auto config = nlohmann::json::parse(set->method("task").adapter_config_json());
  EXPECT_EQ(config.at("config").at("is_parallel"), true);
  EXPECT_EQ(config.at("config").at("scaling"), "learned");
  EXPECT_EQ(config.at("config").at("architecture"), "bottleneck");
}

// ---- (ii) at init the adapter adds exactly nothing -------------------------------

TEST(ParallelAdapter, InitialOutputIsTheFrozenBackbonesBitForBit) {
  for (Backbone* bb : {minilm().model.get(), stories260k().model.get()}) {
    const Batch batch = two_row_batch(bb->info().vocab_size);
    Tensor frozen;
    {
      NoGradGuard no_grad;
      frozen = bb->forward(batch);
    }
    for (const std::string& config : {kParBn, par_bn(R"({"mh_adapter": true, "scaling": "learned", "ln_before": true})")}) {
      auto set = attach(*bb, "houlsby", config);
      const Tensor adapted = run(*bb, *set, batch);
      ASSERT_EQ(adapted.nbytes(), frozen.nbytes());
      EXPECT_EQ(std::memcmp(adapted.raw(), frozen.raw(), frozen.nbytes()), 0) << bb->info().architecture << " " << config;
    }
  }
}

// ---- (iii) the function: h + s·up(act(down(input))), against its own reference --

// Stacks recorders before and after the adapter at one site and recomputes its output
// from the block input the first saw and the adapter's parameters.
void check_function(const Backbone& bb, const std::string& config, const std::string& site, float scaling) {
  auto set = attach(bb, "houlsby", config);
  randomize(*set, 0.2f, 11);
  HookCalls before, after;
  attach_recorder(*set, "a_before", {site}, before);
  attach_recorder(*set, "z_after", {site}, after);
  const Selection stack = Selection::stack({"a_before", "task", "z_after"});
  run(bb, *set, two_row_batch(bb.info().vocab_size), &stack);
  const SublayerCall& in = before.sublayer.at(site), &out = after.sublayer.at(site);
  EXPECT_EQ(max_abs_diff(out.input, in.input), 0.0);  // a stack keeps the block's input
  std::map<std::string, Tensor> p;
  for (const auto& n : set->method("task").parameters()) p[n.name.substr(n.name.find(".adapter_") + 1)] = n.tensor;
  // Only this site's adapter: the test attaches one (leave_out / mh_adapter select it).
  NoGradGuard no_grad;
  const Tensor down = ops::relu(ops::linear(in.input, p.at("adapter_down.0.weight"), p.at("adapter_down.0.bias")));
  const Tensor want = ops::add(in.h, ops::scale(ops::linear(down, p.at("adapter_up.weight"), p.at("adapter_up.bias")), scaling));
  const double d = max_abs_diff(out.h, want);
  std::printf("  %s at %s: max |graft - reference| %.3g (adapter moves h by %.3g)\n", bb.info().architecture.c_str(),
              site.c_str(), d, max_abs_diff(out.h, in.h));
  EXPECT_LT(d, 1e-5);
  EXPECT_GT(max_abs_diff(out.h, in.h), 1e-2);
  // A sequential adapter fed h would differ: the hook really reads the block's input.
  const Tensor from_h = ops::relu(ops::linear(in.h, p.at("adapter_down.0.weight"), p.at("adapter_down.0.bias")));
  EXPECT_GT(max_abs_diff(out.h, ops::add(in.h, ops::scale(ops::linear(from_h, p.at("adapter_up.weight"), p.at("adapter_up.bias")), scaling))), 1e-3);
}

TEST(ParallelAdapter, ComputesTheBottleneckOfTheBlockInput) {
  // One adapter (the FFN of layer 1), so the parameter map is that site's.
  check_function(*minilm().model, par_bn(R"({"leave_out": [0, 2, 3, 4, 5]})"), "layers.1.ffn", 4.f);
  check_function(*stories260k().model, par_bn(R"({"leave_out": [0, 2, 3, 4], "scaling": 0.5})"), "layers.1.ffn", 0.5f);
  check_function(*tiny_llama().model, par_bn(R"({"mh_adapter": true, "output_adapter": false, "leave_out": [0]})"),
                 "layers.1.attention", 4.f);
}

// ---- (iv) gradients of every adapter parameter ----------------------------------

// Smooth activations: finite differences across ReLU's kink would not match.
// `channels` > 0 checks only the first channels of the first row: summed over a real
// model's every output, f32 rounding (about 1e-6 each) would drown the finite
// differences; the backward pass still runs through the whole model.
void gradcheck_on(const Backbone& bb, const std::string& config, const std::string& label, std::int64_t channels = 0) {
  auto set = attach(bb, "houlsby", config);
  randomize(*set, 0.3f, 7);
  const Batch batch = two_row_batch(bb.info().vocab_size);
  std::vector<Tensor> inputs;
  for (const auto& p : parameters_of(*set)) inputs.push_back(p.tensor);
  ASSERT_FALSE(inputs.empty());
  auto f = [&](const std::vector<Tensor>&) {
    const Tensor out = forward_with(bb, set.get(), batch);
    return channels > 0 ? ops::slice(ops::slice(out, 0, 0, 1), 2, 0, channels) : out;
  };
  expect_gradients_match(f, inputs, {1e-2f, 2e-3f, 2e-2f}, label);
}

TEST(ParallelAdapter, GradientsMatchFiniteDifferencesOnTinyModels) {
  gradcheck_on(*tiny_bert().model, par_bn(R"({"reduction_factor": 4, "mh_adapter": true, "scaling": "learned", "non_linearity": "swish"})"),
               "tiny bert parallel");
  gradcheck_on(*tiny_bert().model,
               par_bn(R"({"reduction_factor": 8, "ln_before": true, "ln_after": true, "non_linearity": "gelu", "scaling": "channel"})"),
               "tiny bert parallel with norms");
  gradcheck_on(*tiny_llama().model, par_bn(R"({"reduction_factor": 4, "mh_adapter": true, "scaling": "learned", "non_linearity": "tanh"})"),
               "tiny llama parallel");
}

TEST(ParallelAdapter, GradientsMatchFiniteDifferencesOnMiniLmAndStories260K) {
  // One narrow adapter each: finite differences cost two forward passes per element.
  gradcheck_on(*minilm().model, par_bn(R"({"reduction_factor": 384, "scaling": "learned", "leave_out": [0, 1, 2, 3, 5], "non_linearity": "gelu"})"),
               "MiniLM parallel", 8);
  gradcheck_on(*stories260k().model, par_bn(R"({"reduction_factor": 16, "scaling": "learned", "leave_out": [1, 2, 3, 4], "non_linearity": "swish"})"),
               "stories260K parallel", 8);
}

// ---- (v) training ---------------------------------------------------------------

TEST(ParallelAdapter, TrainsSst2OnMiniLM) {
  // scaling 4 multiplies the update: 1e-3 (the bottleneck adapters' rate) stalls at chance.
  const LearningRun run = learn_sst2({"houlsby", kParBn, 40, 3e-4f, 1});
  EXPECT_LT(run.after.loss, run.before.loss - 0.05);
  EXPECT_GT(run.after.accuracy, run.before.accuracy + 0.1);
  EXPECT_TRUE(run.backbone_unchanged) << "training changed the frozen backbone";
}

TEST(ParallelAdapter, TrainsCausalLmOnStories260K) {
  const LearningRun run = learn_stories({"houlsby", par_bn(R"({"mh_adapter": true})"), 60, 3e-3f, 1});
  EXPECT_LT(run.after.loss, run.before.loss - 0.1);
  EXPECT_TRUE(run.backbone_unchanged) << "training changed the frozen backbone";
}

// ---- (vi) save and load ----------------------------------------------------------

TEST(ParallelAdapter, SaveLoadReproducesOutputsExactly) {
  for (Backbone* bb : {minilm().model.get(), stories260k().model.get()}) {
    auto set = attach(*bb, "houlsby", par_bn(R"({"mh_adapter": true, "scaling": "learned", "ln_after": true, "leave_out": [1]})"));
    randomize(*set, 0.1f, 3);
    const Batch batch = two_row_batch(bb->info().vocab_size);
    const Tensor want = run(*bb, *set, batch);
    const fs::path dir = fs::temp_directory_path() / fmt::format("graft_parallel_{}_{}", bb->info().architecture, ::getpid());
    fs::remove_all(dir);
    save_adapter(dir, *set, "task", *bb, nullptr);
    const auto config = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
    EXPECT_EQ(config.at("config").at("is_parallel"), true);
    AdapterSet restored(*bb);
    load_adapter(dir, restored, "restored", plugins(), *bb, nullptr);
    const Tensor got = run(*bb, restored, batch);
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << bb->info().architecture;
    fs::remove_all(dir);
  }
}

// ---- (vii) per-row selection and errors -----------------------------------------

TEST(ParallelAdapter, PerRowSelectionMixesAdaptedAndBareRows) {
  const Backbone& bb = *stories260k().model;
  auto set = attach(bb, "houlsby", par_bn(R"({"mh_adapter": true, "ln_after": true})"));
  randomize(*set, 0.1f, 5);
  const Batch batch = two_row_batch(bb.info().vocab_size);
  const Tensor adapted = run(bb, *set, batch);
  const Selection none = Selection::none(), per_row = Selection::per_row({"task", ""});
  const Tensor bare = run(bb, *set, batch, &none), mixed = run(bb, *set, batch, &per_row);
  auto row_of = [&](const Tensor& t, int r) { return ops::slice(t, 0, r, 1).clone(); };
  EXPECT_EQ(max_abs_diff(row_of(mixed, 1), row_of(bare, 1)), 0.0);
  EXPECT_LT(max_abs_diff(row_of(mixed, 0), row_of(adapted, 0)), 1e-5);
  EXPECT_GT(max_abs_diff(row_of(adapted, 0), row_of(bare, 0)), 1e-2);
}

TEST(ParallelAdapter, RejectsWhatItCannotDo) {
  try {
    attach(*stories260k().model, "houlsby", par_bn(R"({"scaling": "sometimes"})"));
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("key 'scaling'"), std::string::npos) << e.what();
  }
  // AdapterHub's ParallelAdapter ignores original_ln_before; so does graft.
  EXPECT_NO_THROW(attach(*stories260k().model, "houlsby", par_bn(R"({"original_ln_before": true})")));
  EXPECT_THROW(attach(*stories260k().model, "houlsby", par_bn(R"({"original_ln_after": false})")), ConfigError);
}

}  // namespace
}  // namespace graft::testing
