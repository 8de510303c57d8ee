// Merging adapters (Session::merge_adapters, train/adapter_merge.h, `graft merge`):
// LoRA and DoRA against Hugging Face PEFT's add_weighted_adapter (the fixtures of
// tests/golden/make_peft_merge_fixtures.py, DARE with the masks PEFT drew), graft's own
// DARE masks, bottleneck averaging (AdapterHub's average_adapter), every refusal, and
// the command end to end.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "golden/fixture.h"
#include "graft/error.h"
#include "graft/session.h"
#include "integration/cli_harness.h"
#include "integration/lora_fixtures.h"
#include "integration/peft_harness.h"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "train/adapter_io.h"
#include "train/adapter_merge.h"
#include "unit/error_of.h"

namespace graft::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
const fs::path kMergeDir = kGolden / "peft_merge";
const fs::path kTinyBert = kGolden / "backbones" / "tiny_bert";

std::map<std::string, Tensor> read_all(const fs::path& file) {
  const auto st = io::SafetensorsFile::open(file);
  std::map<std::string, Tensor> out;
  for (const auto& info : st.tensors()) out.emplace(info.name, st.get(info.name));
  return out;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// B·A of [out, r] and [r, in], row-major.
std::vector<float> product(const Tensor& B, const Tensor& A) {
  const auto b = B.to_floats(), a = A.to_floats();
  const std::int64_t out = B.shape()[0], r = B.shape()[1], in = A.shape()[1];
  std::vector<float> p(static_cast<std::size_t>(out * in), 0.f);
  for (std::int64_t i = 0; i < out; ++i)
    for (std::int64_t k = 0; k < r; ++k)
      for (std::int64_t j = 0; j < in; ++j) p[i * in + j] += b[i * r + k] * a[k * in + j];
  return p;
}

// One session on the tiny BERT with PEFT's five input adapters loaded under their folders' names.
Session& fixture_session() {
  static Session* s = [] {
    auto* session = new Session(kTinyBert);
    for (const char* name : {"ad_a", "ad_b", "ad_c", "dora_a", "dora_b"}) session->load_adapter(name, kMergeDir / name);
    return session;
  }();
  return *s;
}

// ------------------------------------------------------------ against PEFT 0.10.0

TEST(Merge, EqualsPeftAddWeightedAdapter) {
  const json cases = load_fixture((kMergeDir / "cases.json").string());
  ASSERT_TRUE(cases.contains("cases"));
  const double tol = cases.at("tolerance").at("f32_abs").get<double>();
  Session& session = fixture_session();
  std::set<std::string> covered;
  for (const json& c : cases.at("cases")) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    MergeOptions o;
    o.combination = c.at("combination_type");
    if (!c.at("density").is_null()) o.density = c.at("density").get<double>();
    o.majority_sign = c.at("majority_sign_method");
    o.dare_rescale = c.at("dare_rescale");
    std::map<std::string, Tensor> masks;
    std::size_t masks_used = 0;
    if (c.at("masks").get<bool>()) {
      masks = read_all(kMergeDir / "masks" / (name + ".safetensors"));
      o.dare_mask = [&](const std::string& adapter, const std::string& tensor, std::size_t n) {
        auto it = masks.find(adapter + "/" + tensor);
        if (it == masks.end()) {
          ADD_FAILURE() << "PEFT drew no mask for " << adapter << "/" << tensor;
          return std::vector<float>(n, 1.f);
        }
        ++masks_used;
        return it->second.to_floats();
      };
    }
    std::vector<std::pair<std::string, double>> inputs;
    for (std::size_t i = 0; i < c.at("adapters").size(); ++i)
      inputs.emplace_back(c.at("adapters")[i].get<std::string>(), c.at("weights")[i].get<double>());
    session.merge_adapters(name, inputs, o);
    if (!masks.empty()) EXPECT_EQ(masks_used, masks.size()) << "graft asked for another number of masks than PEFT drew";
    TempFolder dir("merge_" + name);
    session.save_adapter(name, dir.path / "out");
    const json config = io::load_json(dir.path / "out" / "adapter_config.json");
    EXPECT_EQ(config.at("r"), c.at("r"));
    EXPECT_EQ(config.at("lora_alpha").get<double>(), c.at("lora_alpha").get<double>());
    EXPECT_EQ(config.at("use_dora"), c.at("use_dora"));
    const auto got = read_all(dir.path / "out" / "adapter_model.safetensors");
    const auto want = read_all(kMergeDir / "results" / (name + ".safetensors"));
    ASSERT_EQ(got.size(), want.size());
    double worst = 0, worst_product = 0;
    const bool svd = o.combination.ends_with("svd");
    for (const auto& [key, w] : want) {
      ASSERT_TRUE(got.count(key)) << "graft wrote no " << key;
      const Tensor& g = got.at(key);
      ASSERT_EQ(g.shape(), w.shape()) << key;
      if (!svd || key.ends_with("lora_magnitude_vector")) {
        const double d = max_diff(g.to_floats(), w.to_floats());
        EXPECT_LE(d, tol) << key;
        worst = std::max(worst, d);
        continue;
      }
      if (!key.ends_with(".lora_A.weight")) continue;
      // SVD factors are unique up to one sign per component: the product must match,
      // the factors after flipping graft's component k to PEFT's sign.
      const std::string module = key.substr(0, key.size() - std::string(".lora_A.weight").size());
      const Tensor& gA = g;
      const Tensor& gB = got.at(module + ".lora_B.weight");
      const Tensor& wB = want.at(module + ".lora_B.weight");
      const double dp = max_diff(product(gB, gA), product(wB, w));
      EXPECT_LE(dp, tol) << module << ": B·A";
      worst_product = std::max(worst_product, dp);
      const auto ga = gA.to_floats(), wa = w.to_floats(), gb = gB.to_floats(), wb = wB.to_floats();
      const std::int64_t r = w.shape()[0], in = w.shape()[1], out = wB.shape()[0];
      for (std::int64_t k = 0; k < r; ++k) {
        double dot = 0;
        for (std::int64_t j = 0; j < in; ++j) dot += ga[k * in + j] * wa[k * in + j];
        const float sign = dot < 0 ? -1.f : 1.f;
        double d = 0;
        for (std::int64_t j = 0; j < in; ++j) d = std::max(d, std::fabs(static_cast<double>(sign * ga[k * in + j] - wa[k * in + j])));
        for (std::int64_t i = 0; i < out; ++i) d = std::max(d, std::fabs(static_cast<double>(sign * gb[i * r + k] - wb[i * r + k])));
        EXPECT_LE(d, tol) << module << ": component " << k << " up to its sign";
        worst = std::max(worst, d);
      }
    }
    covered.insert(o.combination);
    if (svd)
      std::printf("  %-22s %-16s max |graft - PEFT| B·A %.3g, factors up to sign %.3g\n", name.c_str(), o.combination.c_str(),
                  worst_product, worst);
    else
      std::printf("  %-22s %-16s max |graft - PEFT| %.3g\n", name.c_str(), o.combination.c_str(), worst);
    session.unload_adapter(name);
  }
  for (const char* combination : {"linear", "cat", "svd", "ties", "dare_linear", "dare_ties"})
    EXPECT_TRUE(covered.count(combination)) << combination << " has no PEFT fixture";
}

