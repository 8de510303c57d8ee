// Composition blocks (docs/composition.md): stack, parallel and average equal the same
// composition written out by hand from each adapter's own one-adapter hooks, for every
// shipped method each block accepts, nested as AdapterHub nests them; a block refuses
// the adapters it does not accept, naming both; AdapterFusion computes its attention
// as a plain loop does, trains only the fusion and the head, and saves and loads.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "cli_harness.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "graft/session.h"
#include "peft_harness.h"
#include "plugin/fusion.h"
#include "train/adapter_io.h"
#include "unit/error_of.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;

fs::path glue_path() { return fs::path(GRAFT_SHARED_DIR) / "data/glue"; }

struct Spec {
  const char* name;
  const char* method;
  const char* config;
};
// Two adapters of every shipped method.
const std::vector<Spec> kSpecs = {
    {"lora1", "lora", R"({"r": 4, "target_modules": "all-linear"})"},
    {"lora2", "lora", R"({"r": 2})"},
    {"dora1", "lora", R"({"r": 4, "use_dora": true})"},
    {"dora2", "lora", R"({"r": 2, "use_dora": true, "target_modules": "all-linear"})"},
    {"houlsby1", "houlsby", R"({"reduction_factor": 16})"},
    {"houlsby2", "houlsby", R"({"reduction_factor": 8})"},
    {"parallel1", "houlsby", R"({"reduction_factor": 16, "is_parallel": true})"},
    {"pfeiffer1", "houlsby", R"({"mh_adapter": false, "output_adapter": true, "non_linearity": "relu"})"},
    {"prefix1", "prefix_tuning", R"({"num_virtual_tokens": 4})"},
    {"prefix2", "prefix_tuning", R"({"num_virtual_tokens": 7})"},
    {"prompt1", "prompt_tuning", R"({"num_virtual_tokens": 3})"},
    {"prompt2", "prompt_tuning", R"({"num_virtual_tokens": 5})"},
};

std::unique_ptr<AdapterSet> every_method(const Backbone& bb) {
  auto set = std::make_unique<AdapterSet>(bb);
  std::uint64_t seed = 1;
  for (const Spec& s : kSpecs) attach_method(*set, plugins(), s.name, s.method, s.config, "test config", seed++);
  randomize(*set, 0.2f, 11);  // no identity inits: every adapter changes the output
  return set;
}

// A composition written out by hand: at every site, each part (one adapter's own hooks,
// or a nested ByHand) is called as the block says, stacked or averaged.
class ByHand : public ForwardHooks {
 public:
  enum class Mode { stack, average };
  ByHand(Mode mode, std::vector<ForwardHooks*> parts, std::vector<float> weights, std::int64_t batch)
      : mode_(mode), parts_(std::move(parts)), weights_(std::move(weights)) {
    for (ForwardHooks* p : parts_)
      if (const auto offsets = p->prefix_offsets(batch); !offsets.empty()) prefix_all_ += offsets.front();
  }
  Tensor linear(const Site& site, const LinearCall& call, const Rows& rows) override {
    if (mode_ == Mode::stack) {
      LinearCall c = call;
      for (ForwardHooks* p : parts_) c.y = p->linear(site, c, rows);
      return c.y;
    }
    Tensor sum;
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      const Tensor part = ops::scale(parts_[i]->linear(site, call, rows), weights_[i]);
      sum = sum.defined() ? ops::add(sum, part) : part;
    }
    return sum;
  }
  Tensor sublayer_output(const Site& site, const SublayerCall& call, const Rows& rows) override {
    if (mode_ == Mode::stack) {
      SublayerCall c = call;
      for (ForwardHooks* p : parts_) c.h = p->sublayer_output(site, c, rows);
      return c.h;
    }
    Tensor sum;
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      const Tensor part = ops::scale(parts_[i]->sublayer_output(site, call, rows), weights_[i]);
      sum = sum.defined() ? ops::add(sum, part) : part;
    }
    return sum;
  }
  void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask, const Rows& rows) override {
    for (ForwardHooks* p : parts_) p->attention_kv(site, k, v, mask, rows);
  }
  void input_embeddings(const Site& site, Tensor& x, Tensor& key_mask, const Rows& rows) override {
    for (ForwardHooks* p : parts_) p->input_embeddings(site, x, key_mask, rows);
  }

 private:
  Mode mode_;
  std::vector<ForwardHooks*> parts_;
  std::vector<float> weights_;
};

