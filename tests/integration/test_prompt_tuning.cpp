// Prompt tuning (plugins/prompt_tuning) on all-MiniLM-L6-v2, stories260K and the tiny
// BERT/LLaMA fixtures: parameter counts, the bare backbone when not selected, gradients,
// training, saving, errors, and adapters saved by Hugging Face PEFT.
//
// "At initialisation the output equals the frozen backbone's" does not apply here: the
// method prepends n virtual tokens that every real token attends to and that shift the
// real tokens' positions by n (as PEFT does), so no value of the prompt reproduces the
// bare backbone. What must hold instead is tested: not selected, the adapter changes
// nothing; on rows it does not own, nothing of its parameters reaches the output.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

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

// Row `b` of a [B, T', ...] tensor, its last `tokens` positions, as floats.
std::vector<float> row(const Tensor& t, std::int64_t b, std::int64_t tokens) {
  const auto all = t.to_floats();
  const std::int64_t per_row = static_cast<std::int64_t>(all.size()) / t.dim(0), width = per_row / t.dim(1);
  const auto end = all.begin() + (b + 1) * per_row;
  return {end - tokens * width, end};
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("graft_prompt_{}_{}", name, ::getpid());
  fs::remove_all(dir);
  return dir;
}

// (i) n · hidden, as PEFT's Embedding(n, token_dim).
TEST(PromptTuning, TrainableParametersMatchPeftClosedForm) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    auto set = attach(bb, "prompt_tuning", "");
    EXPECT_EQ(trainable(*set), 20 * bb.info().hidden_size) << bb.info().source;
    std::printf("%s: %s\n", bb.info().architecture.c_str(), set->method("task").describe().c_str());
  }
}

// (ii) Not selected: the bare backbone, bit for bit. Per-row selection: an unselected
// row gets n columns of masked padding in front (so the rows line up), which the
// prompt's values never reach (checked by changing them) and which positions do not
// count: its real tokens read as on the bare backbone, with absolute positions (MiniLM)
// as with RoPE (stories260K).
TEST(PromptTuning, LeavesUnselectedRowsFreeOfTheAdapter) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const Batch batch = toy_batch(bb.info().vocab_size);
    const std::int64_t T = batch.input_ids.dim(1), n = 4;
    const Tensor bare = forward(bb, nullptr, batch);
    auto set = attach(bb, "prompt_tuning", R"({"num_virtual_tokens": 4})");
    const Selection none = Selection::none(), per_row = Selection::per_row({"task", "", ""});
    EXPECT_EQ(forward(bb, set.get(), batch, &none).to_floats(), bare.to_floats()) << bb.info().source;

    const Tensor mixed = forward(bb, set.get(), batch, &per_row);
    ASSERT_EQ(mixed.dim(1), n + T);
    const Tensor prompt = parameters_of(*set)[0].tensor;
    const std::vector<float> saved = prompt.to_floats();
    const Tensor other = testing::random_tensor(prompt.shape(), 17, -2.f, 2.f);
    std::memcpy(prompt.raw(), other.raw(), prompt.nbytes());
    const Tensor changed = forward(bb, set.get(), batch, &per_row);
    std::memcpy(prompt.raw(), saved.data(), prompt.nbytes());
    EXPECT_EQ(row(changed, 1, n + T), row(mixed, 1, n + T)) << "the prompt reached an unselected row";
    EXPECT_EQ(row(changed, 2, n + T), row(mixed, 2, n + T)) << "the prompt reached an unselected padded row";
    EXPECT_NE(row(changed, 0, T), row(mixed, 0, T)) << "the selected row must depend on the prompt";

    for (std::int64_t b : {1, 2}) {
      const double diff = max_abs_diff(row(mixed, b, T), row(bare, b, T));
      std::printf("%s: unselected row %lld vs bare backbone: max |diff| %.3g\n", bb.info().architecture.c_str(),
                  static_cast<long long>(b), diff);
      EXPECT_LT(diff, 1e-4) << "the padding in front of an unselected row shifted it";
    }
    EXPECT_LT(max_abs_diff(row(forward(bb, set.get(), batch), 0, n + T), row(mixed, 0, n + T)), 1e-4)
        << "per-row and whole-batch selection differ";
  }
}