// The merged LoRA folder is an adapter like any other: it loads back and changes the
// backbone's outputs as its tensors say (a linear merge with weights (1, 0) is the first
// adapter's update, whatever its scaling, so it gives that adapter's hidden states).
TEST(Merge, LinearWithWeightsOneZeroReproducesTheFirstAdaptersOutputs) {
  Session& session = fixture_session();
  session.merge_adapters("one_zero", {{"ad_b", 1.0}, {"ad_a", 0.0}}, {.combination = "linear"});
  TempFolder dir("merge_one_zero");
  session.save_adapter("one_zero", dir.path / "out");
  session.unload_adapter("one_zero");
  session.load_adapter("one_zero", dir.path / "out");
  const std::vector<std::string> texts = {"the quick brown fox", "a b"};
  const Tensor merged = session.forward(texts, Selection::one("one_zero"));
  const Tensor first = session.forward(texts, Selection::one("ad_b"));
  const Tensor bare = session.forward(texts);
  EXPECT_LE(max_abs_diff(merged, first), 1e-5);
  EXPECT_GT(max_abs_diff(merged, bare), 1e-3) << "the adapter should move the outputs";
  session.unload_adapter("one_zero");
}

// Merged folders graft wrote, for make_peft_merge_fixtures.py --verify-only to load in
// PEFT (PeftModel.from_pretrained) and compare with graft_outputs.json. With
// GRAFT_WRITE_PEFT_FIXTURES=1 they are written again; always, they must still load in
// graft to the recorded outputs.
TEST(Merge, GraftMergedFoldersForPeft) {
  struct Case {
    std::string folder;
    std::vector<std::pair<std::string, double>> inputs;
    MergeOptions options;
  };
  const Case cases[] = {
      {"graft_merged_dare_ties", {{"ad_a", 0.7}, {"ad_b", 0.3}}, {.combination = "dare_ties", .density = 0.6, .seed = 3}},
      {"graft_merged_svd", {{"ad_a", 0.7}, {"ad_c", 0.3}}, {.combination = "svd"}},
      {"graft_merged_dora_cat", {{"dora_a", 0.6}, {"dora_b", 0.4}}, {.combination = "cat"}},
  };
  Backbone& b = *tiny_bert().model;
  const Batch batch = fixture_batch("tiny_bert");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.folder);
    const fs::path dir = kMergeDir / c.folder;
    if (std::getenv("GRAFT_WRITE_PEFT_FIXTURES")) {
      Session& session = fixture_session();
      session.merge_adapters(c.folder, c.inputs, c.options);
      fs::remove_all(dir);
      session.save_adapter(c.folder, dir);
      session.unload_adapter(c.folder);
      AdapterSet set(b);
      load_adapter(dir, set, "merged", plugins(), b, nullptr);
      auto enc = [](const Tensor& t) {
        json j = {{"dtype", t.dtype() == DType::i64 ? "i64" : "f32"}, {"shape", t.shape()}};
        if (t.dtype() == DType::i64) j["data"] = t.to_ints();
        else j["data"] = t.to_floats();
        return j;
      };
      const json out = {{"description", "graft's outputs with this merged adapter, for the inputs of the backbone's reference.json"},
                        {"input_ids", enc(batch.input_ids)}, {"attention_mask", enc(batch.attention_mask)},
                        {"token_type_ids", enc(batch.token_type_ids)}, {"last_hidden_state", enc(outputs_of(b, &set, batch))}};
      std::ofstream(dir / "graft_outputs.json") << out.dump() << "\n";
      std::printf("  wrote %s\n", dir.c_str());
    }
    AdapterSet set(b);
    load_adapter(dir, set, "merged", plugins(), b, nullptr);
    const json recorded = load_fixture((dir / "graft_outputs.json").string());
    // 1e-5: recorded on some CPU; oneDNN's kernels for another ISA sum in another order.
    expect_close(c.folder, outputs_of(b, &set, batch), recorded.at("last_hidden_state"), {1e-5, 0});
  }
}

