// Hooks v2 on the tiny BERT and LLaMA fixtures: what each hook receives (x with the
// frozen W and b; a block's input with its output), prefix lengths declared at attach
// and enforced, and the host's merge from a method's delta_weight.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>

#include "graft/error.h"
#include "graft/ops.h"
#include "peft_harness.h"

namespace graft::testing {
namespace {

Batch toy_batch() {
  return {Tensor::from_ints({1, 5, 9, 3, 7, 2, 4, 8}, {2, 4}), Tensor::from_ints({1, 1, 1, 1, 1, 1, 0, 0}, {2, 4}), Tensor()};
}

const Site& site_named(const Backbone& bb, const std::string& name) {
  for (const Site& s : bb.sites())
    if (s.name == name) return s;
  throw std::logic_error("no site " + name);
}

class TestMethod : public PeftMethod {
 public:
  std::function<void(AttachContext&)> on_attach;
  std::function<Tensor(const Site&)> delta;
  void attach(AttachContext& context) override { on_attach(context); }
  std::vector<nn::NamedParameter> parameters() const override { return {}; }
  std::string describe() const override { return "test method"; }
  std::string adapter_config_json() const override { return "{}"; }
  Tensor delta_weight(const Site& site) const override { return delta ? delta(site) : Tensor(); }
};

std::unique_ptr<AdapterSet> with_method(const Backbone& bb, std::shared_ptr<TestMethod> method, const std::string& name = "t") {
  auto set = std::make_unique<AdapterSet>(bb);
  set->add(name, "test", std::move(method), "{}", 0);
  return set;
}

Tensor weight_of(const Backbone& bb, const Site& site, const char* suffix = ".weight") {
  for (const auto& p : bb.parameters())
    if (p.name == site.checkpoint_module + suffix) return p.tensor;
  return Tensor();
}

void check_what_hooks_see(const Backbone& bb, bool llama) {
  HookCalls seen;
  auto set = std::make_unique<AdapterSet>(bb);
  attach_recorder(*set, "t", {"layers.1.attention.query", "layers.1.ffn.up", "layers.1.attention", "layers.1.ffn"}, seen);
  const Tensor adapted = forward_with(bb, set.get(), toy_batch());
  EXPECT_EQ(max_abs_diff(adapted, forward_with(bb, nullptr, toy_batch())), 0.0);

  // The linear hook gets the backbone's own W and b (shared storage) with x and y = x Wᵀ + b.
  const Site& query = site_named(bb, "layers.1.attention.query");
  const LinearCall& q = seen.linear.at(query.name);
  EXPECT_EQ(q.weight.raw(), weight_of(bb, query).raw());
  EXPECT_EQ(q.bias.defined(), !llama);
  if (!llama) EXPECT_EQ(q.bias.raw(), weight_of(bb, query, ".bias").raw());
  EXPECT_EQ(max_abs_diff(q.y, ops::linear(q.x, q.weight, q.bias)), 0.0);

  // The sublayer hook gets the block's input: BERT feeds it to the block's projections
  // unchanged, LLaMA after its RMSNorm.
  const SublayerCall& attn = seen.sublayer.at("layers.1.attention");
  const SublayerCall& ffn = seen.sublayer.at("layers.1.ffn");
  const Tensor& up_x = seen.linear.at("layers.1.ffn.up").x;
  if (!llama) {
    EXPECT_EQ(max_abs_diff(attn.input, q.x), 0.0);
    EXPECT_EQ(max_abs_diff(ffn.input, up_x), 0.0);
  } else {
    std::map<std::string, Tensor> w;
    for (const auto& p : bb.parameters()) w[p.name] = p.tensor;
    const float eps = 1e-5f;  // tiny_llama's rms_norm_eps
    EXPECT_LT(max_abs_diff(ops::rms_norm(attn.input, w.at("model.layers.1.input_layernorm.weight"), eps), q.x), 1e-5);
    EXPECT_LT(max_abs_diff(ops::rms_norm(ffn.input, w.at("model.layers.1.post_attention_layernorm.weight"), eps), up_x), 1e-5);
  }
  // h is the block's output before the residual: the output projection's result.
  EXPECT_EQ(attn.h.shape(), attn.input.shape());
  EXPECT_GT(max_abs_diff(attn.h, attn.input), 1e-3);
}

TEST(Hooks, LinearAndSublayerHooksSeeWhatMethodsNeedOnTinyBert) { check_what_hooks_see(*tiny_bert().model, false); }
TEST(Hooks, LinearAndSublayerHooksSeeWhatMethodsNeedOnTinyLlama) { check_what_hooks_see(*tiny_llama().model, true); }

// A hook that prepends `rows` key/value rows; `declared` is what its method declares.
class Prepend : public AdapterHook {
 public:
  explicit Prepend(std::int64_t rows) : rows_(rows) {}
  void attention_kv(const Site&, Tensor& k, Tensor& v, Tensor& mask, const Rows&) override {
    const std::int64_t B = k.dim(0), H = k.dim(1), D = k.dim(3);
    k = ops::concat({Tensor::zeros({B, H, rows_, D}), k}, 2);
    v = ops::concat({Tensor::zeros({B, H, rows_, D}), v}, 2);
    mask = ops::concat({Tensor::zeros({B, 1, mask.dim(2), rows_}), mask}, 3);
  }

