// Shared by the PEFT method tests: the real and tiny backbones, the plugins of the
// build tree, attaching a method, real data as tokenised batches, and a short training
// run with an evaluation on held-out rows.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/batching.h"
#include "graft/backbone.h"
#include "peft/adapter_set.h"
#include "train/task_head.h"
#include "plugin/loader.h"
#include "model/backbone_registry.h"

namespace graft::testing {

// The plugins found on graft's default search path (the build tree's plugins/).
const plugin::PluginRegistry& plugins();

// Loaded once per test binary: all-MiniLM-L6-v2 (fails with a hint if `make models`
// has not run), stories260K, and the tiny random HF BERT and LLaMA fixtures.
model::LoadedBackbone& minilm();
// Where they are (for graft::Session and the CLI).
std::filesystem::path minilm_path();
std::filesystem::path stories260k_path();
model::LoadedBackbone& stories260k();
model::LoadedBackbone& tiny_bert();
model::LoadedBackbone& tiny_llama();

// Every frozen weight's bytes, to prove training left the backbone untouched.
std::vector<std::vector<std::uint8_t>> weight_bytes(const Backbone& backbone);

// A fresh adapter set on `backbone` with `method` attached as "task".
std::unique_ptr<AdapterSet> attach(const Backbone& backbone, const std::string& method, const std::string& config_json,
                                   std::uint64_t seed = 0);

// What the hooks at some sites were last called with.
struct HookCalls {
  std::map<std::string, LinearCall> linear;
  std::map<std::string, SublayerCall> sublayer;
};
// Attaches under `name` a method that changes nothing and records, at the sites named,
// what its hooks receive: stacked after another adapter, what that adapter returned.
void attach_recorder(AdapterSet& set, const std::string& name, const std::vector<std::string>& sites, HookCalls& calls);

// Every adapter attached to `set` (name order): what a test that attached one runs with.
Selection all_attached(const AdapterSet& set);
std::vector<nn::NamedParameter> parameters_of(const AdapterSet& set);
// backbone.forward for one call with `selection` (default: all_attached) bound on
// `set`; a null `set` runs the bare backbone.
Tensor forward_with(const Backbone& backbone, const AdapterSet* set, const Batch& batch, bool training = false,
                    Tensor* mask_out = nullptr, const Selection* selection = nullptr);

// Two rows of ids (mod `vocab`), the second padded: masking must hold with an adapter.
Batch two_row_batch(std::int64_t vocab);
// Every parameter of `set` set to uniform [-scale, scale) values (streams from `seed`
// on): replaces near-identity inits with values that exercise every path.
void randomize(const AdapterSet& set, float scale, std::uint64_t seed);
// max |a - b| over two tensors of the same size (a failure when they differ in size).
double max_abs_diff(const Tensor& a, const Tensor& b);

// SST-2 (../shared/data/glue/SST-2) rows [first, first+count) of `split` ("train"/"dev").
data::Dataset sst2_rows(const std::string& split, std::size_t first, std::size_t count);

// Batches of real rows with their labels (data::LabeledBatch: .batch, .labels).
using LabeledBatches = std::vector<data::LabeledBatch>;
// SST-2 (../shared/data/glue/SST-2) rows [first, first+count) of `split` ("train"/"dev").
LabeledBatches sst2(const text::Tokenizer& tokenizer, const std::string& split, std::size_t first, std::size_t count,
                    std::size_t batch_size, std::size_t max_length = 64);
// SST-2 sentences as text for causal LM (a movie-review domain the stories model has
// not seen): labels are the ids themselves.
LabeledBatches sst2_text(const text::Tokenizer& tokenizer, const std::string& split, std::size_t first, std::size_t count,
                         std::size_t batch_size, std::size_t max_length = 48);

struct Evaluation {
  double loss = 0;      // mean per row (per predicted token for causal LM)
  double accuracy = 0;  // classification only
};
// Held-out loss (and accuracy) of backbone + every attached adapter + head, no
// gradients, as train::evaluate scores it (`adapters` null: the bare backbone).
Evaluation evaluate(const Backbone& backbone, const AdapterSet* adapters, const TaskHead& head, const LabeledBatches& data);
// `steps` AdamW steps (cycling over the batches) on the attached adapters' parameters
// and the head's; returns the training loss of each step.
std::vector<double> train(const Backbone& backbone, const AdapterSet* adapters, TaskHead& head, const LabeledBatches& data,
                          int steps, float lr, std::uint64_t seed = 0);

// The check every method's tests make: a short training run on real data, scored on
// held-out rows before and after, with proof that the frozen backbone did not change.
struct LearningSetup {
  std::string method, config_json;  // config "" = the method's defaults
  int steps = 40;
  float lr = 1e-3f;
  std::uint64_t seed = 1;  // adapter init, head init and batch order
};
struct LearningRun {
  Evaluation bare;                // the backbone and head alone (no adapter selected)
  Evaluation before, after;       // with the adapter, untrained and trained
  double first_loss = 0, last_loss = 0;  // training loss, means of the first and last 5 steps
  double seconds = 0;
  bool backbone_unchanged = false;
};
// MiniLM + classification head (mean pooling, dropout 0.1) on SST-2: 256 training
// rows in batches of 16, 256 dev rows.
LearningRun learn_sst2(const LearningSetup& setup);
// stories260K + causal-LM head on SST-2 sentences (a domain the model has not seen):
// 256 training rows in batches of 16, 128 held-out rows.
LearningRun learn_stories(const LearningSetup& setup);

}  // namespace graft::testing
