// graft::Session, the library API: selections per call (concurrent calls with
// different selections get exactly what each gets alone), per-row selection equal to
// the whole-batch one row by row, adapters added, saved, loaded and unloaded by name,
// training through the session, generation through a trained LoRA, and clear errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <tuple>

#include "cli_harness.h"
#include "graft/error.h"
#include "graft/session.h"
#include "peft_harness.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;

const std::vector<std::string> kTexts = {"a gripping, beautifully shot film", "the plot never comes together",
                                         "an ordinary evening at the cinema"};
// LoRA with B drawn at random (PEFT's init_lora_weights=false): the adapter changes the
// output from the start, so two adapters are told apart without training.
const char* kLoraA = R"({"r": 4, "init_lora_weights": false, "target_modules": ["query", "value"]})";
const char* kLoraB = R"({"r": 8, "init_lora_weights": false, "target_modules": "all-linear"})";

Session& minilm_session() {
  static Session session = [] {
    Session s(minilm_path());
    s.add_adapter("a", "lora", kLoraA, 1);
    s.add_adapter("b", "lora", kLoraB, 2);
    const data::Dataset sst2 = sst2_rows("train", 0, 8);
    s.add_head("a", sst2);
    s.add_head("b", sst2);
    return s;
  }();
  return session;
}

fs::path tiny_bert() { return fs::path(GRAFT_SOURCE_DIR) / "tests" / "golden" / "backbones" / "tiny_bert"; }

// A few steps of 8 rows, no progress line: a training run sized for the tiny backbone.
TrainOptions tiny_run(std::int64_t steps) {
  TrainOptions options;
  options.max_steps = steps;
  options.batch_size = 8;
  options.progress_line = false;
  return options;
}

double max_diff(const std::vector<std::vector<float>>& x, const std::vector<std::vector<float>>& y) {
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = 0; j < x[i].size(); ++j) m = std::max(m, std::abs(double(x[i][j]) - y[i][j]));
  return m;
}

TEST(Session, SelectionsChangeTheOutputAndNoneIsTheBareBackbone) {
  Session& s = minilm_session();
  const auto bare = s.embed(kTexts);
  const auto a = s.embed(kTexts, Selection::one("a")), b = s.embed(kTexts, Selection::one("b"));
  EXPECT_GT(max_diff(bare, a), 1e-3);
  EXPECT_GT(max_diff(a, b), 1e-3);
  EXPECT_EQ(s.embed(kTexts, Selection::none()), bare);
  // The same bare embedding as a session without adapters.
  EXPECT_EQ(Session(minilm_path()).embed(kTexts), bare);
}

TEST(Session, PerRowSelectionIsEachRowsOwnAdapter) {
  Session& s = minilm_session();
  const auto bare = s.embed(kTexts), a = s.embed(kTexts, Selection::one("a")), b = s.embed(kTexts, Selection::one("b"));
  const auto mixed = s.embed(kTexts, Selection::per_row({"a", "b", ""}));
  EXPECT_LT(max_diff({mixed[0]}, {a[0]}), 1e-5);
  EXPECT_LT(max_diff({mixed[1]}, {b[1]}), 1e-5);
  EXPECT_EQ(mixed[2], bare[2]) << "a row without an adapter is the bare backbone's, to the bit";
  // predict: each row through its own adapter and head.
  std::vector<TextInput> rows;
  for (const auto& t : kTexts) rows.push_back({t, std::nullopt});
  const auto pa = s.predict(rows, Selection::one("a")), pb = s.predict(rows, Selection::one("b"));
  const auto pm = s.predict({rows[0], rows[1]}, Selection::per_row({"a", "b"}));
  EXPECT_EQ(pm[0].label, pa[0].label);
  EXPECT_EQ(pm[1].label, pb[1].label);
}