// (iii) Gradients of the prompt by finite differences, on the tiny fixtures.
TEST(PromptTuning, GradientsMatchFiniteDifferences) {
  for (auto* model : {&tiny_bert(), &tiny_llama()}) {
    const Backbone& bb = *model->model;
    const Batch batch = toy_batch(bb.info().vocab_size);
    auto set = attach(bb, "prompt_tuning", R"({"num_virtual_tokens": 2})", 3);
    std::vector<Tensor> params{parameters_of(*set)[0].tensor};
    expect_gradients_match([&](const std::vector<Tensor>&) { return forward_with(bb, set.get(), batch); }, params, {},
                           bb.info().architecture);
  }
}

// (iv) SST-2 on MiniLM: prompt + classification head (mean pooling over the real
// tokens) beat the untrained pair on held-out rows; the backbone does not change.
TEST(PromptTuning, TrainsSst2OnMiniLm) {
  const LearningRun run = learn_sst2({"prompt_tuning", R"({"num_virtual_tokens": 10})", 40, 1e-2f, 1});
  EXPECT_GT(run.after.accuracy, run.before.accuracy);
  EXPECT_LT(run.last_loss, run.first_loss);
  EXPECT_TRUE(run.backbone_unchanged) << "the frozen backbone changed";
}

// (iv) Causal LM on stories260K (movie reviews: a new domain): the prompt lowers
// held-out loss, below the bare model's. The loss counts the real tokens only (the head drops virtual ones).
TEST(PromptTuning, LowersHeldOutLossOfStories260K) {
  const LearningRun run = learn_stories({"prompt_tuning", R"({"num_virtual_tokens": 10})", 100, 3e-2f, 2});
  EXPECT_LT(run.after.loss, run.before.loss);
  EXPECT_LT(run.after.loss, run.bare.loss) << "the trained prompt should adapt the model to the new domain";
  EXPECT_TRUE(run.backbone_unchanged) << "the frozen backbone changed";
}

// (v) Save and load give the same outputs, bit for bit, in PEFT's format.
TEST(PromptTuning, SaveLoadReproducesOutputs) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const Batch batch = toy_batch(bb.info().vocab_size);
    auto set = attach(bb, "prompt_tuning", R"({"num_virtual_tokens": 5})", 5);
    const Tensor want = forward(bb, set.get(), batch);
    const fs::path dir = scratch("save");
    save_adapter(dir, *set, "task", bb, nullptr);
    AdapterSet loaded(bb);
    load_adapter(dir, loaded, "task", plugins(), bb, nullptr);
    EXPECT_EQ(forward(bb, &loaded, batch).to_floats(), want.to_floats()) << bb.info().source;
    const auto config = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
    EXPECT_EQ(config.at("peft_type"), "PROMPT_TUNING");
    EXPECT_EQ(config.at("token_dim"), bb.info().hidden_size);
    EXPECT_EQ(config.at("prompt_tuning_init"), "RANDOM");
    fs::remove_all(dir);
  }
}