// ------------------------------------------------------------ graft's own DARE masks

MergeSource lora_source(const std::string& name, std::int64_t r, double alpha, std::int64_t out, std::int64_t in, float fill,
                        double weight) {
  MergeSource s{name, "lora", json{{"r", r}, {"lora_alpha", alpha}, {"target_modules", {"query"}}}.dump(), {}, weight};
  std::vector<float> a(static_cast<std::size_t>(r * in)), b(static_cast<std::size_t>(out * r));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = fill * (1.f + static_cast<float>(i % 7));
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = -fill * (1.f + static_cast<float>(i % 5));
  s.tensors.emplace("base_model.model.q.lora_A.weight", Tensor::from_floats(a, {r, in}));
  s.tensors.emplace("base_model.model.q.lora_B.weight", Tensor::from_floats(b, {out, r}));
  return s;
}

TEST(Merge, OwnDareMasksKeepTheDensityRescaledAndAreSeeded) {
  // Weights (1, 0): the result is √scaling·mask·A/density of the first input alone.
  const std::vector<MergeSource> sources = {lora_source("x", 8, 16, 300, 400, 0.01f, 1.0),
                                            lora_source("y", 8, 16, 300, 400, 0.02f, 0.0)};
  const double density = 0.3, root = std::sqrt(16.0 / 8.0);
  MergeOptions o{.combination = "dare_linear", .density = density, .seed = 5};
  const MergeResult r1 = merge_adapter_tensors(sources, o);
  for (const char* key : {"base_model.model.q.lora_A.weight", "base_model.model.q.lora_B.weight"}) {
    const auto got = r1.tensors.at(key).to_floats(), in = sources[0].tensors.at(key).to_floats();
    std::size_t kept = 0;
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (got[i] == 0) continue;
      ++kept;
      worst = std::max(worst, std::fabs(got[i] - root * in[i] / density) / std::fabs(root * in[i] / density));
    }
    const double fraction = static_cast<double>(kept) / static_cast<double>(got.size());
    EXPECT_NEAR(fraction, density, 0.02) << key << ": the kept fraction";
    EXPECT_LE(worst, 1e-6) << key << ": a kept value is the input's √scaling / density";
  }
  const MergeResult again = merge_adapter_tensors(sources, o);
  o.seed = 6;
  const MergeResult other = merge_adapter_tensors(sources, o);
  o.seed = 5;
  o.dare_rescale = false;
  const MergeResult plain = merge_adapter_tensors(sources, o);
  for (const auto& [key, t] : r1.tensors) {
    EXPECT_EQ(t.to_floats(), again.tensors.at(key).to_floats()) << key << ": one seed, one mask";
    EXPECT_NE(t.to_floats(), other.tensors.at(key).to_floats()) << key << ": another seed, another mask";
    const auto a = t.to_floats(), b = plain.tensors.at(key).to_floats();
    for (std::size_t i = 0; i < a.size(); i += 97) EXPECT_NEAR(a[i] * density, b[i], 1e-6) << key << ": without rescale";
  }
}

