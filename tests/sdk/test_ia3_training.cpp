// The SDK end to end: the (IA)³ example plugin (sdk/examples/ia3), built out of tree
// against the installed SDK by the tests before this one, loaded from its own build
// folder (GRAFT_IA3_PLUGIN_DIR) and used on all-MiniLM-L6-v2 with real SST-2 rows:
// a fresh adapter changes no bit of the output, training it with a head lowers the
// loss and leaves the backbone's weights alone, its input and output scalings equal
// scaling the frozen weights, per-row selection keeps other rows' bits, it saves and
// loads in graft's and PEFT's layouts, and adapters PEFT made give PEFT's outputs.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "integration/peft_harness.h"
#include "io/safetensors.h"
#include "integration/cli_harness.h"
#include "train/adapter_io.h"
#include "train/merged_export.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;

fs::path plugin_dir() {
  const char* env = std::getenv("GRAFT_IA3_PLUGIN_DIR");
  if (!env || !*env) throw std::runtime_error("GRAFT_IA3_PLUGIN_DIR is not set: run this test through ctest (tests/sdk)");
  return env;
}

// Only the out-of-tree plugin's folder: not the build tree's plugins, not GRAFT_PLUGIN_PATH.
const plugin::PluginRegistry& registry() {
  static const plugin::PluginRegistry r = [] {
    plugin::PluginRegistry out;
    out.scan({plugin_dir()});
    return out;
  }();
  return r;
}

std::unique_ptr<AdapterSet> attach_ia3(const Backbone& backbone, const std::string& config = "") {
  auto set = std::make_unique<AdapterSet>(backbone);
  attach_method(*set, registry(), "task", "ia3", config, "test config", 0);
  return set;
}

Tensor hidden(const Backbone& backbone, AdapterSet* adapters, const Batch& batch, const Selection* selection = nullptr) {
  NoGradGuard no_grad;
  return forward_with(backbone, adapters, batch, false, nullptr, selection);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_floats(), y = b.to_floats();
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(x[i] - y[i])));
  return m;
}

// Row r of a [B, ...] tensor, as a copy.
Tensor row(const Tensor& t, std::int64_t r) {
  const std::int64_t n = t.numel() / t.dim(0);
  const float* data = t.data<float>() + r * n;
  return Tensor::from_floats(std::vector<float>(data, data + n), {n});
}

const Batch& dev_batch() {
  static const LabeledBatches rows = sst2(*minilm().tokenizer, "dev", 0, 16, 16);
  return rows.front().batch;
}

TEST(SdkIa3, LoadsFromItsOwnBuildFolder) {
  const auto& r = registry();
  for (const auto& f : r.failures()) ADD_FAILURE() << f.message;
  ASSERT_EQ(r.plugins().size(), 1u);
  const auto& ia3 = r.find("ia3");
  EXPECT_EQ(fs::canonical(ia3.file.parent_path()), fs::canonical(plugin_dir()));
  EXPECT_EQ(ia3.file.filename(), "libgraft_ia3.so");
}

TEST(SdkIa3, FreshAdapterLeavesMiniLmOutputUnchanged) {
  auto& model = minilm();
  auto set = attach_ia3(*model.model);
  // Keys and values (output scaled, [out, 1]) and ffn.down (input scaled, [1, in]) in
  // each of the 6 layers, named as PEFT names IA3 vectors.
  const auto params = set->method("task").parameters();
  const std::int64_t H = model.model->info().hidden_size, F = model.model->info().intermediate_size;
  ASSERT_EQ(params.size(), 18u);
  std::int64_t count = 0;
  for (const auto& p : params) count += p.tensor.numel();
  EXPECT_EQ(count, 6 * (2 * H + F));
  EXPECT_EQ(params[0].name, "base_model.model.encoder.layer.0.attention.self.key.ia3_l");
  EXPECT_EQ(params[0].tensor.shape(), (Shape{H, 1}));
  EXPECT_EQ(params[2].name, "base_model.model.encoder.layer.0.output.dense.ia3_l");
  EXPECT_EQ(params[2].tensor.shape(), (Shape{1, F}));
  std::printf("%s\n", set->method("task").describe().c_str());

  // Ones times y is y, and y + (x ⊙ 0) Wᵀ is y: not a bit differs.
  EXPECT_TRUE(same_bits(hidden(*model.model, set.get(), dev_batch()), hidden(*model.model, nullptr, dev_batch())));
}