TEST(Session, ConcurrentCallsWithDifferentSelectionsGetWhatEachGetsAlone) {
  Session& s = minilm_session();
  std::vector<TextInput> rows;
  for (const auto& t : kTexts) rows.push_back({t, std::nullopt});
  // Each thread its own selection, for embed and for predict (through the heads).
  const std::vector<Selection> embedded = {Selection::one("a"), Selection::one("b"), Selection::none(),
                                           Selection::per_row({"b", "", "a"})};
  const std::vector<Selection> predicted = {Selection::one("a"), Selection::one("b"), Selection::stack({"a", "b"}),
                                            Selection::per_row({"b", "a", "b"})};
  std::vector<std::vector<std::vector<float>>> embed_alone;
  std::vector<std::vector<double>> predict_alone;
  for (std::size_t t = 0; t < embedded.size(); ++t) {
    embed_alone.push_back(s.embed(kTexts, embedded[t]));
    std::vector<double> values;
    for (const auto& p : s.predict(rows, predicted[t])) values.push_back(p.value);
    predict_alone.push_back(values);
  }

  std::atomic<int> mismatches{0}, calls{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < embedded.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        if (s.embed(kTexts, embedded[t]) != embed_alone[t]) ++mismatches;
        std::vector<double> values;
        for (const auto& p : s.predict(rows, predicted[t])) values.push_back(p.value);
        if (values != predict_alone[t]) ++mismatches;
        ++calls;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(calls.load(), 24);
  EXPECT_EQ(mismatches.load(), 0) << "a concurrent call saw another call's selection";
}

// A new task never disturbs the old ones: loading and unloading another adapter while a
// thread keeps embedding through "a" changes none of its results.
TEST(Session, LoadingAndUnloadingDuringRequestsDisturbsNoOtherAdapter) {
  Session& s = minilm_session();
  TempFolder dir("session_swap");
  s.save_adapter("b", dir.path / "b");
  const auto alone = s.embed(kTexts, Selection::one("a"));
  std::atomic<bool> done{false};
  std::atomic<int> mismatches{0}, calls{0};
  std::thread requests([&] {
    while (!done || calls < 4) {
      if (s.embed(kTexts, Selection::one("a")) != alone) ++mismatches;
      ++calls;
    }
  });
  for (int i = 0; i < 4; ++i) {
    s.load_adapter("swap", dir.path / "b");
    EXPECT_EQ(s.embed(kTexts, Selection::one("swap")), s.embed(kTexts, Selection::one("b")));
    s.unload_adapter("swap");
  }
  done = true;
  requests.join();
  EXPECT_GE(calls.load(), 4);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(s.adapter_names(), (std::vector<std::string>{"a", "b"}));
}

TEST(Session, AdaptersSaveLoadAndUnloadByName) {
  Session& s = minilm_session();
  TempFolder dir("session_save");
  s.save_adapter("a", dir.path / "a");
  Session other(minilm_path());
  other.load_adapter("copy", dir.path / "a");
  EXPECT_EQ(other.embed(kTexts, Selection::one("copy")), s.embed(kTexts, Selection::one("a")));
  const AdapterInfo info = other.adapter("copy");
  EXPECT_EQ(info.method, "lora");
  ASSERT_TRUE(info.head.has_value());
  EXPECT_EQ(info.head->num_labels, 2);
  EXPECT_EQ(info.trainable_parameters, s.adapter("a").trainable_parameters);
  other.unload_adapter("copy");
  EXPECT_TRUE(other.adapter_names().empty());
  EXPECT_THROW(other.embed(kTexts, Selection::one("copy")), ConfigError);
}

TEST(Session, BadSelectionsAndNamesAreClearErrors) {
  Session& s = minilm_session();
  auto message = [&](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_HAS(message([&] { s.embed(kTexts, Selection::one("nope")); }), "no adapter named 'nope'");
  EXPECT_HAS(message([&] { s.embed(kTexts, Selection::one("nope")); }), "adapters: a, b");
  EXPECT_HAS(message([&] { s.embed(kTexts, Selection::per_row({"a"})); }), "names 1 adapters for 3 rows");
  EXPECT_HAS(message([&] { s.predict({{"x", std::nullopt}}, Selection::none()); }), "no task head");
  EXPECT_HAS(message([&] { s.add_adapter("a", "lora"); }), "already exists");
  EXPECT_HAS(message([&] { s.add_adapter("c", "no_such_method"); }), "no_such_method");
  EXPECT_HAS(message([&] { s.add_adapter("c", "lora", R"({"rr": 4})"); }), "rr");
  EXPECT_HAS(message([&] { s.generate("once", Selection::none()); }), "cannot generate");
  EXPECT_EQ(s.adapter_names(), (std::vector<std::string>{"a", "b"})) << "a failed add leaves nothing behind";
}

// "head" and "full" are methods behind the same interface as a plugin's: described,
// counted, trained, saved and loaded through the same calls.
TEST(Session, BuiltInBaselinesAreMethodsLikeAnyOther) {
  const fs::path tiny = tiny_bert();
  TempFolder dir("session_builtins");
  const data::Dataset train = sst2_rows("train", 0, 32), dev = sst2_rows("dev", 0, 16);
  TrainOptions options = tiny_run(3);

  Session probe(tiny);
  probe.add_adapter("probe", "head");
  EXPECT_EQ(probe.adapter("probe").trainable_parameters, 0);
  EXPECT_FLOAT_EQ(probe.adapter("probe").default_lr, 5e-3f);
  EXPECT_HAS(probe.adapter("probe").description, "task head only");
  EXPECT_THROW(probe.add_adapter("p2", "head", R"({"r": 4})"), ConfigError) << "a baseline has no config keys";
  const auto bare = probe.embed(kTexts);
  options.output = dir.path / "head";
  probe.train("probe", train, dev, options);
  EXPECT_EQ(probe.embed(kTexts), bare) << "a linear probe leaves the backbone alone";

  Session full(tiny);
  full.add_adapter("all", "full");
  EXPECT_EQ(full.adapter("all").trainable_parameters, full.backbone_info().parameter_count);
  EXPECT_FLOAT_EQ(full.adapter("all").default_lr, 1e-4f);
  EXPECT_THROW(full.add_adapter("other", "lora"), ConfigError) << "full fine-tuning owns its backbone";
  options.output = dir.path / "full";
  options.lr = 1e-2f;
  const TrainSummary r = full.train("all", train, dev, options);
  EXPECT_GT(max_diff(full.embed(kTexts), bare), 1e-4) << "full fine-tuning changes the backbone";
  Session reloaded(tiny);
  reloaded.load_adapter("all", r.best_folder);
  EXPECT_EQ(reloaded.adapter("all").method, "full");
  ASSERT_TRUE(reloaded.adapter("all").head.has_value());
}

// Full fine-tuning of bf16 weights: the weights stay bf16 (their products run in bf16),
// AdamW steps f32 master copies, and the run tracks the f32 one; the saved weights load
// into an f32 session.
TEST(Session, FullFineTuningInBf16TrainsThroughF32MasterCopies) {
  const fs::path tiny = tiny_bert();
  TempFolder dir("session_full_bf16");
  const data::Dataset train = sst2_rows("train", 0, 32), dev = sst2_rows("dev", 0, 16);
  TrainOptions options = tiny_run(4);
  options.lr = 1e-2f;
  auto trained = [&](DType dtype, const std::string& name) {
    Session s(tiny, {.dtype = dtype});
    s.add_adapter("all", "full");
    const auto bare = s.embed(kTexts);
    options.output = dir.path / name;
    const TrainSummary r = s.train("all", train, dev, options);
    EXPECT_EQ(s.backbone_info().dtype, dtype);
    return std::make_tuple(bare, s.embed(kTexts), r.best_folder);
  };
  const auto [bare32, after32, folder32] = trained(DType::f32, "f32");
  const auto [bare16, after16, folder16] = trained(DType::bf16, "bf16");
  const double moved = max_diff(after32, bare32), apart = max_diff(after16, after32);
  EXPECT_GT(max_diff(after16, bare16), 0.5 * moved) << "the bf16 weights were trained";
  EXPECT_LT(apart, 0.05 * moved) << "the bf16 run strays from the f32 one: moved " << moved << ", apart " << apart;
  Session reloaded(tiny);
  reloaded.load_adapter("all", folder16);
  EXPECT_LT(max_diff(reloaded.embed(kTexts), after16), 0.05 * moved) << "the bf16-trained weights load into f32";
}

// TrainOptions::should_stop (the Python module's Ctrl-C): asked at each step boundary,
// true writes the resumable checkpoint and ends the run there; the same call resumes.
TEST(Session, ShouldStopEndsTheRunAtAStepWithTheCheckpointWritten) {
  const fs::path tiny = tiny_bert();
  TempFolder dir("session_stop");
  const data::Dataset train = sst2_rows("train", 0, 32), dev = sst2_rows("dev", 0, 8);
  Session s(tiny);
  s.add_adapter("t", "lora", R"({"r": 2})");
  TrainOptions options = tiny_run(4);
  options.eval_every = 100;
  options.output = dir.path / "run";
  std::int64_t last = 0;
  options.on_progress = [&](const TrainProgress& p) { last = p.step; };
  options.should_stop = [&] { return last == 2; };
  const TrainSummary stopped = s.train("t", train, dev, options);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.steps, 2);
  EXPECT_HAS(read_file(dir.path / "run" / "checkpoint" / "trainer_state.json"), "\"step\": 2");
  options.should_stop = nullptr;
  const TrainSummary resumed = s.train("t", train, dev, options);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_FALSE(resumed.stopped);
  EXPECT_EQ(resumed.steps, 4);
}

// Issue #11: a LoRA trained on stories260K through the Session generates with it, in the
// library and through `graft generate --adapter`.
TEST(Session, TrainsALoraOnStoriesAndGeneratesWithIt) {
  TempFolder dir("session_stories");
  Session s(stories260k_path());
  s.add_adapter("sst2", "lora", R"({"r": 8, "target_modules": "all-linear"})", 3);
  data::Dataset train = sst2_rows("train", 0, 128), dev = sst2_rows("dev", 0, 32);
  train.kind = dev.kind = TaskKind::causal_lm;
  train.metric = dev.metric = "perplexity";
  const std::string before = s.generate("Once upon a time", Selection::one("sst2"), {.max_new_tokens = 24});
  EXPECT_EQ(before, s.generate("Once upon a time", Selection::none(), {.max_new_tokens = 24})) << "LoRA starts as the identity";
  TrainOptions options;
  options.max_steps = 40;
  options.batch_size = 16;
  options.max_length = 48;
  options.lr = 3e-3f;
  options.output = dir.path / "run";
  options.progress_line = false;
  int steps_seen = 0, evaluations = 0;
  options.on_progress = [&](const TrainProgress& p) {
    ++steps_seen;
    if (p.evaluation) ++evaluations;
  };
  s.add_head("sst2", train);
  const double untrained = s.evaluate(dev, Selection::one("sst2")).values.at("perplexity");
  const TrainSummary r = s.train("sst2", train, dev, options);
  EXPECT_EQ(r.steps, 40);
  EXPECT_GE(steps_seen, 40);
  EXPECT_GE(evaluations, 1);
  const double trained = s.evaluate(dev, Selection::one("sst2")).values.at("perplexity");
  std::printf("stories260K + LoRA on SST-2 text: held-out perplexity %.2f -> %.2f\n", untrained, trained);
  EXPECT_LT(trained, untrained * 0.9);

  const std::string after = s.generate("Once upon a time", Selection::one("sst2"), {.max_new_tokens = 24});
  std::printf("bare:    Once upon a time%s\ntrained: Once upon a time%s\n", before.c_str(), after.c_str());
  EXPECT_NE(after, before);
  // The saved best adapter, through the command line.
  Session loaded(stories260k_path());
  loaded.load_adapter("best", r.best_folder);
  const std::string from_folder = loaded.generate("Once upon a time", Selection::one("best"), {.max_new_tokens = 24});
  const ShellRun cli = run_graft(fmt::format("generate --backbone {} --adapter {} --prompt 'Once upon a time' --max-tokens 24",
                                             stories260k_path().string(), r.best_folder.string()),
                                 dir.path / "generate.log");
  ASSERT_EQ(cli.status, 0) << cli.output;
  EXPECT_HAS(cli.output, "Once upon a time" + from_folder);
}

}  // namespace
}  // namespace graft::testing