Batch three_rows(std::int64_t vocab) {
  const std::vector<std::vector<std::int64_t>> rows = {{5, 17, 29, 41, 53, 65, 77}, {9, 21, 33}, {13, 25, 37, 49, 61}};
  std::vector<std::int64_t> ids, mask;
  for (const auto& r : rows)
    for (std::size_t t = 0; t < 7; ++t) {
      ids.push_back(t < r.size() ? r[t] % vocab : 0);
      mask.push_back(t < r.size() ? 1 : 0);
    }
  return {Tensor::from_ints(ids, {3, 7}), Tensor::from_ints(mask, {3, 7}), Tensor()};
}

Tensor run(const Backbone& bb, const Batch& batch, ForwardHooks& hooks) { return bb.forward(batch, &hooks); }
// `rows` inputs per copy of the batch (a parallel block has one copy per branch).
Tensor run(const Backbone& bb, const AdapterSet& set, const Batch& batch, const Selection& s, std::int64_t rows) {
  ActiveAdapters hooks = set.bind(s, rows);
  return bb.forward(batch, &hooks);
}

// Rows [first, first + n) of hidden, the last T columns (the real tokens: virtual
// columns and alignment padding come first).
Tensor real_rows(const Tensor& hidden, std::int64_t first, std::int64_t n, std::int64_t T) {
  return ops::slice(ops::slice(hidden, 0, first, n), 1, hidden.dim(1) - T, T);
}

TEST(Composition, StackAndAverageEqualTheirCompositionWrittenOutByHand) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const auto set = every_method(bb);
    const Batch batch = three_rows(bb.info().vocab_size);
    const std::int64_t B = 3;
    NoGradGuard no_grad;
    auto view = [&](const char* name) { return set->bind(Selection::one(name)); };
    const Tensor bare = bb.forward(batch);
    double worst = 0;
    auto check = [&](const std::string& text, ForwardHooks& hand) {
      const Tensor got = run(bb, *set, batch, Selection::parse(text), B);
      const Tensor expected = run(bb, batch, hand);
      ASSERT_EQ(got.shape(), expected.shape()) << text;
      // f32 rounding (by hand, an average where no branch acts is 0.7 y + 0.3 y, not y).
      const double diff = max_abs_diff(got, expected) / std::max(1.0, max_abs_diff(expected, Tensor::zeros(expected.shape())));
      worst = std::max(worst, diff);
      EXPECT_LT(diff, 1e-5) << bb.info().architecture << ": " << text << " differs from the composition by hand";
      if (got.shape() == bare.shape()) EXPECT_GT(max_abs_diff(got, bare), 1e-2) << text << " changes nothing";
    };
    // Stack: every method, two of a kind and mixed.
    for (const auto& [a, b] : std::vector<std::pair<const char*, const char*>>{{"lora1", "lora2"},
                                                                                 {"dora1", "dora2"},
                                                                                 {"houlsby1", "houlsby2"},
                                                                                 {"parallel1", "pfeiffer1"},
                                                                                 {"prefix1", "prefix2"},
                                                                                 {"prompt1", "prompt2"},
                                                                                 {"prompt1", "lora1"},
                                                                                 {"houlsby1", "prefix2"}}) {
      ActiveAdapters va = view(a), vb = view(b);
      ByHand hand(ByHand::Mode::stack, {&va, &vb}, {}, B);
      check(fmt::format("stack({},{})", a, b), hand);
    }
    // Average: the methods that change outputs (not prefix, not prompt).
    for (const auto& [a, b] : std::vector<std::pair<const char*, const char*>>{
             {"lora1", "lora2"}, {"dora1", "dora2"}, {"houlsby1", "houlsby2"}, {"parallel1", "lora1"}, {"pfeiffer1", "dora1"}}) {
      ActiveAdapters va = view(a), vb = view(b);
      ByHand hand(ByHand::Mode::average, {&va, &vb}, {0.7f, 0.3f}, B);
      check(fmt::format("average({}:0.7,{}:0.3)", a, b), hand);
    }
    // Nested: a stack holding an average; an average holding a stack; weights normalised.
    {
      ActiveAdapters p = view("prefix1"), h1 = view("houlsby1"), h2 = view("houlsby2"), l = view("lora1");
      ByHand avg(ByHand::Mode::average, {&h1, &h2}, {0.25f, 0.75f}, B);
      ByHand hand(ByHand::Mode::stack, {&p, &avg, &l}, {}, B);
      check("stack(prefix1, average(houlsby1:1, houlsby2:3), lora1)", hand);
    }
    {
      ActiveAdapters l1 = view("lora1"), h1 = view("houlsby1"), d2 = view("dora2");
      ByHand st(ByHand::Mode::stack, {&l1, &h1}, {}, B);
      ByHand hand(ByHand::Mode::average, {&st, &d2}, {0.5f, 0.5f}, B);
      check("average(stack(lora1,houlsby1),dora2)", hand);
    }
    std::printf("%s: max |block - by hand| / max |output| %.3g\n", bb.info().architecture.c_str(), worst);
  }
}