// (IA)³'s scalings are exactly a rescaling of the frozen weights: rows of W and b for an
// output scaling, columns of W for an input scaling. Checked against the bare backbone
// with its weights so scaled (then restored), on MiniLM with PEFT's BERT default — keys,
// values, and "output.dense" (both dense layers named so) input-scaled, computed with
// the extra matmul — and on a LLaMA, where down_proj's input scaling runs at up_proj.
void expect_equals_scaled_weights(const Backbone& backbone, const Batch& batch, const std::string& config) {
  auto set = attach_ia3(backbone, config);
  std::map<std::string, Tensor> weights;
  for (const auto& p : backbone.parameters()) weights.emplace(p.name, p.tensor);
  const auto params = set->method("task").parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    float* l = params[i].tensor.data<float>();
    for (std::int64_t j = 0; j < params[i].tensor.numel(); ++j) l[j] = 1.f + 0.5f * std::sin(0.7f * static_cast<float>(i * 131 + j));
  }
  const Tensor adapted = hidden(backbone, set.get(), batch);

  const auto before = weight_bytes(backbone);
  std::vector<std::pair<Tensor, Tensor>> saved;  // (weight, original copy)
  for (const auto& p : params) {
    const std::string module = p.name.substr(std::strlen("base_model.model."), p.name.size() - std::strlen("base_model.model.") - 6);
    const bool input_scaled = p.tensor.dim(0) == 1;
    const float* l = p.tensor.data<float>();
    for (const char* suffix : {".weight", ".bias"}) {
      auto it = weights.find(module + suffix);
      if (it == weights.end()) continue;
      Tensor w = it->second;
      saved.emplace_back(w, w.clone());
      float* v = w.data<float>();
      if (w.ndim() == 1) {  // bias: scaled with the output, untouched by an input scaling
        if (!input_scaled)
          for (std::int64_t o = 0; o < w.dim(0); ++o) v[o] *= l[o];
      } else {
        for (std::int64_t o = 0; o < w.dim(0); ++o)
          for (std::int64_t k = 0; k < w.dim(1); ++k) v[o * w.dim(1) + k] *= input_scaled ? l[k] : l[o];
      }
    }
  }
  const Tensor reference = hidden(backbone, nullptr, batch);
  for (auto& [w, copy] : saved) std::memcpy(w.raw(), copy.raw(), w.nbytes());
  EXPECT_TRUE(weight_bytes(backbone) == before);

  const double scale = std::sqrt(ops::mean(ops::mul(reference, reference)).item());
  EXPECT_LT(max_abs_diff(adapted, reference), 1e-4 * std::max(1.0, scale)) << config;
  const double effect = max_abs_diff(adapted, hidden(backbone, nullptr, batch));
  std::printf("%s %s: |adapted - scaled weights| %.2e, |adapted - bare| %.2e (rms %.2e)\n", backbone.info().architecture.c_str(),
              config.empty() ? "{}" : config.c_str(), max_abs_diff(adapted, reference), effect, scale);
  EXPECT_GT(effect, 1e-2 * scale) << "the vectors had no effect";
}

TEST(SdkIa3, ScalingsEqualScaledFrozenWeights) {
  expect_equals_scaled_weights(*minilm().model, dev_batch(), "");
  expect_equals_scaled_weights(*minilm().model, dev_batch(),
                               R"({"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"]})");
  auto& llama = tiny_llama();
  ASSERT_EQ(llama.model->info().architecture, "llama");
  const Tensor ids = Tensor::from_ints({1, 5, 9, 3, 7, 2, 8, 4, 6, 5, 3, 1}, {2, 6});
  expect_equals_scaled_weights(*llama.model, Batch{ids, Tensor(), Tensor()}, "");
}

