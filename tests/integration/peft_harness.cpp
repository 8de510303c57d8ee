#include <optional>

#include "peft_harness.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "data/glue.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "nn/optim.h"
#include "train/adapter_io.h"
#include "train/evaluator.h"
#include "train/task_model.h"

#include "unit/gradcheck.h"
namespace graft::testing {
namespace fs = std::filesystem;

const plugin::PluginRegistry& plugins() {
  static const plugin::PluginRegistry registry = [] {
    plugin::PluginRegistry r;
    r.scan(plugin::search_path({}));
    return r;
  }();
  return registry;
}

namespace {

std::map<std::string, model::LoadedBackbone>& loaded_backbones() {
  static std::map<std::string, model::LoadedBackbone> loaded;
  return loaded;
}

model::LoadedBackbone& cached(const fs::path& path) {
  auto& loaded = loaded_backbones();
  auto it = loaded.find(path.string());
  if (it == loaded.end()) it = loaded.emplace(path.string(), model::load_backbone(path)).first;
  return it->second;
}

const fs::path kShared = GRAFT_SHARED_DIR;
const fs::path kGolden = fs::path(GRAFT_SOURCE_DIR) / "tests" / "golden" / "backbones";

}  // namespace

data::Dataset sst2_rows(const std::string& split, std::size_t first, std::size_t count) {
  data::Dataset ds = data::read_glue(kShared / "data" / "glue", "sst2", split);
  if (first + count > ds.examples.size())
    throw ConfigError("harness", fmt::format("SST-2 {} has {} rows, asked for [{}, {})", split, ds.examples.size(), first, first + count));
  ds.examples = std::vector<data::Example>(ds.examples.begin() + first, ds.examples.begin() + first + count);
  return ds;
}

namespace {

class Recorder : public AdapterHook {
 public:
  explicit Recorder(HookCalls& calls) : calls_(calls) {}
  Tensor linear(const Site& site, const LinearCall& call, const Rows&) override {
    calls_.linear[site.name] = call;
    return call.y;
  }
  Tensor sublayer_output(const Site& site, const SublayerCall& call, const Rows&) override {
    calls_.sublayer[site.name] = call;
    return call.h;
  }

 private:
  HookCalls& calls_;
};

class RecordingMethod : public PeftMethod {
 public:
  RecordingMethod(std::vector<std::string> sites, HookCalls& calls) : sites_(std::move(sites)), calls_(calls) {}
  void attach(AttachContext& context) override {
    auto hook = std::make_shared<Recorder>(calls_);
    for (const Site& s : context.backbone().sites())
      if (std::find(sites_.begin(), sites_.end(), s.name) != sites_.end()) context.register_hook(s, hook);
  }
  std::vector<nn::NamedParameter> parameters() const override { return {}; }
  std::string describe() const override { return "recorder"; }
  std::string adapter_config_json() const override { return "{}"; }

 private:
  std::vector<std::string> sites_;
  HookCalls& calls_;
};

}  // namespace

void attach_recorder(AdapterSet& set, const std::string& name, const std::vector<std::string>& sites, HookCalls& calls) {
  set.add(name, "recorder", std::make_shared<RecordingMethod>(sites, calls), "{}", 0);
}

fs::path minilm_path() {
  const char* env = std::getenv("GRAFT_MINILM_DIR");
  const fs::path dir = env ? fs::path(env) : fs::path(GRAFT_SOURCE_DIR) / ".cache" / "models" / "all-MiniLM-L6-v2";
  if (!fs::exists(dir / "model.safetensors"))
    throw IoError("harness", fmt::format("all-MiniLM-L6-v2 is not at {}", dir.string()), "run `make models` (or set GRAFT_MINILM_DIR)");
  return dir;
}
fs::path stories260k_path() { return kShared / "models" / "stories260K" / "stories260K.bin"; }

model::LoadedBackbone& minilm() { return cached(minilm_path()); }
model::LoadedBackbone& stories260k() { return cached(stories260k_path()); }
model::LoadedBackbone& tiny_bert() { return cached(kGolden / "tiny_bert"); }
model::LoadedBackbone& tiny_llama() { return cached(kGolden / "tiny_llama"); }

std::vector<std::vector<std::uint8_t>> weight_bytes(const Backbone& backbone) {
  std::vector<std::vector<std::uint8_t>> out;
  for (const auto& p : backbone.parameters()) {
    const auto* bytes = static_cast<const std::uint8_t*>(p.tensor.raw());
    out.emplace_back(bytes, bytes + p.tensor.nbytes());
  }
  return out;
}

std::unique_ptr<AdapterSet> attach(const Backbone& backbone, const std::string& method, const std::string& config_json,
                                   std::uint64_t seed) {
  auto set = std::make_unique<AdapterSet>(backbone);
  for (const auto& [path, loaded] : loaded_backbones())  // the backbone's own tokenizer, for TEXT inits
    if (loaded.model.get() == &backbone && loaded.tokenizer) {
      const text::Tokenizer* tokenizer = loaded.tokenizer.get();
      set->set_tokenizer([tokenizer](const std::string& text) { return tokenizer->encode(text).ids; });
    }
  attach_method(*set, plugins(), "task", method, config_json, "test config", seed);
  return set;
}

Batch two_row_batch(std::int64_t vocab) {
  std::vector<std::int64_t> ids = {1, 5, 9, 3, 7, 2, 1, 11, 4, 8, 0, 0};
  for (auto& i : ids) i %= vocab;
  return {Tensor::from_ints(ids, {2, 6}), Tensor::from_ints({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 6}), Tensor()};
}

void randomize(const AdapterSet& set, float scale, std::uint64_t seed) {
  for (const auto& p : parameters_of(set)) {
    const Tensor r = random_tensor(p.tensor.shape(), seed++, -scale, scale);
    std::memcpy(p.tensor.raw(), r.raw(), p.tensor.nbytes());
  }
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_floats(), y = b.to_floats();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(x[i]) - y[i]));
  return m;
}

