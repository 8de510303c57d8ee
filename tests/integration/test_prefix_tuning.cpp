// Prefix tuning (plugins/prefix_tuning) on all-MiniLM-L6-v2, stories260K and the tiny
// BERT/LLaMA fixtures: parameter counts, the bare backbone when not selected, gradients,
// training, saving, errors, and adapters saved by Hugging Face PEFT.
//
// "At initialisation the output equals the frozen backbone's" does not apply here: a
// prefix adds n keys every query attends to, so any prefix moves the softmax (there is
// no zero-init that vanishes, unlike LoRA's B = 0 or an adapter's zero up-projection).
// What must hold instead is tested: not selected, or on rows it does not own, the
// adapter leaves the backbone's output exactly as it is.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden/fixture.h"
#include "graft/error.h"
#include "train/adapter_io.h"
#include "peft_harness.h"
#include "unit/gradcheck.h"

namespace graft::testing {
namespace {

namespace fs = std::filesystem;
const fs::path kPeftDir = fs::path(GRAFT_SOURCE_DIR) / "tests" / "golden" / "peft_prompt";

std::int64_t trainable(const AdapterSet& set) {
  std::int64_t n = 0;
  for (const auto& p : parameters_of(set)) n += p.tensor.numel();
  return n;
}

std::int64_t kv_dim(const Backbone& bb) {
  const BackboneInfo& i = bb.info();
  return i.num_kv_heads * (i.hidden_size / i.num_heads);
}

Batch toy_batch(std::int64_t vocab) {  // three rows, the last padded
  std::vector<std::int64_t> ids = {1, 5, 9, 3, 7, 2, 1, 11, 4, 8, 6, 10, 1, 12, 13, 0, 0, 0};
  for (auto& i : ids) i %= vocab;
  return {Tensor::from_ints(ids, {3, 6}), Tensor::from_ints({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, {3, 6}),
          Tensor()};
}

Tensor forward(const Backbone& bb, AdapterSet* set, const Batch& batch, const Selection* selection = nullptr) {
  NoGradGuard no_grad;
  return forward_with(bb, set, batch, false, nullptr, selection);
}

// Row `b` of a [B, ...] tensor as floats.
std::vector<float> row(const Tensor& t, std::int64_t b) {
  const auto all = t.to_floats();
  const std::size_t n = all.size() / static_cast<std::size_t>(t.dim(0));
  return {all.begin() + static_cast<std::ptrdiff_t>(b * n), all.begin() + static_cast<std::ptrdiff_t>((b + 1) * n)};
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("graft_prefix_{}_{}", name, ::getpid());
  fs::remove_all(dir);
  return dir;
}

// (i) PEFT's counts: the table [n, L·2·kv_dim]; with the projection, Embedding(n,
// token_dim) + Linear(token_dim, enc) + Linear(enc, L·2·token_dim), token_dim = kv_dim.
TEST(PrefixTuning, TrainableParametersMatchPeftClosedForm) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const std::int64_t n = 20, L = bb.info().num_layers, kv = kv_dim(bb), enc = 48;
    auto plain = attach(bb, "prefix_tuning", "");
    EXPECT_EQ(trainable(*plain), n * L * 2 * kv) << bb.info().source;
    auto projected = attach(bb, "prefix_tuning", R"({"prefix_projection": true, "encoder_hidden_size": 48})");
    EXPECT_EQ(trainable(*projected), n * kv + kv * enc + enc + enc * L * 2 * kv + L * 2 * kv) << bb.info().source;
    std::printf("%s: prefix n=20 %lld params, with projection (enc 48) %lld; %s\n", bb.info().architecture.c_str(),
                static_cast<long long>(trainable(*plain)), static_cast<long long>(trainable(*projected)),
                plain->method("task").describe().c_str());
  }
  // stories260K has grouped-query attention (8 heads, 4 key/value heads): rows are kv-wide.
  EXPECT_EQ(kv_dim(*stories260k().model), 32);
}

// (ii) Not selected: the bare backbone, bit for bit. Selected for some rows: the other
// rows see the prefix hidden (exp underflows to exactly 0) and equal the bare backbone up
// to summation order (their products run over the prefixed key length, which oneDNN may
// block differently: on AVX2 it does, ~1e-7).
TEST(PrefixTuning, LeavesUnselectedRowsAsTheBareBackbone) {
  auto diff = [](const std::vector<float>& a, const std::vector<float>& b) {
    double d = a.size() == b.size() ? 0 : 1e9;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    return d;
  };
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const Batch batch = toy_batch(bb.info().vocab_size);
    const Tensor bare = forward(bb, nullptr, batch);
    auto set = attach(bb, "prefix_tuning", R"({"num_virtual_tokens": 4})");
    const Selection none = Selection::none(), per_row = Selection::per_row({"task", "", ""});
    EXPECT_EQ(forward(bb, set.get(), batch, &none).to_floats(), bare.to_floats()) << bb.info().source;

    const Tensor mixed = forward(bb, set.get(), batch, &per_row);
    EXPECT_LT(diff(row(mixed, 1), row(bare, 1)), 1e-5) << bb.info().source;
    EXPECT_LT(diff(row(mixed, 2), row(bare, 2)), 1e-5) << bb.info().source << " (padded row)";
    EXPECT_GT(diff(row(mixed, 0), row(bare, 0)), 1e-2) << "the selected row must change";

    EXPECT_LT(diff(row(forward(bb, set.get(), batch), 0), row(mixed, 0)), 1e-5) << "per-row and whole-batch selection differ";
  }
}