// ------------------------------------------------------------ bottleneck averaging

MergeSource source_of(const AdapterSet& set, const std::string& name, double weight) {
  MergeSource s{name, set.method_name(name), set.method_config_json(name), {}, weight};
  for (auto& [key, t] : set.method(name).state()) s.tensors.emplace(key, t);
  return s;
}

TEST(Merge, BottleneckAverageIsTheWeightedParameterAverage) {
  const Backbone& backbone = *tiny_bert().model;
  for (const std::string config : {R"({"reduction_factor": 4})", R"({"is_parallel": true, "reduction_factor": 4, "scaling": 2.0})"}) {
    SCOPED_TRACE(config);
    AdapterSet set(backbone);
    for (const char* name : {"p", "q", "avg", "by_hand"}) attach_method(set, plugins(), name, "houlsby", config, "test", 3);
    // Random values everywhere (the init is near the identity).
    auto p = attach(backbone, "houlsby", config, 1), q = attach(backbone, "houlsby", config, 2);
    randomize(*p, 0.3f, 11);
    randomize(*q, 0.3f, 12);
    std::map<std::string, Tensor> ps, qs;
    for (auto& [k, t] : p->method("task").state()) ps.emplace(k, t);
    for (auto& [k, t] : q->method("task").state()) qs.emplace(k, t);
    set.method("p").load_state(ps);
    set.method("q").load_state(qs);

    // Weights (1, 0) give the first adapter back, bit for bit.
    const MergeResult first = merge_adapter_tensors({source_of(set, "p", 1.0), source_of(set, "q", 0.0)}, {.combination = "average"});
    const MergeSource p_state = source_of(set, "p", 1.0);
    ASSERT_EQ(first.tensors.size(), p_state.tensors.size());
    for (const auto& [key, t] : p_state.tensors) {
      ASSERT_TRUE(first.tensors.count(key)) << key;
      EXPECT_EQ(first.tensors.at(key).to_floats(), t.to_floats()) << key;
    }

    // Weights (3, 1): AdapterHub normalises them to (0.75, 0.25).
    const MergeResult avg = merge_adapter_tensors({source_of(set, "p", 3.0), source_of(set, "q", 1.0)}, {.combination = "average"});
    EXPECT_EQ(avg.config_json, set.method_config_json("p"));
    set.method("avg").load_state(avg.tensors);
    std::map<std::string, Tensor> by_hand;
    for (const auto& [key, t] : ps) {
      auto a = t.to_floats(), b = qs.at(key).to_floats();
      for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.75f * a[i] + 0.25f * b[i];
      by_hand.emplace(key, Tensor::from_floats(a, t.shape()));
    }
    set.method("by_hand").load_state(by_hand);
    const Batch batch = two_row_batch(backbone.info().vocab_size);
    const Selection avg_sel = Selection::one("avg"), hand_sel = Selection::one("by_hand"), p_sel = Selection::one("p");
    const Tensor out_avg = forward_with(backbone, &set, batch, false, nullptr, &avg_sel);
    const Tensor out_hand = forward_with(backbone, &set, batch, false, nullptr, &hand_sel);
    const Tensor out_p = forward_with(backbone, &set, batch, false, nullptr, &p_sel);
    EXPECT_LE(max_abs_diff(out_avg, out_hand), 1e-5);
    EXPECT_GT(max_abs_diff(out_avg, out_p), 1e-3) << "the average should differ from its first input";
  }
}

