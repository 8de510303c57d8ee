// The SDK helpers plugins share (docs/plugin-guide.md, "SDK helpers"): seeded
// initialisation streams equal to the formulas the plugins used before (so adapters
// initialise bit for bit as they did), Config's type tests, PEFT's tensor names and
// target_modules matching, and the masked-attention constant.
#include <gtest/gtest.h>

#include <cmath>

#include "graft/config.h"
#include "graft/error.h"
#include "graft/init.h"
#include "graft/nn.h"
#include "graft/peft_names.h"
#include "graft/site.h"

using namespace graft;

namespace {

// The copies the plugins carried: lora/prefix/ia3's mix(seed, stream), houlsby's mix(x).
std::uint64_t legacy_stream(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
std::uint64_t legacy_mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

TEST(SdkHelpers, InitStreamsMatchThePluginsFormulas) {
  static_assert(splitmix64(0) == 0xE220A8397B1DCDAFull);  // splitmix64's first output from state 0
  for (std::uint64_t seed : {0ull, 1ull, 42ull, 0xFFFFFFFFFFFFFFFFull, 0x1234567890ABCDEFull})
    for (std::uint64_t stream = 0; stream < 100; ++stream) {
      EXPECT_EQ(init_stream(seed, stream), legacy_stream(seed, stream));
      EXPECT_EQ(splitmix64(seed + stream), legacy_mix(seed + stream));
    }
}

TEST(SdkHelpers, TruncatedNormalStaysWithinTwoStd) {
  const Tensor a = nn::truncated_normal_parameter({64, 32}, 0.01f, 7), b = nn::truncated_normal_parameter({64, 32}, 0.01f, 7);
  EXPECT_TRUE(a.requires_grad());
  EXPECT_EQ(a.to_floats(), b.to_floats());
  double sum2 = 0;
  for (float v : a.to_floats()) {
    EXPECT_LE(std::fabs(v), 0.02f);
    sum2 += double(v) * v;
  }
  EXPECT_NEAR(std::sqrt(sum2 / a.numel()), 0.0088, 0.0008);  // std of N(0,1) cut at ±2: 0.88
  EXPECT_THROW(nn::truncated_normal_parameter({2}, -1.f, 0), ConfigError);
}

TEST(SdkHelpers, ConfigTypeTests) {
  const Config c = Config::parse(R"({"b": true, "i": 3, "x": 0.5, "s": "gaussian", "l": ["q"], "o": {}, "n": null})");
  EXPECT_TRUE(c.is_boolean("b"));
  EXPECT_FALSE(c.is_boolean("s"));
  EXPECT_TRUE(c.is_integer("i"));
  EXPECT_FALSE(c.is_integer("x"));
  EXPECT_TRUE(c.is_number("i"));
  EXPECT_TRUE(c.is_number("x"));
  EXPECT_FALSE(c.is_number("b"));
  EXPECT_TRUE(c.is_string("s"));
  EXPECT_FALSE(c.is_string("l"));
  EXPECT_TRUE(c.is_list("l"));
  EXPECT_TRUE(c.is_object("o"));
  EXPECT_TRUE(c.is_null("n"));
  EXPECT_FALSE(c.is_null("absent"));
  EXPECT_FALSE(c.is_string("absent"));
}

Site linear(std::string checkpoint_module, std::string module, int layer) {
  Site s;
  s.kind = SiteKind::linear;
  s.layer = layer;
  s.module = std::move(module);
  s.name = "layers." + std::to_string(layer) + "." + s.module;
  s.checkpoint_module = std::move(checkpoint_module);
  s.in_features = s.out_features = 4;
  return s;
}

// Two BERT layers: "dense" names three modules, "output.dense" two.
std::vector<Site> bert_sites() {
  std::vector<Site> out;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    out.push_back(linear(p + "attention.self.query", "attention.query", l));
    out.push_back(linear(p + "attention.self.value", "attention.value", l));
    out.push_back(linear(p + "attention.output.dense", "attention.output", l));
    out.push_back(linear(p + "intermediate.dense", "ffn.up", l));
    out.push_back(linear(p + "output.dense", "ffn.down", l));
  }
  return out;
}

TEST(SdkHelpers, PeftTensorNames) {
  const Site s = linear("model.layers.0.self_attn.q_proj", "attention.query", 0);
  EXPECT_EQ(peft::tensor_name(s, "lora_A.weight"), "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  const Tensor t = Tensor::zeros({1});
  // A prefix added or dropped is found; two candidates are ambiguous.
  const std::map<std::string, Tensor> saved = {{"base_model.model.layers.0.self_attn.q_proj.lora_A.weight", t}};
  EXPECT_EQ(peft::saved_name(peft::tensor_name(s, "lora_A.weight"), saved), saved.begin()->first);
  EXPECT_EQ(peft::saved_name("base_model.model.layers.0.self_attn.q_proj.lora_B.weight", saved), "");
  std::map<std::string, Tensor> two = saved;
  two["base_model.model.x.model.layers.0.self_attn.q_proj.lora_A.weight"] = t;
  EXPECT_EQ(peft::saved_name(peft::tensor_name(s, "lora_A.weight"), two), "");
  const auto resolved = peft::resolve_names({{peft::tensor_name(s, "lora_A.weight"), t}}, {{saved.begin()->first, t}, {"extra", t}});
  EXPECT_EQ(resolved.size(), 2u);
  EXPECT_TRUE(resolved.count(peft::tensor_name(s, "lora_A.weight")));
  EXPECT_TRUE(resolved.count("extra"));
}

TEST(SdkHelpers, PeftTargetModules) {
  EXPECT_TRUE(peft::suffix_match("encoder.layer.0.output.dense", "output.dense"));
  EXPECT_TRUE(peft::suffix_match("q_proj", "q_proj"));
  EXPECT_FALSE(peft::suffix_match("encoder.layer.0.output.dense", "put.dense"));

  const auto sites = bert_sites();
  std::vector<const Site*> all, queries_values, one;
  for (const Site& s : sites) {
    all.push_back(&s);
    if (s.module == "attention.query" || s.module == "attention.value") queries_values.push_back(&s);
  }
  one.push_back(&sites[4]);
  EXPECT_EQ(peft::module_suffix(all, "ffn.down"), "");  // "output.dense" also names attention.output
  EXPECT_EQ(peft::module_suffix(all, "ffn.up"), "intermediate.dense");
  const auto t = peft::targets(sites, queries_values);
  EXPECT_EQ(t.target_modules, R"(["query", "value"])");
  EXPECT_EQ(t.layers_to_transform, "null");
  EXPECT_EQ(peft::targets(sites, one).target_modules, R"j("(encoder\\.layer\\.(0)\\.output\\.dense)")j");
  EXPECT_EQ(peft::names_regex(one), R"((encoder\.layer\.0\.output\.dense))");
  EXPECT_EQ(peft::layer_ranges(all), "0-1");

  EXPECT_EQ(peft::regex_select(R"(.*\.0\..*dense)", all).size(), 3u);  // full match
  EXPECT_EQ(peft::regex_select("dense", all).size(), 0u);
  try {
    peft::regex_select(R"(.*(query)\1)", all, "exclude_modules");
    ADD_FAILURE() << "a back-reference was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("exclude_modules '.*(query)\\1' names no site"), std::string::npos) << e.what();
  }
}

TEST(SdkHelpers, MaskedScoreHidesAKey) {
  EXPECT_EQ(std::exp(kMaskedScore), 0.f);
  EXPECT_TRUE(std::isfinite(kMaskedScore));
}

}  // namespace
