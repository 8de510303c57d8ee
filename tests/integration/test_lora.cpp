// The LoRA plugin (plugins/lora) on real and tiny backbones: parameter counts, the
// identity at init, gradients against finite differences, training on real data, save
// and load, errors, merging, per-row selection, and adapters moving between graft and
// Hugging Face PEFT (tests/golden/make_peft_lora_fixtures.py).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "golden/fixture.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "integration/lora_fixtures.h"
#include "integration/peft_harness.h"
#include "io/safetensors.h"
#include "train/adapter_io.h"
#include "unit/gradcheck.h"
#include "unit/error_of.h"

namespace graft::testing {
namespace {

namespace fs = std::filesystem;
const fs::path kPeftDir = kGolden / "peft_lora";
// Expected closed form: Σ r·(in + out) over the linear sites with a module among
// `modules` (graft names) in `layers` (empty: all).
std::int64_t closed_form(const Backbone& backbone, std::int64_t r, const std::set<std::string>& modules,
                         const std::set<int>& layers = {}) {
  std::int64_t total = 0;
  for (const Site& s : backbone.sites())
    if (s.kind == SiteKind::linear && modules.count(s.module) && (layers.empty() || layers.count(s.layer)))
      total += r * (s.in_features + s.out_features);
  return total;
}

std::int64_t count_parameters(const AdapterSet& set) {
  std::int64_t n = 0;
  for (const auto& p : set.method("task").parameters()) n += p.tensor.numel();
  return n;
}

// ---------------------------------------------------------------- (i) parameter counts

TEST(Lora, ParameterCountIsTheClosedForm) {
  struct Case {
    const char* backbone;
    std::string config;
    std::int64_t r;
    std::set<std::string> modules;
    std::set<int> layers;
  };
  const Case cases[] = {
      {"minilm", R"({"r": 8, "lora_alpha": 16})", 8, {"attention.query", "attention.value"}, {}},
      {"minilm", R"({"r": 4, "target_modules": ["query", "key", "value", "attention.output", "ffn.up", "ffn.down"],
                     "layers_to_transform": [0, 5]})", 4, {"attention.query", "attention.key", "attention.value", "attention.output", "ffn.up", "ffn.down"}, {0, 5}},
      {"stories260k", R"({"r": 8, "target_modules": ["q_proj", "v_proj"]})", 8, {"attention.query", "attention.value"}, {}},
      {"stories260k", R"({"r": 2, "target_modules": "all-linear", "layers_to_transform": 3})", 2,
       {"attention.query", "attention.key", "attention.value", "attention.output", "ffn.gate", "ffn.up", "ffn.down"}, {3}},
  };
  for (const Case& c : cases) {
    Backbone& b = std::string(c.backbone) == "minilm" ? *minilm().model : *stories260k().model;
    auto set = attach(b, "lora", c.config);
    const std::int64_t want = closed_form(b, c.r, c.modules, c.layers);
    EXPECT_EQ(count_parameters(*set), want) << c.backbone << " " << c.config;
    const std::string d = set->method("task").describe();
    EXPECT_NE(d.find(fmt::format("trainable parameters")), std::string::npos) << d;
    std::printf("  %-12s %s\n", c.backbone, d.c_str());
  }
  // MiniLM, r=8 on query and value: 12 sites of 384 -> 384.
  auto set = attach(*minilm().model, "lora", R"({"r": 8})");
  EXPECT_EQ(count_parameters(*set), 12 * 8 * (384 + 384));
  EXPECT_EQ(set->method("task").describe(),
            "LoRA r=8 alpha=8 on 12 linear sites (attention.query, attention.value; layers 0-5): 73,728 trainable parameters");
}

// ---------------------------------------------------------------- (ii) identity at init

TEST(Lora, FreshAdapterLeavesOutputsUnchanged) {
  for (auto* loaded : {&tiny_bert(), &tiny_llama(), &minilm()}) {
    Backbone& b = *loaded->model;
    const Batch batch = fixture_batch(b.info().architecture == "llama" ? "tiny_llama" : "tiny_bert");
    const Tensor bare = hidden(b, nullptr, batch);
    auto set = attach(b, "lora", R"({"target_modules": "all-linear", "r": 4})", 7);
    EXPECT_EQ(floats(hidden(b, set.get(), batch)), floats(bare)) << b.info().source;
  }
}

TEST(Lora, InitialisesAsPeftDoes) {
  Backbone& b = *tiny_llama().model;  // q: 32 -> 32, k/v: 32 -> 16
  auto params_of = [&](const std::string& config, std::uint64_t seed) {
    auto set = attach(b, "lora", config, seed);
    std::vector<std::vector<float>> out;
    for (const auto& p : set->method("task").parameters()) out.push_back(p.tensor.to_floats());
    return out;
  };
  auto max_abs = [](const std::vector<float>& v) { float m = 0; for (float x : v) m = std::max(m, std::fabs(x)); return m; };
  // Default: A ~ U(±1/√in) (kaiming_uniform_(a=√5)), B = 0; every site its own draw.
  const auto p = params_of(R"({"r": 4})", 1);
  ASSERT_EQ(p.size(), 8u);  // (A, B) x (q, v) x 2 layers
  EXPECT_LE(max_abs(p[0]), 1 / std::sqrt(32.f));
  EXPECT_GT(max_abs(p[0]), 0.8f / std::sqrt(32.f));
  EXPECT_EQ(max_abs(p[1]), 0.f);
  EXPECT_NE(p[0], p[4]);
  EXPECT_EQ(params_of(R"({"r": 4})", 1), p) << "the same seed gives the same adapter";
  EXPECT_NE(params_of(R"({"r": 4})", 2)[0], p[0]);
  // "gaussian": A ~ N(0, 1/r²); false: B as nn.Linear's default, non-zero.
  const auto g = params_of(R"({"r": 4, "init_lora_weights": "gaussian"})", 1);
  double sq = 0;
  for (float x : g[0]) sq += x * x;
  EXPECT_NEAR(std::sqrt(sq / g[0].size()), 0.25, 0.05);
  EXPECT_EQ(max_abs(g[1]), 0.f);
  const auto f = params_of(R"({"r": 4, "init_lora_weights": false})", 1);
  EXPECT_GT(max_abs(f[1]), 0.f);
  EXPECT_LE(max_abs(f[1]), 0.5f);
}

// ---------------------------------------------------------------- (iii) gradients

void gradcheck_on(Backbone& b, const std::string& fixture, const std::string& config) {
  auto set = attach(b, "lora", config, 3);
  randomize_b(*set, "task", 11);
  const Batch batch = fixture_batch(fixture, 5);
  std::vector<Tensor> params;
  for (const auto& p : set->method("task").parameters()) params.push_back(p.tensor);
  ASSERT_FALSE(params.empty());
  // The parameters are the adapter's own tensors: gradcheck perturbs them in place.
  expect_gradients_match([&](const std::vector<Tensor>&) { return forward_with(b, set.get(), batch); }, params,
                         GradcheckTolerance{1e-2f, 2e-3f, 2e-2f}, fixture);
}

TEST(Lora, GradientsMatchFiniteDifferencesOnTinyBert) {
  gradcheck_on(*tiny_bert().model, "tiny_bert",
               R"({"r": 2, "lora_alpha": 4, "target_modules": ["layers.0.attention.query", "layers.1.ffn.down"]})");
}

TEST(Lora, GradientsMatchFiniteDifferencesOnTinyLlama) {
  gradcheck_on(*tiny_llama().model, "tiny_llama",
               R"({"r": 2, "lora_alpha": 3, "use_rslora": true, "target_modules": ["layers.0.attention.value", "layers.1.ffn.gate"]})");
}

// ---------------------------------------------------------------- (iv) training

TEST(Lora, TrainsSst2OnMiniLmWithoutTouchingTheBackbone) {
  const LearningRun run = learn_sst2(
      {"lora", R"({"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["query", "value", "ffn.up"]})", 40, 1e-3f, 1});
  EXPECT_GT(run.after.accuracy, run.before.accuracy + 0.1);
  EXPECT_LT(run.last_loss, run.first_loss);
  EXPECT_TRUE(run.backbone_unchanged) << "training changed a frozen weight";
}

TEST(Lora, AdaptsStories260kToMovieReviews) {
  const LearningRun run = learn_stories({"lora", R"({"r": 8, "lora_alpha": 16, "target_modules": "all-linear"})", 60, 1e-2f, 2});
  EXPECT_LT(run.after.loss, run.before.loss - 0.1);
  EXPECT_TRUE(run.backbone_unchanged) << "training changed a frozen weight";
}

// LoRA's dropout is on in training passes only — the backbone's training flag, as
// PEFT's module.training — not whenever gradients are recorded (gradcheck, saliency).
TEST(Lora, DropoutFollowsTheBackbonesTrainingFlag) {
  Backbone& b = *tiny_llama().model;  // no dropout of its own: any change is LoRA's
  auto set = attach(b, "lora", R"({"r": 4, "lora_alpha": 8, "lora_dropout": 0.5, "target_modules": ["q_proj", "v_proj"]})", 3);
  randomize_b(*set, "task", 11);
  const Batch batch = fixture_batch("tiny_llama");
  const std::vector<float> eval = floats(hidden(b, set.get(), batch));
  EXPECT_EQ(floats(forward_with(b, set.get(), batch, false)), eval) << "gradients on, not training: no dropout";
  EXPECT_NE(floats(forward_with(b, set.get(), batch, true)), eval) << "training: dropout on the LoRA branch";
  EXPECT_FALSE(training_mode()) << "the training scope ends with the forward pass";
}

// ---------------------------------------------------------------- (v) save and load

TEST(Lora, SaveThenLoadReproducesOutputsExactly) {
  Backbone& b = *tiny_bert().model;
  const Batch batch = fixture_batch("tiny_bert");
  auto set = attach(b, "lora", R"({"r": 3, "lora_alpha": 5, "target_modules": ["query", "ffn.up", "ffn.down"], "layers_to_transform": [1]})", 5);
  randomize_b(*set, "task", 21);
  const Tensor want = hidden(b, set.get(), batch);
  const fs::path dir = fs::temp_directory_path() / fmt::format("graft_lora_test_{}", ::getpid());
  fs::remove_all(dir);
  save_adapter(dir, *set, "task", b, nullptr);
  AdapterSet fresh(b);
  load_adapter(dir, fresh, "loaded", plugins(), b, nullptr, 99);
  EXPECT_EQ(floats(hidden(b, &fresh, batch)), floats(want));
  EXPECT_EQ(fresh.method("loaded").describe(), set->method("task").describe());
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- (vi) errors

TEST(Lora, ConfigErrorsAreClear) {
  Backbone& minilm_b = *minilm().model;
  std::string e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"target_modules": ["q_proj"]})"); });
  EXPECT_NE(e.find("'q_proj' matches no linear site"), std::string::npos) << e;
  EXPECT_NE(e.find("attention.query"), std::string::npos) << "the hint lists the sites: " << e;

  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"rank": 4})"); });
  EXPECT_NE(e.find("unknown key 'rank'"), std::string::npos) << e;
  EXPECT_NE(e.find("lora_alpha"), std::string::npos) << "lists accepted keys: " << e;

  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"r": 0})"); });
  EXPECT_NE(e.find("'r'"), std::string::npos) << e;
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;

  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"lora_dropout": 1})"); });
  EXPECT_NE(e.find("lora_dropout"), std::string::npos) << e;
  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"use_dora": "yes"})"); });
  EXPECT_NE(e.find("use_dora"), std::string::npos) << e;
  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"init_lora_weights": "pissa"})"); });
  EXPECT_NE(e.find("pissa"), std::string::npos) << e;
  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"modules_to_save": ["classifier"]})"); });
  EXPECT_NE(e.find("modules_to_save"), std::string::npos) << e;
  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"rank_pattern": {"query": 16}})"); });
  EXPECT_NE(e.find("rank_pattern"), std::string::npos) << e;
  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"layers_to_transform": [9]})"); });
  EXPECT_NE(e.find("layer 9"), std::string::npos) << e;
  e = error_of<ConfigError>([&] { attach(minilm_b, "lora", R"({"target_modules": []})"); });
  EXPECT_NE(e.find("empty"), std::string::npos) << e;
}