// Adapters made by Hugging Face PEFT 0.10 (tests/sdk/make_peft_ia3_fixtures.py), loaded as
// PEFT folders: PEFT's BERT default (the input of both "output.dense" layers scaled, by
// the extra matmul) and its LLaMA default (down_proj's input scaled, at up_proj) give
// PEFT's outputs.
Tensor fixture_tensor(const nlohmann::json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  if (j.at("dtype") == "i64") return Tensor::from_ints(j.at("data").get<std::vector<std::int64_t>>(), shape);
  return Tensor::from_floats(j.at("data").get<std::vector<float>>(), shape);
}

TEST(SdkIa3, LoadsPeftAdaptersWithPeftsOutputs) {
  const fs::path fixtures = fs::path(GRAFT_SOURCE_DIR) / "tests" / "sdk" / "peft_ia3";
  for (const char* name : {"tiny_bert", "tiny_llama"}) {
    auto& model = name == std::string("tiny_bert") ? tiny_bert() : tiny_llama();
    const fs::path folder = fixtures / (std::string(name) + "_ia3");
    const auto ref = nlohmann::json::parse(std::ifstream(folder / "reference.json"));
    Batch batch{fixture_tensor(ref.at("input_ids")), Tensor(), Tensor()};
    if (ref.contains("attention_mask")) batch.attention_mask = fixture_tensor(ref.at("attention_mask"));
    if (ref.contains("token_type_ids")) batch.token_type_ids = fixture_tensor(ref.at("token_type_ids"));
    AdapterSet set(*model.model);
    load_adapter(folder, set, "peft", registry(), *model.model, nullptr);
    Tensor out = hidden(*model.model, &set, batch);
    const char* key = ref.contains("logits") ? "logits" : "last_hidden_state";
    if (ref.contains("logits")) {
      NoGradGuard no_grad;
      out = model.model->lm_logits(out);
    }
    const double diff = max_abs_diff(out, fixture_tensor(ref.at(key)));
    std::printf("%s: |graft - PEFT| %.2e (the adapter moves %s by up to %.2f)\n", folder.filename().c_str(), diff, key,
                ref.at("max_abs_change_from_bare").get<double>());
    EXPECT_LT(diff, ref.at("tolerance").at("f32_abs").get<double>()) << name;
  }
}