TEST(Merge, BottleneckOfAnotherShapeIsRefusedNamingBothAndTheTensor) {
  const Backbone& backbone = *tiny_bert().model;
  AdapterSet set(backbone);
  attach_method(set, plugins(), "wide", "houlsby", R"({"reduction_factor": 2})", "test", 1);
  attach_method(set, plugins(), "narrow", "houlsby", R"({"reduction_factor": 4})", "test", 1);
  const std::string e = error_of<ConfigError>(
      [&] { merge_adapter_tensors({source_of(set, "wide", 0.5), source_of(set, "narrow", 0.5)}, {.combination = "average"}); });
  EXPECT_HAS(e, "'wide'");
  EXPECT_HAS(e, "'narrow'");
  EXPECT_HAS(e, "differ in shape at tensor");
  attach_method(set, plugins(), "relu", "houlsby", R"({"reduction_factor": 2, "non_linearity": "relu"})", "test", 1);
  const std::string c = error_of<ConfigError>(
      [&] { merge_adapter_tensors({source_of(set, "wide", 0.5), source_of(set, "relu", 0.5)}, {.combination = "average"}); });
  EXPECT_HAS(c, "non_linearity");
}

// ------------------------------------------------------------ refusals

TEST(Merge, RefusalsNameTheAdaptersAndTheCause) {
  Session& s = fixture_session();
  auto refused = [&](const std::vector<std::pair<std::string, double>>& inputs, MergeOptions o) {
    return error_of<ConfigError>([&] { s.merge_adapters("refused", inputs, o); });
  };
  std::string e = refused({{"ad_a", 0.5}, {"ad_c", 0.5}}, {.combination = "linear"});
  EXPECT_HAS(e, "one rank");
  EXPECT_HAS(e, "'ad_a' has r=4, 'ad_c' r=2");
  EXPECT_HAS(e, "cat or svd");
  e = refused({{"ad_a", 0.5}, {"dora_a", 0.5}}, {.combination = "linear"});
  EXPECT_HAS(e, "'ad_a' is a LoRA adapter and 'dora_a' a DoRA adapter");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "ties", .density = 0.0});
  EXPECT_HAS(e, "density 0 is outside (0, 1]");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "dare_ties", .density = 1.5});
  EXPECT_HAS(e, "density 1.5 is outside (0, 1]");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "ties"});
  EXPECT_HAS(e, "ties needs a density");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "linear", .density = 0.5});
  EXPECT_HAS(e, "linear takes no density");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "lineer"});
  EXPECT_HAS(e, "unknown combination 'lineer'");
  EXPECT_HAS(e, "dare_ties");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "average"});
  EXPECT_HAS(e, "'ad_a' is a LoRA adapter: average is for bottleneck adapters");
  e = refused({{"ad_a", 1.0}, {"ad_b", -0.5}}, {.combination = "linear"});
  EXPECT_HAS(e, "'ad_b' has weight -0.5");
  e = refused({{"ad_a", 1.0}}, {.combination = "linear"});
  EXPECT_HAS(e, "at least two adapters");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "linear", .head = "ad_b"});
  EXPECT_HAS(e, "'ad_b' has no task head");
  e = refused({{"ad_a", 0.5}, {"ad_b", 0.5}}, {.combination = "linear", .head = "z"});
  EXPECT_HAS(e, "'z', is not one of the merged adapters");
  e = refused({{"ad_a", 0.5}, {"ad_c", 0.5}}, {.combination = "svd", .svd_rank = 40});
  EXPECT_HAS(e, "svd rank 40 exceeds");
  EXPECT_EQ(s.adapter_names().size(), 5u) << "a refused merge leaves nothing attached";

  // Another method, other sites: built directly (the fixture's adapters share both).
  s.add_adapter("h", "houlsby", R"({"reduction_factor": 4})");
  e = refused({{"ad_a", 0.5}, {"h", 0.5}}, {.combination = "linear"});
  EXPECT_HAS(e, "'ad_a' is a lora adapter and 'h' a houlsby adapter");
  e = error_of<ConfigError>([&] {
    AdapterSet set(*tiny_bert().model);
    attach_method(set, plugins(), "h1", "houlsby", R"({"reduction_factor": 4})", "test", 1);
    attach_method(set, plugins(), "h2", "houlsby", R"({"reduction_factor": 4})", "test", 2);
    merge_adapter_tensors({source_of(set, "h1", 0.5), source_of(set, "h2", 0.5)}, {.combination = "ties", .density = 0.5});
  });
  EXPECT_HAS(e, "'h1' is a houlsby adapter: ties combines LoRA and DoRA adapters");
  EXPECT_HAS(e, "--combine average");
  s.unload_adapter("h");
  s.add_adapter("key_only", "lora", R"({"r": 4, "target_modules": ["key", "value"]})");
  e = refused({{"ad_a", 0.5}, {"key_only", 0.5}}, {.combination = "linear"});
  EXPECT_HAS(e, "adapters 'ad_a' and 'key_only' adapt different sites");
  EXPECT_HAS(e, "attention.self.");
  s.unload_adapter("key_only");
}