// (iii) Gradients of the prefix (and of the projection MLP) by finite differences,
// through every layer of the tiny fixtures (GQA on the LLaMA one).
TEST(PrefixTuning, GradientsMatchFiniteDifferences) {
  for (auto* model : {&tiny_bert(), &tiny_llama()}) {
    const Backbone& bb = *model->model;
    const Batch batch = toy_batch(bb.info().vocab_size);
    for (const char* config : {R"({"num_virtual_tokens": 2})",
                               R"({"num_virtual_tokens": 2, "prefix_projection": true, "encoder_hidden_size": 8})"}) {
      auto set = attach(bb, "prefix_tuning", config, 3);
      std::vector<Tensor> params;
      for (const auto& p : parameters_of(*set)) params.push_back(p.tensor);
      expect_gradients_match([&](const std::vector<Tensor>&) { return forward_with(bb, set.get(), batch); }, params, {},
                             bb.info().architecture + " " + config);
    }
  }
}

// (iv) SST-2 on MiniLM: prefix + classification head (mean pooling) beat the untrained
// pair on held-out rows; the backbone does not change by a bit.
TEST(PrefixTuning, TrainsSst2OnMiniLm) {
  const LearningRun run = learn_sst2({"prefix_tuning", R"({"num_virtual_tokens": 10})", 40, 1e-2f, 1});
  EXPECT_GT(run.after.accuracy, run.before.accuracy);
  EXPECT_LT(run.last_loss, run.first_loss);
  EXPECT_TRUE(run.backbone_unchanged) << "the frozen backbone changed";
}

// (iv) Causal LM on stories260K: movie reviews are a new domain for a model of
// children's stories; the prefix lowers held-out loss, below the bare model's.
TEST(PrefixTuning, LowersHeldOutLossOfStories260K) {
  const LearningRun run = learn_stories({"prefix_tuning", R"({"num_virtual_tokens": 10})", 100, 3e-2f, 2});
  EXPECT_LT(run.after.loss, run.before.loss);
  EXPECT_LT(run.after.loss, run.bare.loss) << "the trained prefix should adapt the model to the new domain";
  EXPECT_TRUE(run.backbone_unchanged) << "the frozen backbone changed";
}

// (v) Save and load give the same outputs, bit for bit; with the projection the saved
// table is the MLP's output (PEFT's format), which the loaded adapter uses directly.
TEST(PrefixTuning, SaveLoadReproducesOutputs) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const Batch batch = toy_batch(bb.info().vocab_size);
    for (const char* config : {R"({"num_virtual_tokens": 5})",
                               R"({"num_virtual_tokens": 5, "prefix_projection": true, "encoder_hidden_size": 16})"}) {
      auto set = attach(bb, "prefix_tuning", config, 5);
      const Tensor want = forward(bb, set.get(), batch);
      const fs::path dir = scratch("save");
      save_adapter(dir, *set, "task", bb, nullptr);
      AdapterSet loaded(bb);
      load_adapter(dir, loaded, "task", plugins(), bb, nullptr);
      EXPECT_EQ(forward(bb, &loaded, batch).to_floats(), want.to_floats()) << bb.info().source << " " << config;
      // The folded adapter trains its table: [n, L·2·kv_dim].
      ASSERT_EQ(parameters_of(loaded).size(), 1u);
      EXPECT_EQ(parameters_of(loaded)[0].tensor.shape(), (Shape{5, bb.info().num_layers * 2 * kv_dim(bb)}));
      const auto config_json = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
      EXPECT_EQ(config_json.at("peft_type"), "PREFIX_TUNING");
      EXPECT_EQ(config_json.at("token_dim"), kv_dim(bb));
      EXPECT_EQ(config_json.at("num_attention_heads"), bb.info().num_kv_heads);
      fs::remove_all(dir);
    }
  }
}