// Exported merged (train/merged_export, graft export --merged), PEFT's (IA)³ adapters fold
// as PEFT's IA3 merge does: output scalings into W's rows and the bias (BERT's key and
// value have one), input scalings into W's columns, and on LLaMA down_proj's vector
// into up_proj's rows. The exported folder, loaded as a plain backbone, gives PEFT's
// outputs with the adapter and graft's with it attached.
TEST(SdkIa3, ExportedMergedCheckpointsGivePeftsOutputs) {
  const fs::path fixtures = fs::path(GRAFT_SOURCE_DIR) / "tests" / "sdk" / "peft_ia3";
  for (const char* name : {"tiny_bert", "tiny_llama"}) {
    SCOPED_TRACE(name);
    auto& model = name == std::string("tiny_bert") ? tiny_bert() : tiny_llama();
    const Backbone& b = *model.model;
    const fs::path folder = fixtures / (std::string(name) + "_ia3");
    const auto ref = nlohmann::json::parse(std::ifstream(folder / "reference.json"));
    Batch batch{fixture_tensor(ref.at("input_ids")), Tensor(), Tensor()};
    if (ref.contains("attention_mask")) batch.attention_mask = fixture_tensor(ref.at("attention_mask"));
    if (ref.contains("token_type_ids")) batch.token_type_ids = fixture_tensor(ref.at("token_type_ids"));
    const char* key = ref.contains("logits") ? "logits" : "last_hidden_state";
    auto outputs = [&](const Backbone& backbone, AdapterSet* set) {
      Tensor out = hidden(backbone, set, batch);
      NoGradGuard no_grad;
      return ref.contains("logits") ? backbone.lm_logits(out) : out;
    };
    AdapterSet set(b);
    load_adapter(folder, set, "peft", registry(), b, nullptr);
    const Tensor attached = outputs(b, &set);
    const auto before = weight_bytes(b);
    TempFolder tmp("ia3_export");
    const MergedExport r = export_merged(tmp.path / "merged", set, "peft", b);
    EXPECT_TRUE(weight_bytes(b) == before);
    std::set<std::string> changed(r.changed.begin(), r.changed.end());
    if (name == std::string("tiny_bert")) {
      // Keys and values scale their outputs: rows and bias; output.dense (both) its input: columns only.
      EXPECT_TRUE(changed.count("encoder.layer.0.attention.self.key.bias"));
      EXPECT_TRUE(changed.count("encoder.layer.1.attention.self.value.bias"));
      EXPECT_TRUE(changed.count("encoder.layer.0.output.dense.weight"));
      EXPECT_FALSE(changed.count("encoder.layer.0.output.dense.bias"));
      EXPECT_EQ(changed.size(), 2u * (2 + 2 + 2));  // per layer: key w+b, value w+b, the two output.dense weights
    } else {
      EXPECT_TRUE(changed.count("model.layers.0.mlp.up_proj.weight"));  // down_proj's vector, folded at up_proj
      EXPECT_EQ(changed.size(), 2u * 3);
    }
    model::LoadedBackbone plain = model::load_backbone(tmp.path / "merged");
    const Tensor exported = outputs(*plain.model, nullptr);
    const double vs_attached = max_abs_diff(exported, attached), vs_peft = max_abs_diff(exported, fixture_tensor(ref.at(key)));
    std::printf("%s (IA)³ export: |export - attached| %.2e, |export - PEFT| %.2e\n", name, vs_attached, vs_peft);
    EXPECT_LT(vs_attached, 1e-4);
    EXPECT_LT(vs_peft, 1e-4);
  }
}

// On LLaMA the defaults are PEFT's own LLaMA defaults, and adapter_config.json says so in
// PEFT's words; a feedforward module outside target_modules is refused, as PEFT does.
TEST(SdkIa3, WritesPeftConfigAndRefusesFeedforwardOutsideTargets) {
  auto& llama = tiny_llama();
  auto set = attach_ia3(*llama.model);
  const auto config = nlohmann::json::parse(set->method("task").adapter_config_json());
  EXPECT_EQ(config.at("peft_type"), "IA3");
  EXPECT_EQ(config.at("target_modules"), nlohmann::json({"k_proj", "v_proj", "down_proj"}));
  EXPECT_EQ(config.at("feedforward_modules"), nlohmann::json({"down_proj"}));
  EXPECT_EQ(config.at("init_ia3_weights"), true);
  const auto params = set->method("task").parameters();
  ASSERT_EQ(params.size(), 3u * static_cast<std::size_t>(llama.model->info().num_layers));
  EXPECT_EQ(params[2].name, "base_model.model.model.layers.0.mlp.down_proj.ia3_l");
  EXPECT_EQ(params[2].tensor.shape(), (Shape{1, llama.model->info().intermediate_size}));

  AdapterSet other(*llama.model);
  EXPECT_THROW(attach_method(other, registry(), "bad", "ia3", R"({"target_modules": ["key"], "feedforward_modules": ["ffn.down"]})",
                             "test config", 0),
               ConfigError);
  EXPECT_THROW(attach_method(other, registry(), "bad", "ia3", R"({"target_modules": ["nothing_named_so"]})", "test config", 0),
               ConfigError);
  EXPECT_FALSE(other.contains("bad"));
}