// ------------------------------------------------------------ the command

TEST(MergeCli, MergedFolderLoadsAndPredictsAsTheInProcessMerge) {
  TempFolder dir("merge_cli");
  const data::Dataset rows = sst2_rows("train", 0, 8);
  {
    Session s(kTinyBert);
    s.add_adapter("x", "lora", R"({"r": 4, "init_lora_weights": false})", 1);
    s.add_adapter("y", "lora", R"({"r": 4, "lora_alpha": 16, "init_lora_weights": false})", 2);
    s.add_head("x", rows);
    s.save_adapter("x", dir.path / "x");
    s.save_adapter("y", dir.path / "y");
  }
  const std::string common = fmt::format("--backbone {} --adapter x={} --adapter y={}", kTinyBert.string(),
                                         (dir.path / "x").string(), (dir.path / "y").string());
  const fs::path out = dir.path / "merged";
  const ShellRun run = run_graft(fmt::format("merge {} --combine ties --weights 0.6,0.4 --density 0.5 --head x --output {}",
                                             common, out.string()), dir.path / "merge.log");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_HAS(run.output, "ties of 2");
  for (const char* file : {"adapter_config.json", "adapter_model.safetensors", "graft_adapter.json", "head.safetensors"})
    EXPECT_TRUE(fs::exists(out / file)) << file;
  const ShellRun predict = run_graft(fmt::format("predict --backbone {} --adapter {} 'a fine film'", kTinyBert.string(),
                                                 out.string()), dir.path / "predict.log");
  ASSERT_EQ(predict.status, 0) << predict.output;

  Session s(kTinyBert);
  s.load_adapter("x", dir.path / "x");
  s.load_adapter("y", dir.path / "y");
  s.merge_adapters("in_process", {{"x", 0.6}, {"y", 0.4}}, {.combination = "ties", .density = 0.5, .head = "x"});
  s.load_adapter("from_cli", out);
  const std::vector<TextInput> inputs = {{"a fine film"}, {"dull"}};
  const auto a = s.predict(inputs, Selection::one("in_process")), b = s.predict(inputs, Selection::one("from_cli"));
  const auto x = s.predict(inputs, Selection::one("x"));
  ASSERT_EQ(a.size(), b.size());
  double moved = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label, b[i].label);
    for (std::size_t k = 0; k < a[i].probabilities.size(); ++k) {
      EXPECT_NEAR(a[i].probabilities[k], b[i].probabilities[k], 1e-6);
      moved = std::max(moved, static_cast<double>(std::fabs(a[i].probabilities[k] - x[i].probabilities[k])));
    }
  }
  EXPECT_GT(moved, 1e-6) << "the merge should predict otherwise than its first input";
}