TEST(Composition, ParallelGivesEachBranchAloneOnItsCopyOfTheBatch) {
  for (auto* model : {&minilm(), &stories260k()}) {
    const Backbone& bb = *model->model;
    const auto set = every_method(bb);
    const Batch one = three_rows(bb.info().vocab_size);
    const std::int64_t B = 3, T = one.input_ids.dim(1);
    NoGradGuard no_grad;
    for (const std::string text : {"parallel(lora1, houlsby1)", "parallel(prefix1, prompt2, stack(lora2, prefix2))",
                                   "stack(dora1, parallel(houlsby2, average(lora1, lora2)), pfeiffer1)"}) {
      const Selection s = Selection::parse(text);
      const auto branches = s.branches();
      std::vector<Tensor> ids, mask;
      for (std::size_t i = 0; i < branches.size(); ++i) {
        ids.push_back(one.input_ids);
        mask.push_back(one.attention_mask);
      }
      // The batch copied once per branch (integer tensors: through floats, small ids).
      auto copies = [&](const Tensor& t) {
        std::vector<std::int64_t> all;
        for (std::size_t i = 0; i < branches.size(); ++i)
          for (float v : t.to_floats()) all.push_back(static_cast<std::int64_t>(v));
        return Tensor::from_ints(all, {B * static_cast<std::int64_t>(branches.size()), T});
      };
      const Batch copied{copies(one.input_ids), copies(one.attention_mask), Tensor()};
      const Tensor got = run(bb, *set, copied, s, B);
      for (std::size_t i = 0; i < branches.size(); ++i) {
        const Tensor alone = run(bb, *set, one, branches[i], B);
        EXPECT_LT(max_abs_diff(real_rows(got, static_cast<std::int64_t>(i) * B, B, T), real_rows(alone, 0, B, T)), 1e-5)
            << bb.info().architecture << ": " << text << " branch " << branches[i].to_string();
      }
    }
  }
}

