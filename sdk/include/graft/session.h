// graft as a library: one Session owns one frozen backbone (and its tokenizer) and any
// number of named adapters, and is the one place a run is assembled. The CLI, the
// server and the Python module are front ends on it.
//
//   graft::Session s(".cache/models/all-MiniLM-L6-v2");
//   s.add_adapter("sst2", "lora", R"({"r": 8})");
//   s.train("sst2", train_rows, dev_rows, {.epochs = 1, .output = "runs/sst2"});
//   auto p = s.predict({{"a gripping film"}}, graft::Selection::one("sst2"));
//
// Which adapters a call uses is the Selection passed with it, never state on the
// session: inference calls (forward, predict, embed, generate, evaluate) may run
// concurrently from several threads with different selections. Calls that change the
// adapters (add, load, unload, add_head, train) wait for the calls in flight and run
// alone, so adapters can be loaded and unloaded while others serve requests.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/backbone.h"
#include "graft/dataset.h"
#include "graft/merge.h"
#include "graft/scores.h"
#include "graft/selection.h"
#include "graft/task.h"

namespace graft {

struct SessionOptions {
  DType dtype = DType::f32;  // how the frozen weights are held (bf16 halves them)
  // Searched first for plugins, before GRAFT_PLUGIN_PATH, the build tree and the install prefix.
  std::vector<std::filesystem::path> plugin_dirs;
};

// One adapter of the session, as `graft info` and the server describe it.
struct AdapterInfo {
  std::string name;
  std::string method;       // plugin name, or the built-in "head" / "full"
  std::string config_json;  // the validated config it was created with ("" = defaults)
  std::string description;  // the method's one line (sites, parameter count)
  std::int64_t trainable_parameters = 0;  // the method's, without the head
  std::optional<HeadConfig> head;         // its task head, once made, trained or loaded
  std::int64_t head_parameters = 0;
  std::filesystem::path source;  // the folder it was loaded from; empty when added
  float default_lr = 0;           // what it trains well at: its plugin's metadata, else 1e-3
};

// Where a training run is: passed to TrainOptions::on_progress after every step and
// every evaluation.
struct TrainProgress {
  std::int64_t step = 0, total_steps = 0;
  double loss = 0, lr = 0, tokens_per_second = 0;
  const Scores* evaluation = nullptr;  // set right after an evaluation on the dev set
};

struct TrainOptions {
  std::int64_t epochs = 3;
  std::int64_t max_steps = 0;  // > 0: this many optimiser steps, whatever the epochs
  std::size_t batch_size = 32;
  std::size_t grad_accumulation = 1;
  std::size_t max_length = 128;  // capped at what the backbone can place
  float lr = 0;                  // 0: the method's default (AdapterInfo::default_lr)
  float weight_decay = 0, warmup_ratio = 0.06f, max_grad_norm = 1;
  std::string schedule = "linear";  // linear, cosine or constant decay
  std::uint64_t seed = 42;
  std::int64_t eval_every = 0;  // steps; 0: at the end of every epoch
  std::int64_t save_every = 0;  // steps between resumable checkpoints; 0: at every evaluation
  // Early stopping: end the run after this many evaluations in a row without a better dev
  // score; the best evaluation's adapter is the one kept. 0: the whole budget runs.
  std::int64_t patience = 0;
  // The run folder: best/ (an adapter folder), checkpoint/ (resumable), log.jsonl. A run
  // started again with the same folder resumes.
  std::filesystem::path output;
  std::optional<Pooling> pooling;  // default: mean for encoders, last token for decoders
  bool progress_line = true;       // the live progress line on stderr
  std::string label;               // shown on the progress line; default: the method
  std::function<void(const TrainProgress&)> on_progress;
  // Asked at every step boundary (after on_progress): true stops the run there, after
  // writing the resumable checkpoint, so the same call with the same output resumes.
  std::function<bool()> should_stop;
  // The composition to train through (docs/composition.md), e.g. stack(lang, task) or
  // fuse(a, b, c) (trains the fusion over them); it must run the trained adapter, and
  // every other adapter in it stays frozen. None: the adapter alone.
  Selection compose;
};

// One dev evaluation of a run, a point of its learning curve.
struct EvalPoint {
  std::int64_t step = 0;
  double train_loss = 0;  // mean training loss over the steps since the previous evaluation
  Scores scores;
};

struct TrainSummary {
  Scores best, last;
  std::vector<EvalPoint> evals;  // every evaluation in order, those before a resume included
  std::int64_t best_step = 0, steps = 0;
  double seconds = 0, tokens_per_second = 0, peak_memory_mib = 0;
  bool resumed = false;
  bool stopped = false;  // should_stop ended the run early (checkpoint written, no final evaluation)
  bool early_stopped = false;     // patience ran out before the budget did
  bool already_finished = false;  // output held a finished run: nothing was trained or evaluated now
  float lr = 0;
  std::int64_t trainable_parameters = 0;  // the adapter's and the head's
  std::filesystem::path best_folder;      // output/best
};

struct EvalOptions {
  std::size_t batch_size = 32;
  std::size_t max_length = 128;  // capped at what the backbone can place
};

// One row to predict: a text, or a pair.
struct TextInput {
  std::string text;
  std::optional<std::string> pair;
};
struct Prediction {
  std::int64_t label = -1;  // classification: the class index
  double value = 0;         // regression: the prediction; classification: = label
  std::vector<float> probabilities;  // classification: softmax over the classes; regression: empty
};

struct EmbedOptions {
  std::optional<Pooling> pooling;   // default: the folder's sentence-transformers pooling, else mean
  bool normalize = true;            // L2-normalise, as sentence-transformers does
  std::optional<std::size_t> max_length;  // default: the folder's max_seq_length, else the model's
};

struct GenerateOptions {
  std::int64_t max_new_tokens = 128;
  float temperature = 0;  // 0: greedy
  float top_p = 1;        // nucleus mass in (0, 1]
  std::uint64_t seed = 0;
};

// What Session::export_merged wrote.
struct ExportSummary {
  std::filesystem::path folder;
  std::string method;                 // the adapter's method
  std::string weights_dtype;          // of the merged weights: F32, F16 or BF16 (the checkpoint's)
  std::vector<std::string> changed;   // tensors the merge changed
  std::size_t tensors = 0;            // tensors in model.safetensors
  std::vector<std::string> files;     // config, tokenizer and sentence-transformers files copied
  std::vector<std::string> notes;     // what the checkpoint leaves out (the adapter's task head)
};

class Session {
 public:
  // Loads a Hugging Face model folder or a llama2.c checkpoint (and its tokenizer), and
  // scans the plugin search path.
  explicit Session(const std::filesystem::path& backbone, SessionOptions options = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  const BackboneInfo& backbone_info() const;
  const std::vector<Site>& sites() const;
  bool has_tokenizer() const;
  // "wordpiece, 30522 tokens"; "" when the backbone has no tokenizer graft can read.
  std::string tokenizer_summary() const;
  // What the plugin scan found worth a warning (a name two plugins claim). Plugins are
  // scanned when an adapter first needs one.
  const std::vector<std::string>& warnings() const;

  // ---- adapters -------------------------------------------------------------------
  // Attaches a new adapter: a plugin by name (or an alias such as "pfeiffer"), or the
  // built-in "head" (a task head only) and "full" (every backbone weight trained).
  // `config_json` is validated against the plugin's schema; `origin` names it in errors.
  void add_adapter(const std::string& name, const std::string& method, const std::string& config_json = "",
                   std::uint64_t seed = 42, const std::string& origin = "config");
  // An adapter folder (graft's, or Hugging Face PEFT's), with its head if it has one.
  void load_adapter(const std::string& name, const std::filesystem::path& folder);
  // Writes the adapter (and its head) as a folder, atomically.
  void save_adapter(const std::string& name, const std::filesystem::path& folder) const;
  void unload_adapter(const std::string& name);
  // A new adapter `name` merged from loaded adapters (name, weight), as PEFT's
  // add_weighted_adapter (LoRA, DoRA) or AdapterHub's average_adapter (bottleneck
  // adapters) computes it (graft/merge.h; docs/composition.md). The inputs stay loaded;
  // save the result with save_adapter. It has no task head unless options.head names
  // an input whose head it copies.
  void merge_adapters(const std::string& name, const std::vector<std::pair<std::string, double>>& adapters,
                      const MergeOptions& options = {});
  // Gives adapter `name` the task head `data` needs (classes from its labels; pooling
  // by default mean for encoders, last token for decoders), unless it has one; train()
  // does this itself.
  HeadConfig add_head(const std::string& name, const data::Dataset& data, std::optional<Pooling> pooling = std::nullopt);
  std::vector<std::string> adapter_names() const;
  AdapterInfo adapter(const std::string& name) const;

  // Writes a new Hugging Face model folder `folder` (config.json, model.safetensors with
  // every tensor of the backbone's checkpoint in its dtype, tokenizer and
  // sentence-transformers files) in which adapter `name` is folded into the weights:
  // transformers' AutoModel and a graft Session on `folder` compute, with no adapter,
  // what this session computes with it. LoRA, DoRA and (IA)³ fold; a method with a site
  // that does not (prefix and prompt tuning, bottleneck adapters) is refused naming it.
  // The task head is not part of the checkpoint (see ExportSummary::notes). The backbone
  // is unchanged afterwards. Waits for the calls in flight and runs alone.
  ExportSummary export_merged(const std::string& name, const std::filesystem::path& folder);

  // ---- inference (safe to call concurrently) ------------------------------------------
  // Final hidden states [B, T', hidden] of `texts` (padded to the longest).
  Tensor forward(const std::vector<std::string>& texts, const Selection& selection = {}) const;
  // Through each row's task head: with a stack, the last adapter that has a head; per
  // row, each row's adapter's head (rows on the bare backbone have none: an error).
  std::vector<Prediction> predict(const std::vector<TextInput>& rows, const Selection& selection,
                                  const EvalOptions& options = {}) const;
  // Pooled sentence embeddings [rows][hidden].
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts, const Selection& selection = {},
                                        const EmbedOptions& options = {}) const;
  // Continues `prompt` (decoders); `on_text` receives each new piece of text as it is made.
  std::string generate(const std::string& prompt, const Selection& selection = {}, const GenerateOptions& options = {},
                       const std::function<void(const std::string&)>& on_text = {}) const;
  // Dev-set metrics of the selection's head (as predict picks it) on `dev`.
  Scores evaluate(const data::Dataset& dev, const Selection& selection, const EvalOptions& options = {}) const;
  // How many tokens `row` is, special tokens included, before any truncation: what a
  // server checks against its input limit and reports as usage.
  std::size_t count_tokens(const TextInput& row) const;

  // ---- training ---------------------------------------------------------------------
  // Trains adapter `name` (and a task head made for `train_data`, unless it has one) on
  // `train_data`, keeping the best on `dev_data` in options.output/best.
  TrainSummary train(const std::string& name, const data::Dataset& train_data, const data::Dataset& dev_data,
                     const TrainOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};


}  // namespace graft