// (vi) Errors name what is wrong.
TEST(PrefixTuning, RejectsBadConfigsAndMismatchedFiles) {
  const Backbone& bert = *tiny_bert().model;
  auto expect_config_error = [&](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one naming " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_config_error([&] { attach(bert, "prefix_tuning", R"({"num_virtual_token": 4})"); }, "num_virtual_token");
  expect_config_error([&] { attach(bert, "prefix_tuning", R"({"num_virtual_tokens": 0})"); }, "num_virtual_tokens");
  expect_config_error([&] { attach(bert, "prefix_tuning", R"({"num_transformer_submodules": 2})"); },
                      "num_transformer_submodules");

  // A PEFT file whose num_layers is not the backbone's.
  const fs::path dir = scratch("layers");
  fs::copy(kPeftDir / "bert_prefix", dir);
  auto config = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
  config["num_layers"] = 3;
  std::ofstream(dir / "adapter_config.json") << config.dump();
  AdapterSet set(bert);
  expect_config_error([&] { load_adapter(dir, set, "task", plugins(), bert, nullptr); }, "num_layers");
  EXPECT_FALSE(set.contains("task"));
  // The tiny BERT's file on the tiny LLaMA (2 layers both, but 16-wide key rows there).
  AdapterSet llama_set(*tiny_llama().model);
  expect_config_error([&] { load_adapter(kPeftDir / "bert_prefix", llama_set, "task", plugins(), *tiny_llama().model, nullptr); },
                      "token_dim");
  fs::remove_all(dir);

  // A MiniLM adapter on stories260K.
  const fs::path saved = scratch("minilm");
  auto minilm_set = attach(*minilm().model, "prefix_tuning", R"({"num_virtual_tokens": 2})");
  save_adapter(saved, *minilm_set, "task", *minilm().model, nullptr);
  AdapterSet stories(*stories260k().model);
  expect_config_error([&] { load_adapter(saved, stories, "task", plugins(), *stories260k().model, nullptr); }, "backbone");
  EXPECT_FALSE(stories.contains("task"));
  fs::remove_all(saved);
}

// Adapters saved by Hugging Face PEFT 0.12 (tests/golden/make_peft_prompt_fixtures.py):
// the same table layout, grouped-query rows on the LLaMA, the folded projection.
struct PeftCase {
  const char* folder;
  bool llama;
};
const PeftCase kPeftCases[] = {{"bert_prefix", false}, {"bert_prefix_projection", false}, {"llama_prefix", true}};

void expect_matches_peft(const char* output_key) {
  for (const PeftCase& c : kPeftCases) {
    const Backbone& bb = *(c.llama ? tiny_llama() : tiny_bert()).model;
    const json ref = load_fixture((kPeftDir / c.folder / "reference.json").string());
    AdapterSet set(bb);
    load_adapter(kPeftDir / c.folder, set, "task", plugins(), bb, nullptr);
    const Batch batch{tensor_of(ref.at("input_ids")), tensor_of(ref.at("attention_mask")), Tensor()};
    Tensor out = forward(bb, &set, batch);
    if (c.llama) out = bb.lm_logits(out);
    expect_close(fmt::format("{} {}", c.folder, output_key), out, ref.at(output_key), tol_of(ref.at("tolerance")));
  }
}

// PEFT hands the prefix to the model as past_key_values, so Hugging Face numbers the
// real tokens from n; graft's backbones do the same (AttachContext::declare_prefix).
TEST(PrefixTuning, MatchesPeftOutputs) { expect_matches_peft("output"); }

}  // namespace
}  // namespace graft::testing