TEST(Composition, SelectionTextRoundTripsAndNestsAsAdapterHubAllows) {
  EXPECT_EQ(Selection::parse("Stack(a, b)").to_string(), "stack(a,b)");
  EXPECT_EQ(Selection::parse("a,b").to_string(), "stack(a,b)");
  EXPECT_EQ(Selection::parse("average(a:1,b:3)").to_string(), "average(a:0.25,b:0.75)");
  EXPECT_EQ(Selection::parse("stack(a,parallel(b,stack(c,d)))").branches().at(1).to_string(), "stack(a,c,d)");
  EXPECT_EQ(Selection::parse("stack(x, fuse(a,b))").names(), (std::vector<std::string>{"x", "a", "b"}));
  auto refused = [](const std::string& text, const std::string& words) {
    try {
      Selection::parse(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const ConfigError& e) {
      const std::string all = e.message() + " " + e.hint();
      for (std::size_t at = 0, next; at < words.size(); at = next + 1) {
        next = std::min(words.find('|', at), words.size());
        EXPECT_NE(all.find(words.substr(at, next - at)), std::string::npos) << text << ": " << all;
      }
    }
  };
  refused("stack(stack(a,b),c)", "stack block cannot hold a stack block");
  refused("parallel(parallel(a,b),c)", "parallel block cannot hold a parallel");
  refused("average(a,fuse(b,c))", "average block cannot hold a fuse");
  refused("fuse(a,stack(b,c))", "fuse takes adapter names");
  refused("stack(a,b", "missing ')'|column 10");
  refused("blend(a,b)", "unknown block 'blend'|stack, parallel, average, fuse");
  refused("stack(a:0.5,b)", "weight outside an average");
  refused("average(a:0.5,b)", "weights on some branches only");
  refused("average(a:1,b:-1)", "sum to 0");
  refused("fuse(a,a)", "twice");
  refused("parallel(a)", "at least two");
  // Parsed, but one copy of the batch per branch needs one parallel block.
  EXPECT_THROW(Selection::parse("stack(parallel(a,b),parallel(c,d))").branches(), ConfigError);
}

TEST(Composition, BlocksRefuseAdapterKindsTheyDoNotAcceptNamingBoth) {
  const Backbone& bb = *minilm().model;
  const auto set = every_method(bb);
  auto refused = [&](const std::string& text, const std::vector<std::string>& words) {
    try {
      set->bind(Selection::parse(text), 2);
      ADD_FAILURE() << text << " was accepted";
    } catch (const ConfigError& e) {
      for (const auto& w : words) EXPECT_NE(e.message().find(w), std::string::npos) << text << ": " << e.message();
    }
  };
  refused("average(lora1, prefix1)", {"average(lora1:0.5,prefix1:0.5)", "prefix1", "prefix_tuning"});
  refused("average(houlsby1, prompt2)", {"average", "prompt2", "prompt_tuning", "virtual tokens"});
  refused("average(stack(lora1, prefix2), lora2)", {"average", "prefix2"});
  refused("fuse(houlsby1, lora1)", {"fuse(houlsby1,lora1)", "lora1", "'lora'"});
  refused("fuse(houlsby1, houlsby2)", {"no fusion over houlsby1, houlsby2"});
  refused("stack(lora1, nothere)", {"nothere"});
}

// The fusion's attention as a plain loop over rows, adapters and features.
TEST(Composition, FusionAttentionEqualsAPlainLoop) {
  const std::int64_t B = 2, T = 3, H = 5, n = 3;
  auto random = [](Shape shape, std::uint64_t seed) { return nn::uniform_parameter(std::move(shape), 0.5f, seed); };
  const Tensor wq = random({H, H}, 1), bq = random({H}, 2), wk = random({H, H}, 3), bk = random({H}, 4), wv = random({H, H}, 5);
  const Tensor h = random({B, T, H}, 6);
  std::vector<Tensor> deltas;
  for (std::int64_t i = 0; i < n; ++i) deltas.push_back(random({B, T, H}, 10 + static_cast<std::uint64_t>(i)));
  const plugin::FusionHook hook(wq, bq, wk, bk, wv);
  const std::vector<float> got = hook.fuse(h, deltas).to_floats();
  const auto Wq = wq.to_floats(), Bq = bq.to_floats(), Wk = wk.to_floats(), Bk = bk.to_floats(), Wv = wv.to_floats(), X = h.to_floats();
  auto affine = [&](const std::vector<float>& W, const std::vector<float>* b, const float* x, std::int64_t o) {
    double s = b ? (*b)[o] : 0;
    for (std::int64_t j = 0; j < H; ++j) s += double(W[o * H + j]) * x[j];
    return s;
  };
  double worst = 0;
  for (std::int64_t r = 0; r < B * T; ++r) {
    std::vector<double> score(n), q(H);
    for (std::int64_t o = 0; o < H; ++o) q[o] = affine(Wq, &Bq, &X[r * H], o);
    std::vector<std::vector<float>> D;
    for (const Tensor& d : deltas) D.push_back(d.to_floats());
    double top = -1e300, total = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t o = 0; o < H; ++o) score[i] += q[o] * affine(Wk, &Bk, &D[i][r * H], o);
      top = std::max(top, score[i]);
    }
    for (auto& s : score) total += (s = std::exp(s - top));
    for (std::int64_t o = 0; o < H; ++o) {
      double out = X[r * H + o];
      for (std::int64_t i = 0; i < n; ++i) out += score[i] / total * affine(Wv, nullptr, &D[i][r * H], o);
      worst = std::max(worst, std::fabs(out - got[r * H + o]));
    }
  }
  EXPECT_LT(worst, 1e-5);
}

struct FusionSession {
  Session session{minilm_path()};
  data::Dataset train_rows = sst2_rows("train", 0, 48), dev_rows = sst2_rows("dev", 0, 32);
  FusionSession() {
    session.add_adapter("a", "houlsby", R"({"reduction_factor": 16})", 1);
    session.add_adapter("b", "pfeiffer", "", 2);
    session.add_adapter("f", "fusion", R"({"adapters": ["a", "b"]})", 3);
  }
};

std::vector<std::vector<float>> values_of(const std::vector<nn::NamedParameter>& params) {
  std::vector<std::vector<float>> out;
  for (const auto& p : params) out.push_back(p.tensor.to_floats());
  return out;
}