 private:
  std::int64_t rows_;
};

TEST(Hooks, PrefixLengthsAreDeclaredAtAttachAndEnforced) {
  const Backbone& bb = *tiny_llama().model;
  auto attach_prefix = [&](std::int64_t rows, std::int64_t declared) {
    auto method = std::make_shared<TestMethod>();
    method->on_attach = [&bb, rows, declared](AttachContext& ctx) {
      for (const Site* s : ctx.select(SiteKind::attention_kv, {})) {
        ctx.register_hook(*s, std::make_shared<Prepend>(rows));
        if (declared >= 0) ctx.declare_prefix(*s, declared);
      }
    };
    return with_method(bb, method);
  };
  // Declared: the real tokens are numbered after the prefix (offsets known at bind).
  auto good = attach_prefix(3, 3);
  const ActiveAdapters all = good->bind(Selection::one("t"));
  EXPECT_EQ(all.prefix_offsets(2), (std::vector<std::int64_t>{3, 3}));
  const ActiveAdapters second = good->bind(Selection::per_row({"", "t"}));
  EXPECT_EQ(second.prefix_offsets(2), (std::vector<std::int64_t>{0, 3}));
  EXPECT_THROW(second.prefix_offsets(3), ShapeError);
  EXPECT_TRUE(good->bind(Selection::none()).prefix_offsets(2).empty());
  EXPECT_NO_THROW(forward_with(bb, good.get(), toy_batch()));
  // Prepending what was not declared would shift every position silently: refused.
  for (auto [rows, declared] : {std::pair<std::int64_t, std::int64_t>{2, -1}, {2, 3}}) {
    auto bad = attach_prefix(rows, declared);
    try {
      forward_with(bb, bad.get(), toy_batch());
      ADD_FAILURE() << "no error";
    } catch (const PluginError& e) {
      EXPECT_NE(std::string(e.what()).find("declared a prefix of " + std::to_string(std::max<std::int64_t>(0, declared))),
                std::string::npos)
          << e.what();
    }
  }
  // Only attention_kv sites take a prefix.
  auto method = std::make_shared<TestMethod>();
  method->on_attach = [&bb](AttachContext& ctx) { ctx.declare_prefix(site_named(bb, "layers.0.ffn"), 2); };
  EXPECT_THROW(with_method(bb, method), Error);
}

TEST(Hooks, MergeNeedsADeltaAndOneAdapterPerWeight) {
  const Backbone& bb = *tiny_bert().model;
  const Site& query = site_named(bb, "layers.0.attention.query");
  auto hooked = [&](bool with_delta) {
    auto method = std::make_shared<TestMethod>();
    method->on_attach = [&query](AttachContext& ctx) { ctx.register_hook(query, std::make_shared<AdapterHook>()); };
    if (with_delta)
      method->delta = [](const Site& s) { return Tensor::full({s.out_features, s.in_features}, 0.25f); };
    return method;
  };
  auto set = std::make_unique<AdapterSet>(bb);
  set->add("none", "test", hooked(false), "{}", 0);
  EXPECT_THROW(set->merge("none"), ConfigError);
  EXPECT_FALSE(set->merged("none"));

  const Tensor w = weight_of(bb, query);
  const Tensor before = w.clone();
  set->add("a", "test", hooked(true), "{}", 0);
  set->add("b", "test", hooked(true), "{}", 0);
  set->merge("a");
  EXPECT_NEAR(w.to_floats()[0], before.to_floats()[0] + 0.25f, 1e-6);
  try {
    set->merge("b");
    ADD_FAILURE() << "merged twice into one weight";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("adapter 'a' is merged into"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(set->merged("b"));
  set.reset();  // unmerges 'a'
  EXPECT_EQ(std::memcmp(w.raw(), before.raw(), w.nbytes()), 0);
}

}  // namespace
}  // namespace graft::testing