TEST(MergeCli, BadCommandLinesAreRefusedWithTheirCause) {
  TempFolder dir("merge_cli_errors");
  {
    Session s(kTinyBert);
    s.add_adapter("x", "lora", R"({"r": 4})", 1);
    s.save_adapter("x", dir.path / "x");
  }
  const std::string common = fmt::format("--backbone {} --adapter x={} --adapter y={}", kTinyBert.string(),
                                         (dir.path / "x").string(), (dir.path / "x").string());
  const fs::path out = dir.path / "out";
  ShellRun r = run_graft(fmt::format("merge {} --combine linear --weights 0.7,0.2,0.1 --output {}", common, out.string()),
                         dir.path / "1.log");
  EXPECT_NE(r.status, 0);
  EXPECT_HAS(r.output, "--weights gives 3 weights for 2 adapters");
  r = run_graft(fmt::format("merge {} --combine lin --output {}", common, out.string()), dir.path / "2.log");
  EXPECT_NE(r.status, 0);
  EXPECT_HAS(r.output, "unknown combination 'lin'");
  r = run_graft(fmt::format("merge {} --combine linear --weights 0.7,x --output {}", common, out.string()), dir.path / "3.log");
  EXPECT_NE(r.status, 0);
  EXPECT_HAS(r.output, "'x' is not a number");
  r = run_graft(fmt::format("merge {} --combine linear --output {}", common, (dir.path / "x").string()), dir.path / "4.log");
  EXPECT_NE(r.status, 0);
  EXPECT_HAS(r.output, "already exists");
  r = run_graft(fmt::format("merge --backbone {} --adapter x={} --adapter x={} --combine linear --output {}", kTinyBert.string(),
                            (dir.path / "x").string(), (dir.path / "x").string(), out.string()),
                dir.path / "5.log");
  EXPECT_NE(r.status, 0);
  EXPECT_HAS(r.output, "the name 'x' is given twice");
  EXPECT_FALSE(fs::exists(out)) << "a refused merge writes nothing";
  // An input may be called "merged" (the name the command gives the result).
  r = run_graft(fmt::format("merge --backbone {} --adapter merged={} --adapter y={} --combine linear --output {}",
                            kTinyBert.string(), (dir.path / "x").string(), (dir.path / "x").string(), out.string()),
                dir.path / "6.log");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "adapter_model.safetensors"));
}

}  // namespace
}  // namespace graft::testing