Selection all_attached(const AdapterSet& set) { return Selection::stack(set.names()); }
std::vector<nn::NamedParameter> parameters_of(const AdapterSet& set) { return set.parameters(all_attached(set)); }

Tensor forward_with(const Backbone& backbone, const AdapterSet* set, const Batch& batch, bool training, Tensor* mask_out,
                    const Selection* selection) {
  if (!set) return backbone.forward(batch, nullptr, mask_out, training);
  ActiveAdapters hooks = set->bind(selection ? *selection : all_attached(*set));
  return backbone.forward(batch, &hooks, mask_out, training);
}

LabeledBatches sst2(const text::Tokenizer& tokenizer, const std::string& split, std::size_t first, std::size_t count,
                    std::size_t batch_size, std::size_t max_length) {
  return data::make_batches(sst2_rows(split, first, count), tokenizer, batch_size, max_length, false, 0);
}

LabeledBatches sst2_text(const text::Tokenizer& tokenizer, const std::string& split, std::size_t first, std::size_t count,
                         std::size_t batch_size, std::size_t max_length) {
  data::Dataset ds = sst2_rows(split, first, count);
  ds.kind = TaskKind::causal_lm;
  return data::make_batches(ds, tokenizer, batch_size, max_length, false, 0);
}

Evaluation evaluate(const Backbone& backbone, const AdapterSet* adapters, const TaskHead& head, const LabeledBatches& data) {
  // The trainer's evaluator: row-weighted loss (token-weighted for causal LM) and accuracy.
  std::optional<ActiveAdapters> hooks;
  if (adapters) hooks = adapters->bind(all_attached(*adapters));
  const train::Scores s = train::evaluate(backbone, hooks ? &*hooks : nullptr, head, data, "accuracy");
  return {s.values.at("loss"), s.values.count("accuracy") ? s.values.at("accuracy") : 0.0};
}

std::vector<double> train(const Backbone& backbone, const AdapterSet* adapters, TaskHead& head, const LabeledBatches& data, int steps,
                          float lr, std::uint64_t seed) {
  std::vector<nn::NamedParameter> params = adapters ? parameters_of(*adapters) : std::vector<nn::NamedParameter>{};
  std::optional<ActiveAdapters> hooks;
  if (adapters) hooks = adapters->bind(all_attached(*adapters));
  for (auto& p : head.parameters()) params.push_back({"head." + p.name, p.tensor});
  nn::AdamW optimizer(params, {lr, 0.9f, 0.999f, 1e-8f, 0.0f});
  ops::manual_seed(seed);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    const auto& b = data[static_cast<std::size_t>(step) % data.size()];
    Tensor loss = train::task_loss(backbone, hooks ? &*hooks : nullptr, head, b, true);
    loss.backward();
    optimizer.step();
    optimizer.zero_grad();
    losses.push_back(loss.item());
  }
  return losses;
}

namespace {

double mean_of(const std::vector<double>& v, std::size_t first, std::size_t count) {
  double sum = 0;
  for (std::size_t i = first; i < first + count; ++i) sum += v[i];
  return sum / static_cast<double>(count);
}

LearningRun learn(model::LoadedBackbone& model, const LearningSetup& setup, const HeadConfig& head_config,
                  const LabeledBatches& train_rows, const LabeledBatches& held_out, const std::string& what) {
  const Backbone& bb = *model.model;
  const auto weights = weight_bytes(bb);
  auto set = attach(bb, setup.method, setup.config_json, setup.seed);
  TaskHead head(head_config, bb, setup.seed);
  LearningRun run;
  run.bare = evaluate(bb, nullptr, head, held_out);
  run.before = evaluate(bb, set.get(), head, held_out);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<double> losses = train(bb, set.get(), head, train_rows, setup.steps, setup.lr, setup.seed);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.after = evaluate(bb, set.get(), head, held_out);
  const std::size_t window = std::min<std::size_t>(5, losses.size());
  run.first_loss = mean_of(losses, 0, window);
  run.last_loss = mean_of(losses, losses.size() - window, window);
  run.backbone_unchanged = weight_bytes(bb) == weights;
  const std::string accuracy = head_config.kind == TaskKind::classification
                                   ? fmt::format(", accuracy {:.3f} -> {:.3f}", run.before.accuracy, run.after.accuracy)
                                   : "";
  std::printf("  %s, %s\n  held-out loss %.3f (bare %.3f) -> %.3f%s, train loss (5-step means) %.3f -> %.3f, "
              "%d steps in %.1f s\n",
              what.c_str(), set->method("task").describe().c_str(), run.before.loss, run.bare.loss, run.after.loss,
              accuracy.c_str(), run.first_loss, run.last_loss, setup.steps, run.seconds);
  return run;
}

}  // namespace

LearningRun learn_sst2(const LearningSetup& setup) {
  auto& model = minilm();
  return learn(model, setup, {TaskKind::classification, 2, Pooling::mean, 0.1f},
               sst2(*model.tokenizer, "train", 0, 256, 16), sst2(*model.tokenizer, "dev", 0, 256, 64), "MiniLM on SST-2");
}

LearningRun learn_stories(const LearningSetup& setup) {
  auto& model = stories260k();
  return learn(model, setup, {TaskKind::causal_lm, 0, Pooling::mean, 0.f},
               sst2_text(*model.tokenizer, "train", 0, 256, 16), sst2_text(*model.tokenizer, "dev", 0, 128, 32),
               "stories260K on SST-2 text");
}

}  // namespace graft::testing
