#include "plugin/builtin_methods.h"

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/text.h"
#include "plugin/fusion.h"

namespace graft::plugin {
namespace {

constexpr const char* kNoConfig = R"({"type": "object", "properties": {}})";

// Trains nothing of its own: the session's task head is the whole model change.
class HeadOnly : public PeftMethod {
 public:
  void attach(AttachContext&) override {}
  std::vector<nn::NamedParameter> parameters() const override { return {}; }
  std::string describe() const override { return "a task head only (linear probe)"; }
  std::string adapter_config_json() const override { return R"({"graft_method": "head"})"; }
};

// Every frozen weight becomes trainable. The backbone is shared: the session keeps a
// "full" adapter alone on its backbone. bf16 weights train in mixed precision: their
// products in bf16, gradients in f32, and AdamW stepping f32 master copies.
class FullFineTuning : public PeftMethod {
 public:
  void attach(AttachContext& context) override {
    for (const auto& p : context.backbone().parameters()) {
      Tensor t = p.tensor;
      t.set_requires_grad(true);
      parameters_.push_back({"backbone." + p.name, t});
    }
  }
  std::vector<nn::NamedParameter> parameters() const override { return parameters_; }
  std::string describe() const override {
    std::int64_t n = 0;
    for (const auto& p : parameters_) n += p.tensor.numel();
    return fmt::format("every backbone weight: {} tensors, {} parameters", parameters_.size(), thousands(n));
  }
  std::string adapter_config_json() const override { return R"({"graft_method": "full"})"; }

 private:
  std::vector<nn::NamedParameter> parameters_;
};

template <class Method>
const GraftPluginInfo make_info(const char* name, const char* description, double lr) {
  return {.abi_major = GRAFT_PLUGIN_ABI_MAJOR,
          .abi_minor = GRAFT_PLUGIN_ABI_MINOR,
          .struct_size = sizeof(GraftPluginInfo),
          .name = name,
          .version = "built-in",
          .description = description,
          .config_schema = kNoConfig,
          .create = [](const Config*) -> PeftMethod* { return new Method(); },
          .destroy = [](PeftMethod* m) { delete m; },
          .peft_types = nullptr,
          .aliases = nullptr,
          .default_lr = lr,
          .extension = nullptr};
}

}  // namespace

const std::vector<const GraftPluginInfo*>& builtin_methods() {
  static const GraftPluginInfo head = make_info<HeadOnly>("head", "baseline: a linear probe, only the task head is trained", 5e-3);
  static const GraftPluginInfo full =
      make_info<FullFineTuning>("full", "baseline: full fine-tuning, every backbone weight is trained", 1e-4);
  static const std::vector<const GraftPluginInfo*> all = {&head, &full, &fusion_method_info()};
  return all;
}

}  // namespace graft::plugin