// (vi) Errors name what is wrong.
TEST(PromptTuning, RejectsBadConfigsAndMismatchedFiles) {
  const Backbone& bert = *tiny_bert().model;
  auto expect_config_error = [&](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one naming " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_config_error([&] { attach(bert, "prompt_tuning", R"({"prompt_init": "RANDOM"})"); }, "prompt_init");
  expect_config_error([&] { attach(bert, "prompt_tuning", R"({"num_virtual_tokens": 0})"); }, "num_virtual_tokens");
  expect_config_error([&] { attach(bert, "prompt_tuning", R"({"prompt_tuning_init": "VOCAB"})"); }, "prompt_tuning_init");
  expect_config_error([&] { attach(bert, "prompt_tuning", R"({"prompt_tuning_init": "TEXT"})"); }, "prompt_tuning_init_text");
  // Lowercase spellings are accepted (and saved as PEFT spells them).
  EXPECT_NO_THROW(attach(bert, "prompt_tuning", R"({"prompt_tuning_init": "random"})"));

  const fs::path dir = scratch("layers");
  fs::copy(kPeftDir / "bert_prompt", dir);
  auto config = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
  config["num_layers"] = 3;
  std::ofstream(dir / "adapter_config.json") << config.dump();
  AdapterSet set(bert);
  expect_config_error([&] { load_adapter(dir, set, "task", plugins(), bert, nullptr); }, "num_layers");
  EXPECT_FALSE(set.contains("task"));
  fs::remove_all(dir);

  const fs::path saved = scratch("minilm");
  auto minilm_set = attach(*minilm().model, "prompt_tuning", R"({"num_virtual_tokens": 2})");
  save_adapter(saved, *minilm_set, "task", *minilm().model, nullptr);
  AdapterSet stories(*stories260k().model);
  expect_config_error([&] { load_adapter(saved, stories, "task", plugins(), *stories260k().model, nullptr); }, "backbone");
  EXPECT_FALSE(stories.contains("task"));
  // Without graft's manifest (as PEFT saves it) the hidden size gives it away.
  fs::remove(saved / "graft_adapter.json");
  expect_config_error([&] { load_adapter(saved, stories, "task", plugins(), *stories260k().model, nullptr); }, "token_dim");
  fs::remove_all(saved);
}

// Adapters saved by Hugging Face PEFT 0.12 (tests/golden/make_peft_prompt_fixtures.py).
// PEFT's models return the virtual tokens' rows too ([B, n + T, ...]); so does graft.
// bert_prompt_text is a TEXT-initialised prompt: its config asks for TEXT init, which
// loading skips (inference_mode true, as PEFT does).
TEST(PromptTuning, MatchesPeftOutputs) {
  const std::pair<const char*, bool> cases[] = {{"bert_prompt", false}, {"bert_prompt_text", false}, {"llama_prompt", true}};
  for (const auto& [folder, llama] : cases) {
    const Backbone& bb = *(llama ? tiny_llama() : tiny_bert()).model;
    const json ref = load_fixture((kPeftDir / folder / "reference.json").string());
    AdapterSet set(bb);
    load_adapter(kPeftDir / folder, set, "task", plugins(), bb, nullptr);
    const Batch batch{tensor_of(ref.at("input_ids")), tensor_of(ref.at("attention_mask")), Tensor()};
    Tensor out = forward(bb, &set, batch);
    if (llama) out = bb.lm_logits(out);
    expect_close(folder, out, ref.at("output"), tol_of(ref.at("tolerance")));
  }
}

// TEXT init: the same ids as PEFT's tokenizer ([CLS] the big cat sat [SEP], repeated and
// cut to 8), the same rows of the word-embedding table.
TEST(PromptTuning, TextInitMatchesPeft) {
  auto& model = tiny_bert();
  const Backbone& bb = *model.model;
  AdapterSet set(bb);
  set.set_tokenizer([&](const std::string& text) { return model.tokenizer->encode(text).ids; });
  attach_method(set, plugins(), "task", "prompt_tuning",
                R"({"num_virtual_tokens": 8, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "the big cat sat"})", "test", 0);
  AdapterSet peft(bb);
  load_adapter(kPeftDir / "bert_prompt_text", peft, "task", plugins(), bb, nullptr);
  EXPECT_EQ(set.method("task").parameters()[0].tensor.to_floats(), peft.method("task").parameters()[0].tensor.to_floats());
  AdapterSet no_tokenizer(bb);
  EXPECT_THROW(attach_method(no_tokenizer, plugins(), "task", "prompt_tuning",
                             R"({"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "the"})", "test", 0),
               ConfigError);
}

}  // namespace
}  // namespace graft::testing