TEST(Lora, MiniLmAdapterDoesNotLoadOntoStories260k) {
  Backbone& from = *minilm().model;
  auto set = attach(from, "lora", R"({"r": 2})");
  const fs::path dir = fs::temp_directory_path() / fmt::format("graft_lora_cross_{}", ::getpid());
  fs::remove_all(dir);
  save_adapter(dir, *set, "task", from, nullptr);
  Backbone& to = *stories260k().model;
  AdapterSet other(to);
  const std::string e = error_of<ConfigError>([&] { load_adapter(dir, other, "x", plugins(), to, nullptr); });
  EXPECT_NE(e.find("trained on another backbone"), std::string::npos) << e;
  EXPECT_FALSE(other.contains("x"));
  // Without graft's manifest (as PEFT would have saved it) the tensor names still disagree.
  fs::remove(dir / "graft_adapter.json");
  const std::string e2 = error_of<FormatError>([&] { load_adapter(dir, other, "x", plugins(), to, nullptr); });
  EXPECT_NE(e2.find("none of the 24 saved tensors belongs to this backbone"), std::string::npos) << e2;
  std::printf("  without the manifest: %s\n", e2.c_str());
  EXPECT_FALSE(other.contains("x"));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- (vii) merge / unmerge

void merge_roundtrip(Backbone& b, const std::string& fixture) {
  const Batch batch = fixture_batch(fixture);
  const auto original = snapshot(b);
  auto set = attach(b, "lora", R"({"r": 4, "lora_alpha": 8, "target_modules": "all-linear"})", 9);
  randomize_b(*set, "task", 31);
  const Tensor unmerged = hidden(b, set.get(), batch);
  set->merge("task");
  set->merge("task");  // a second merge is a no-op
  EXPECT_TRUE(set->merged("task"));
  EXPECT_FALSE(bit_identical(b, original));
  const double merged_diff = max_abs_diff(hidden(b, set.get(), batch), unmerged);
  // Merged, the backbone alone carries the adapter.
  const double bare_diff = max_abs_diff(hidden(b, nullptr, batch), unmerged);
  set->unmerge("task");
  EXPECT_FALSE(set->merged("task"));
  double weight_diff = 0;
  const auto now = b.parameters();
  for (std::size_t i = 0; i < now.size(); ++i) weight_diff = std::max(weight_diff, max_abs_diff(now[i].tensor, original[i]));
  const double after_diff = max_abs_diff(hidden(b, set.get(), batch), unmerged);
  std::printf("  %s: merged vs unmerged outputs %.3g, weights after unmerge %.3g, outputs after unmerge %.3g\n", fixture.c_str(),
              merged_diff, weight_diff, after_diff);
  EXPECT_LE(merged_diff, 1e-5);
  EXPECT_LE(bare_diff, 1e-5);
  EXPECT_EQ(weight_diff, 0.0);  // the host restores the saved bits
  EXPECT_LE(after_diff, 1e-5);
  // An adapter removed while merged takes its delta with it, as does a set destroyed.
  set->merge("task");
  set->remove("task");
  EXPECT_TRUE(bit_identical(b, original));
  set = attach(b, "lora", R"({"r": 4, "lora_alpha": 8, "target_modules": "all-linear"})", 9);
  randomize_b(*set, "task", 31);
  set->merge("task");
  set.reset();
  weight_diff = 0;
  for (std::size_t i = 0; i < now.size(); ++i) weight_diff = std::max(weight_diff, max_abs_diff(now[i].tensor, original[i]));
  EXPECT_EQ(weight_diff, 0.0);
  // Put the exact bits back for the tests that share this backbone.
  for (std::size_t i = 0; i < now.size(); ++i) std::memcpy(now[i].tensor.raw(), original[i].raw(), original[i].nbytes());
}

TEST(Lora, MergeAndUnmergeOnTinyBert) { merge_roundtrip(*tiny_bert().model, "tiny_bert"); }
TEST(Lora, MergeAndUnmergeOnTinyLlama) { merge_roundtrip(*tiny_llama().model, "tiny_llama"); }

TEST(Lora, MergeIntoBf16WeightsIsRefused) {
  auto loaded = model::load_backbone(kGolden / "backbones" / "tiny_bert", DType::bf16);
  auto set = attach(*loaded.model, "lora", "{}");
  const std::string e = error_of<ShapeError>([&] { set->merge("task"); });
  EXPECT_NE(e.find("bf16"), std::string::npos) << e;
  // Unmerged, the adapter still runs on bf16 weights.
  EXPECT_EQ(hidden(*loaded.model, set.get(), fixture_batch("tiny_bert")).dtype(), DType::f32);
}

// ---------------------------------------------------------------- (viii) per-row selection

TEST(Lora, PerRowSelectionAdaptsOnlyItsRows) {
  Backbone& b = *tiny_bert().model;
  const Batch batch = fixture_batch("tiny_bert");
  ASSERT_EQ(batch.input_ids.dim(0), 2);
  auto set = attach(b, "lora", R"({"r": 4, "target_modules": "all-linear"})", 4);
  randomize_b(*set, "task", 41);
  const auto adapted = floats(hidden(b, set.get(), batch));
  const auto bare = floats(hidden(b, nullptr, batch));
  const Selection per_row = Selection::per_row({"task", ""});
  const auto mixed = floats(hidden(b, set.get(), batch, &per_row));
  // Equal up to summation order: the adapter's row runs as a batch of one, which oneDNN
  // may block differently from a batch of two (on AVX2 it does: ~1e-7).
  const std::size_t half = mixed.size() / 2;
  double to_adapted = 0, to_bare = 0, moved = 0;
  for (std::size_t i = 0; i < half; ++i) {
    to_adapted = std::max(to_adapted, static_cast<double>(std::fabs(mixed[i] - adapted[i])));
    to_bare = std::max(to_bare, static_cast<double>(std::fabs(mixed[half + i] - bare[half + i])));
    moved = std::max(moved, static_cast<double>(std::fabs(adapted[i] - bare[i])));
  }
  EXPECT_LT(to_adapted, 1e-5) << "the selected row differs from the adapter run alone";
  EXPECT_LT(to_bare, 1e-5) << "the unselected row differs from the bare backbone";
  EXPECT_GT(moved, 1e-2) << "the adapter changes nothing, so the test proves nothing";
}

// ---------------------------------------------------------------- PEFT interop

TEST(Lora, LoadsAdaptersSavedByPeft) {
  for (const std::string name : {"tiny_bert", "tiny_llama"}) {
    Backbone& b = name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
    const fs::path dir = kPeftDir / (name + "_lora");
    const json ref = load_fixture((dir / "reference.json").string());
    AdapterSet set(b);
    const SavedAdapter saved = load_adapter(dir, set, "peft", plugins(), b, nullptr);
    EXPECT_EQ(saved.method, "lora");
    std::printf("  %s\n", set.method("peft").describe().c_str());
    const Batch batch = fixture_batch(name);
    const std::string key = b.info().causal ? "logits" : "last_hidden_state";
    compare_masked(name + " + PEFT LoRA " + key, outputs_of(b, &set, batch), ref.at(key), batch.attention_mask,
                   ref.at("tolerance").at("f32_abs").get<double>());
    if (name != "tiny_llama") continue;
    // PEFT on LlamaModel (not ForCausalLM) names tensors base_model.model.layers...:
    // those load too.
    std::map<std::string, Tensor> renamed;
    const auto file = io::SafetensorsFile::open(dir / "adapter_model.safetensors");
    for (const auto& info : file.tensors()) {
      std::string n = info.name;
      n.replace(0, std::string("base_model.model.model.").size(), "base_model.model.");
      renamed[n] = file.get(info.name).clone();
    }
    for (const auto& p : set.method("peft").parameters()) std::memset(p.tensor.raw(), 0, p.tensor.nbytes());
    set.method("peft").load_state(renamed);
    compare_masked("tiny_llama + PEFT LoRA (LlamaModel names)", outputs_of(b, &set, batch), ref.at(key), batch.attention_mask,
                   ref.at("tolerance").at("f32_abs").get<double>());
  }
}

// Adapters saved by graft, which the fixture script loads with PeftModel.from_pretrained.
// With GRAFT_WRITE_PEFT_FIXTURES=1 this rewrites them; otherwise it checks that the
// committed folders still load in graft to the outputs recorded there.
TEST(Lora, GraftSavedAdaptersForPeft) {
  struct Case {
    std::string name, config;
  };
  for (const Case& c : {Case{"tiny_bert", R"({"r": 4, "lora_alpha": 8, "target_modules": ["attention.query", "attention.value", "ffn.down"]})"},
                        Case{"tiny_llama", R"({"r": 4, "lora_alpha": 16, "use_rslora": true, "target_modules": ["q_proj", "v_proj", "up_proj"], "layers_to_transform": [1]})"}}) {
    Backbone& b = c.name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
    const fs::path dir = kPeftDir / ("graft_saved_" + c.name);
    check_graft_saved(dir, c.name, "lora", c.config, [](AdapterSet& set) { randomize_b(set, "task", 51); });
    // What PEFT will read: the modules as the checkpoint names them.
    const json peft_config = load_fixture((dir / "adapter_config.json").string());
    std::printf("  %s target_modules %s, layers_to_transform %s\n", c.name.c_str(), peft_config.at("target_modules").dump().c_str(),
                peft_config.at("layers_to_transform").dump().c_str());
    EXPECT_EQ(peft_config.at("peft_type"), "LORA");
    EXPECT_EQ(peft_config.at("base_model_name_or_path"), c.name);
  }
}

// A graft adapter's adapter_config.json, read back as a PEFT folder (no graft manifest),
// selects the same sites: the target_modules graft writes mean the same thing to both.
TEST(Lora, WrittenTargetModulesSelectTheSameSites) {
  Backbone& b = *tiny_bert().model;
  const Batch batch = fixture_batch("tiny_bert");
  for (const std::string config : {R"({"target_modules": ["query", "ffn.up"], "layers_to_transform": [0]})",
                                   R"({"target_modules": ["ffn.down", "attention.output"]})",
                                   R"({"target_modules": ["layers.0.attention.key", "layers.1.ffn.down"]})"}) {
    auto set = attach(b, "lora", config, 6);
    randomize_b(*set, "task", 61);
    const fs::path dir = fs::temp_directory_path() / fmt::format("graft_lora_peftread_{}", ::getpid());
    fs::remove_all(dir);
    save_adapter(dir, *set, "task", b, nullptr);
    fs::remove(dir / "graft_adapter.json");
    AdapterSet other(b);
    load_adapter(dir, other, "peft", plugins(), b, nullptr);
    EXPECT_EQ(other.method("peft").describe(), set->method("task").describe()) << config;
    EXPECT_EQ(floats(hidden(b, &other, batch)), floats(hidden(b, set.get(), batch))) << config;
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace graft::testing