TEST(Composition, FuseTrainsOnlyTheFusionAndTheHead) {
  FusionSession fs;
  Session& s = fs.session;
  EXPECT_NE(s.adapter("f").description.find("AdapterFusion over a, b (12 sites)"), std::string::npos) << s.adapter("f").description;
  const Selection fuse = Selection::parse("fuse(a,b)");
  const auto texts = std::vector<std::string>{"a moving film", "dull and long"};
  // Untrained, the value projection is the identity and the attention near uniform: the
  // fusion mixes the adapters (it is not the bare backbone, nor either adapter alone).
  const Tensor before = s.forward(texts, fuse);
  EXPECT_GT(max_abs_diff(before, s.forward(texts, Selection::none())), 1e-6);

  const auto backbone_before = weight_bytes(*minilm().model);
  auto adapter_values = [&](const char* name) {
    std::vector<std::vector<float>> out;
    for (const auto& row : s.embed(texts, Selection::one(name))) out.push_back(row);
    return out;
  };
  const auto a_before = adapter_values("a"), b_before = adapter_values("b");
  TempFolder dir("fusion-train");
  TrainOptions o;
  o.max_steps = 3;
  o.batch_size = 16;
  o.lr = 1e-3;
  o.output = dir.path / "run";
  o.progress_line = false;
  o.compose = fuse;
  const TrainSummary r = s.train("f", fs.train_rows, fs.dev_rows, o);
  EXPECT_EQ(r.steps, 3);
  // Trainable: the fusion's 12 sites × (3 H² + 2 H) and the head, not a or b.
  const std::int64_t H = 384;
  EXPECT_EQ(r.trainable_parameters, 12 * (3 * H * H + 2 * H) + s.adapter("f").head_parameters);
  EXPECT_EQ(adapter_values("a"), a_before) << "the fused adapter a changed";
  EXPECT_EQ(adapter_values("b"), b_before) << "the fused adapter b changed";
  EXPECT_EQ(weight_bytes(*minilm().model), backbone_before) << "the backbone changed";
  EXPECT_GT(max_abs_diff(s.forward(texts, fuse), before), 1e-6) << "the fusion did not learn";
  ASSERT_TRUE(s.adapter("f").head.has_value());
  EXPECT_EQ(s.predict({{"a moving film"}}, fuse).size(), 1u);

  // A task added after them, trained on the same backbone, changes none of their outputs.
  const Tensor fused = s.forward(texts, fuse);
  const auto fused_predictions = s.predict({{"a moving film"}, {"dull and long"}}, fuse);
  s.add_adapter("c", "lora", R"({"r": 4})", 4);
  TrainOptions later = o;
  later.compose = Selection();
  later.output = dir.path / "later";
  s.train("c", fs.train_rows, fs.dev_rows, later);
  EXPECT_EQ(adapter_values("a"), a_before);
  EXPECT_EQ(adapter_values("b"), b_before);
  EXPECT_EQ(max_abs_diff(s.forward(texts, fuse), fused), 0.0) << "training a later task changed the fusion's outputs";
  const auto again = s.predict({{"a moving film"}, {"dull and long"}}, fuse);
  for (std::size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].probabilities, fused_predictions[i].probabilities);

  // Saved and loaded into another session over the same adapters: the same outputs.
  s.save_adapter("a", dir.path / "a");
  s.save_adapter("b", dir.path / "b");
  Session other(minilm_path());
  other.load_adapter("a", dir.path / "a");
  other.load_adapter("b", dir.path / "b");
  other.load_adapter("fusion", r.best_folder);
  s.load_adapter("best", r.best_folder);
  const Selection fuse_best = Selection::fuse({"a", "b"});
  EXPECT_EQ(max_abs_diff(other.forward(texts, fuse_best), s.forward(texts, fuse_best)), 0.0);
}

TEST(Composition, FusionOverAdaptersItCannotFuseIsRefused) {
  Session s(minilm_path());
  s.add_adapter("a", "houlsby", "", 1);
  s.add_adapter("l", "lora", "", 2);
  try {
    s.add_adapter("f", "fusion", R"({"adapters": ["a", "l"]})");
    ADD_FAILURE() << "a fusion over a LoRA adapter was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message().find("'l' (method 'lora')"), std::string::npos) << e.message();
  }
  EXPECT_THROW(s.add_adapter("f", "fusion", R"({"adapters": ["a", "missing"]})"), ConfigError);
  EXPECT_EQ(s.adapter_names(), (std::vector<std::string>{"a", "l"})) << "a refused fusion stayed attached";
}

