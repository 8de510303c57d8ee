#include "plugin/fusion.h"

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/init.h"
#include "graft/ops.h"
#include "graft/text.h"

namespace graft::plugin {
namespace {

constexpr const char* kSchema = R"json({"type": "object", "properties": {
  "adapters": {"type": "array", "items": {"type": "string"}, "description": "the fused bottleneck adapters, in order"},
  "sites": {"type": "array", "items": {"type": "string"}, "default": [],
            "description": "sublayer_output sites with fusion weights; empty: where the fused adapters act (the session fills it in)"}
}, "required": ["adapters"]})json";

class Fusion : public PeftMethod {
 public:
  explicit Fusion(const Config& c) : adapters_(c.strings("adapters")), sites_(c.has("sites") ? c.strings("sites") : std::vector<std::string>{}) {
    if (adapters_.size() < 2)
      throw ConfigError("fusion", fmt::format("a fusion needs at least two adapters, got {}", adapters_.size()),
                        "\"adapters\": [\"a\", \"b\"]");
  }

  void attach(AttachContext& context) override {
    if (sites_.empty())
      throw ConfigError("fusion", fmt::format("fusion '{}' names no sites", context.adapter_name()),
                        "add it through a Session (which puts it where the fused adapters act) or give \"sites\"");
    const std::uint64_t seed = context.seed();
    std::uint64_t stream = 0;
    for (const Site* site : context.select(SiteKind::sublayer_output, sites_)) {
      const std::int64_t H = site->out_features;
      auto add = [&](const std::string& name, Tensor t) {
        params_.push_back({site->name + ".fusion." + name, t});
        return t;
      };
      Tensor wq = add("query.weight", nn::parameter({H, H}, 0.02f, init_stream(seed, stream++)));
      Tensor bq = add("query.bias", nn::zeros_parameter({H}));
      Tensor wk = add("key.weight", nn::parameter({H, H}, 0.02f, init_stream(seed, stream++)));
      Tensor bk = add("key.bias", nn::zeros_parameter({H}));
      std::vector<float> eye(static_cast<std::size_t>(H * H), 0.f);
      for (std::int64_t i = 0; i < H; ++i) eye[static_cast<std::size_t>(i * H + i)] = 1.f;
      Tensor wv = Tensor::from_floats(eye, {H, H});
      wv.set_requires_grad(true);
      add("value.weight", wv);
      context.register_hook(*site, std::make_shared<FusionHook>(wq, bq, wk, bk, wv));
    }
  }
  std::vector<nn::NamedParameter> parameters() const override { return params_; }
  std::string describe() const override {
    std::int64_t n = 0;
    for (const auto& p : params_) n += p.tensor.numel();
    return fmt::format("AdapterFusion over {} ({} sites), {} parameters", fmt::join(adapters_, ", "), params_.size() / 5,
                       thousands(n));
  }
  std::string adapter_config_json() const override { return R"({"graft_method": "fusion"})"; }

 private:
  std::vector<std::string> adapters_, sites_;
  std::vector<nn::NamedParameter> params_;
};

}  // namespace

Tensor FusionHook::fuse(const Tensor& h, const std::vector<Tensor>& deltas) const {
  const std::int64_t B = h.dim(0), T = h.dim(1), H = h.dim(2), n = static_cast<std::int64_t>(deltas.size());
  std::vector<Tensor> parts;
  for (const Tensor& d : deltas) parts.push_back(ops::reshape(d, {B * T, 1, H}));
  const Tensor D = ops::concat(parts, 1);                                      // [BT, n, H]
  const Tensor q = ops::reshape(ops::linear(h, wq_, bq_), {B * T, 1, H});     // [BT, 1, H]
  const Tensor k = ops::linear(D, wk_, bk_), v = ops::linear(D, wv_);          // [BT, n, H]
  const Tensor p = ops::softmax(ops::sum(ops::mul(q, k), {2}));                // [BT, n]
  const Tensor context = ops::sum(ops::mul(ops::reshape(p, {B * T, n, 1}), v), {1});  // [BT, H]
  return ops::add(h, ops::reshape(context, {B, T, H}));
}

const GraftPluginInfo& fusion_method_info() {
  static const GraftPluginInfo info = {
      .abi_major = GRAFT_PLUGIN_ABI_MAJOR,
      .abi_minor = GRAFT_PLUGIN_ABI_MINOR,
      .struct_size = sizeof(GraftPluginInfo),
      .name = "fusion",
      .version = "built-in",
      .description = "AdapterFusion: a trained attention over several frozen bottleneck adapters (select with fuse(...))",
      .config_schema = kSchema,
      .create = [](const Config* c) -> PeftMethod* { return new Fusion(*c); },
      .destroy = [](PeftMethod* m) { delete m; },
      .peft_types = nullptr,
      .aliases = nullptr,
      .default_lr = 5e-5,
      .extension = nullptr};
  return info;
}

}  // namespace graft::plugin