TEST(SdkIa3, TrainsWithAHeadOnSst2AndLeavesTheBackboneAlone) {
  auto& model = minilm();
  const auto train_rows = sst2(*model.tokenizer, "train", 0, 128, 16);
  auto set = attach_ia3(*model.model);
  TaskHead head({TaskKind::classification, 2, Pooling::mean, 0.1f}, *model.model, 7);
  const auto before_weights = weight_bytes(*model.model);
  const Tensor before_hidden = hidden(*model.model, set.get(), dev_batch());
  const Evaluation before = evaluate(*model.model, set.get(), head, train_rows);

  const auto t0 = std::chrono::steady_clock::now();
  const auto losses = train(*model.model, set.get(), head, train_rows, 16, 1e-2f);  // two passes over the rows
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Evaluation after = evaluate(*model.model, set.get(), head, train_rows);
  std::printf("ia3 + head, %zu steps of 16 rows in %.1f s: loss on those rows %.3f -> %.3f, accuracy %.3f -> %.3f\n",
              losses.size(), seconds, before.loss, after.loss, before.accuracy, after.accuracy);
  EXPECT_LT(after.loss, 0.75 * before.loss);

  double moved = 0;
  for (const auto& p : parameters_of(*set))
    for (float v : p.tensor.to_floats()) moved = std::max(moved, static_cast<double>(std::fabs(v - 1.f)));
  EXPECT_GT(moved, 1e-3) << "the (IA)³ vectors did not train";
  EXPECT_TRUE(weight_bytes(*model.model) == before_weights) << "the frozen backbone changed";
  const Tensor trained = hidden(*model.model, set.get(), dev_batch());
  EXPECT_FALSE(same_bits(trained, before_hidden));

  // Per-row selection: rows without the adapter are the bare backbone's to the bit, rows
  // with it are the adapter's.
  const Tensor bare = hidden(*model.model, nullptr, dev_batch());
  std::vector<std::string> rows(static_cast<std::size_t>(trained.dim(0)));
  for (std::size_t r = 0; r < rows.size(); ++r) rows[r] = r % 2 ? "task" : "";
  const Selection per_row = Selection::per_row(rows);
  const Tensor mixed = hidden(*model.model, set.get(), dev_batch(), &per_row);
  for (std::int64_t r = 0; r < trained.dim(0); ++r) {
    if (r % 2) EXPECT_LT(max_abs_diff(row(mixed, r), row(trained, r)), 1e-4) << "row " << r;
    else EXPECT_TRUE(same_bits(row(mixed, r), row(bare, r))) << "row " << r;
  }

  // Saved as PEFT saves IA3, and loaded back: by graft's manifest, and as a folder PEFT
  // wrote (adapter_config.json + adapter_model.safetensors only).
  const fs::path root = fs::temp_directory_path() / fmt::format("graft_sdk_ia3_{}", ::getpid());
  fs::remove_all(root);
  fs::create_directories(root);
  save_adapter(root / "adapter", *set, "task", *model.model, &head);
  const auto config = nlohmann::json::parse(std::ifstream(root / "adapter" / "adapter_config.json"));
  EXPECT_EQ(config.at("peft_type"), "IA3");
  std::printf("adapter_config.json: target_modules %s, feedforward_modules %s\n", config.at("target_modules").dump().c_str(),
              config.at("feedforward_modules").dump().c_str());
  const auto st = io::SafetensorsFile::open(root / "adapter" / "adapter_model.safetensors");
  EXPECT_EQ(st.tensors().size(), 18u);
  EXPECT_EQ(st.get("base_model.model.encoder.layer.5.output.dense.ia3_l").shape(), (Shape{1, model.model->info().intermediate_size}));

  fs::create_directories(root / "peft");
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"}) fs::copy_file(root / "adapter" / f, root / "peft" / f);
  for (const char* folder : {"adapter", "peft"}) {
    AdapterSet loaded(*model.model);
    std::unique_ptr<TaskHead> loaded_head;
    load_adapter(root / folder, loaded, "task", registry(), *model.model, &loaded_head);
    EXPECT_TRUE(same_bits(hidden(*model.model, &loaded, dev_batch()), trained)) << folder;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace graft::testing