// Calls that run one model refuse a parallel block; train refuses a composition that does
// not run the trained adapter.
TEST(Composition, OneModelCallsRefuseParallelAndTrainNeedsItsAdapter) {
  Session s(minilm_path());
  s.add_adapter("a", "lora", "", 1);
  s.add_adapter("b", "houlsby", "", 2);
  const auto train_rows = sst2_rows("train", 0, 16), dev_rows = sst2_rows("dev", 0, 8);
  TempFolder dir("compose-refused");
  TrainOptions o;
  o.max_steps = 1;
  o.output = dir.path / "run";
  o.progress_line = false;
  o.compose = Selection::parse("stack(b)");
  EXPECT_NE(error_of<ConfigError>([&] { s.train("a", train_rows, dev_rows, o); }).find("does not run adapter 'a'"),
            std::string::npos);
  o.compose = Selection::parse("parallel(a,b)");
  EXPECT_NE(error_of<ConfigError>([&] { s.train("a", train_rows, dev_rows, o); }).find("train runs one model"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(o.output)) << "a refused run left a folder";
  EXPECT_NE(error_of<ConfigError>([&] { s.evaluate(dev_rows, Selection::parse("parallel(a,b)")); }).find("not the branches"),
            std::string::npos);
  Session decoder(stories260k_path());
  decoder.add_adapter("a", "lora", "", 1);
  decoder.add_adapter("b", "lora", "", 2);
  EXPECT_NE(error_of<ConfigError>([&] { decoder.generate("Once", Selection::parse("parallel(a,b)")); }).find("one model"),
            std::string::npos);
}

// The command line: train a fusion over two saved adapters, then evaluate and predict
// through --compose.
TEST(Composition, CommandLineTrainsAndEvaluatesThroughCompose) {
  TempFolder dir("compose-cli");
  const std::string common = fmt::format("--backbone {} --data {} --train-rows 32 --dev-rows 16 --batch-size 16 --no-progress",
                                         minilm_path().string(), glue_path().string());
  for (const auto& [name, method] : std::vector<std::pair<std::string, std::string>>{{"a", "houlsby"}, {"b", "pfeiffer"}}) {
    const auto r = run_graft(fmt::format("train {} --task sst2 --method {} --max-steps 1 --output {}", common, method,
                                         (dir.path / name).string()), dir.path / (name + ".log"));
    ASSERT_EQ(r.status, 0) << r.output;
  }
  const std::string adapters = fmt::format("--adapter a={} --adapter b={}", (dir.path / "a/best").string(), (dir.path / "b/best").string());
  const auto fused = run_graft(fmt::format("train {} --task sst2 --method fusion {} --max-steps 2 --output {}", common, adapters,
                                           (dir.path / "f").string()), dir.path / "f.log");
  ASSERT_EQ(fused.status, 0) << fused.output;
  EXPECT_NE(fused.output.find("AdapterFusion over a, b"), std::string::npos) << fused.output;
  const auto eval = run_graft(fmt::format("eval --backbone {} --data {} --task sst2 --dev-rows 16 {} --adapter f={} --compose 'fuse(a,b)'",
                                          minilm_path().string(), glue_path().string(), adapters, (dir.path / "f/best").string()),
                              dir.path / "eval.log");
  ASSERT_EQ(eval.status, 0) << eval.output;
  EXPECT_NE(eval.output.find("fuse(a,b) on sst2 dev, 16 rows"), std::string::npos) << eval.output;
  const auto both = run_graft(fmt::format("predict --backbone {} {} --compose 'parallel(a,b)' 'a gripping film'",
                                          minilm_path().string(), adapters), dir.path / "predict.log");
  ASSERT_EQ(both.status, 0) << both.output;
  EXPECT_NE(both.output.find("a\t"), std::string::npos) << both.output;
  EXPECT_NE(both.output.find("\nb\t"), std::string::npos) << both.output;
  const auto bad = run_graft(fmt::format("eval --backbone {} --data {} --task sst2 {} --compose 'average(a,prefix'",
                                         minilm_path().string(), glue_path().string(), adapters), dir.path / "bad.log");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("missing ')'"), std::string::npos) << bad.output;
  const auto unnamed = run_graft(fmt::format("eval --backbone {} --data {} --task sst2 --adapter {} --adapter {}", minilm_path().string(),
                                             glue_path().string(), (dir.path / "a/best").string(), (dir.path / "b/best").string()),
                                 dir.path / "unnamed.log");
  EXPECT_NE(unnamed.status, 0);
  EXPECT_NE(unnamed.output.find("needs a name"), std::string::npos) << unnamed.output;
}

}  // namespace
}  // namespace graft::testing
