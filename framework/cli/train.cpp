// graft train --backbone B --task T --method M [--config C] --output DIR [budget options]
// Trains one method on one task; writes DIR/best (the best model on the dev set, as an
// adapter folder), DIR/checkpoint (resumable), DIR/log.jsonl and DIR/results.json.
// Rerunning the same command after an interruption resumes from DIR/checkpoint.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "cli/task_options.h"
#include "graft/error.h"
#include "io/atomic_file.h"
#include "train/adapter_io.h"
#include "model/backbone_registry.h"
#include "train/trainer.h"

namespace graft::cli {
namespace fs = std::filesystem;

namespace {

std::uintmax_t folder_bytes(const fs::path& dir) {
  std::uintmax_t total = 0;
  if (fs::exists(dir))
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) total += e.file_size();
  return total;
}

nn::ScheduleConfig::Decay parse_decay(const std::string& name) {
  if (name == "linear") return nn::ScheduleConfig::Decay::linear;
  if (name == "cosine") return nn::ScheduleConfig::Decay::cosine;
  if (name == "constant") return nn::ScheduleConfig::Decay::constant;
  throw ConfigError("train", fmt::format("unknown schedule '{}'", name), "use linear, cosine or constant");
}

}  // namespace

std::vector<OptionSpec> train_option_specs() {
  std::vector<OptionSpec> specs = task_option_specs();
  const std::vector<OptionSpec> more = {
      {.name = "backbone", .help = "model folder or llama2.c .bin", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
      dtype_option(),
      {.name = "method", .help = "plugin name, pfeiffer, head or full", .example = "lora", .required = true},
      {.name = "config", .help = "method config: JSON or @file", .example = "@lora.json", .default_note = "the method's defaults"},
      plugin_dir_option(),
      {.name = "output", .help = "run folder", .example = "runs/sst2-lora", .required = true},
      {.name = "epochs", .help = "passes over the training set", .value = "3", .example = "10"},
      {.name = "max-steps", .help = "optimiser steps (overrides epochs)", .example = "500", .default_note = "none: --epochs decides"},
      {.name = "batch-size", .help = "rows per micro-batch", .value = "32", .example = "16"},
      {.name = "grad-accum", .help = "micro-batches per step", .value = "1", .example = "4"},
      max_length_option(),
      {.name = "lr", .help = "peak learning rate", .example = "3e-4", .default_note = default_lr_note()},
      {.name = "weight-decay", .help = "AdamW decoupled weight decay", .value = "0", .example = "0.01"},
      {.name = "warmup", .help = "warm-up fraction of the steps", .value = "0.06", .example = "0.1"},
      {.name = "schedule", .help = "decay after warm-up: linear, cosine or constant", .value = "linear", .example = "cosine"},
      {.name = "max-grad-norm", .help = "clip the global gradient norm (0: off)", .value = "1", .example = "0.5"},
      {.name = "seed", .help = "seed of initialisation, data order and dropout", .value = "42", .example = "7"},
      {.name = "eval-every", .help = "steps between evaluations", .example = "100", .default_note = "each epoch"},
      {.name = "save-every", .help = "steps between resumable checkpoints", .example = "500", .default_note = "each evaluation"},
      {.name = "no-progress", .takes_value = false, .help = "no progress line"}};
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

int cmd_train(const std::vector<std::string>& argv) {
  const Args args("train", argv, train_option_specs());
  const std::string method = args.require("method");
  const MethodConfig user = method_config(args);
  const MethodChoice choice = resolve_method(method, user.json, user.origin);
  const fs::path output = args.require("output");
  const TaskData task = load_task(args);
  auto loaded = model::load_backbone(args.require("backbone"), model::parse_dtype(args.get("dtype")));
  if (!loaded.tokenizer) throw ConfigError("train", "the backbone has no tokenizer graft can read");
  const Backbone& backbone = *loaded.model;
  const auto seed = static_cast<std::uint64_t>(args.integer("seed", 0, INT64_MAX));

  TaskHead head(head_for(task.train, backbone, args), backbone, seed);
  AdapterSet adapters(backbone);
  const text::Tokenizer* tokenizer = loaded.tokenizer.get();
  adapters.set_tokenizer([tokenizer](const std::string& text) { return tokenizer->encode(text).ids; });
  const plugin::PluginRegistry plugins = load_plugins(args);
  train::TrainTarget target;
  ActiveAdapters hooks = adapters.bind(Selection::none());
  target.backbone = &backbone;
  target.head = &head;
  if (choice.plugin == kFullFineTuning) {
    if (backbone.info().dtype != DType::f32)
      throw ConfigError("train", "full fine-tuning needs f32 weights", "drop --dtype bf16 for the full baseline");
    for (auto& p : backbone.parameters()) {
      Tensor t = p.tensor;
      t.set_requires_grad(true);
      target.parameters.push_back({"backbone." + p.name, t});
    }
    target.export_best = [&](const fs::path& dir) { save_baseline(dir, kFullFineTuning, backbone, head); };
  } else if (choice.plugin == kHeadOnly) {
    target.export_best = [&](const fs::path& dir) { save_baseline(dir, kHeadOnly, backbone, head); };
  } else {
    attach_method(adapters, plugins, "task", choice.plugin, choice.config_json, choice.origin, seed);
    hooks = adapters.bind(Selection::one("task"));
    target.hooks = &hooks;
    target.parameters = adapters.parameters(Selection::one("task"));
    target.export_best = [&](const fs::path& dir) { save_adapter(dir, adapters, "task", backbone, &head); };
  }
  for (const auto& p : head.parameters()) target.parameters.push_back({"head." + p.name, p.tensor});

  using L = train::TrainLimits;
  train::TrainConfig config;
  config.epochs = args.integer("epochs", 1, L::max_epochs);
  config.max_steps = args.integer("max-steps", 0, 1, L::max_steps);
  config.batch_size = args.count("batch-size", L::max_batch_size);
  config.grad_accumulation = args.count("grad-accum", L::max_grad_accumulation);
  config.max_length = capped_max_length(args, backbone);
  config.lr = static_cast<float>(args.number("lr", default_lr(method), 1e-12, L::max_lr));
  config.weight_decay = static_cast<float>(args.number("weight-decay", 0, L::max_weight_decay));
  config.warmup_ratio = static_cast<float>(args.number("warmup", 0, 1));
  config.decay = parse_decay(args.get("schedule"));
  config.max_grad_norm = static_cast<float>(args.number("max-grad-norm", 0, L::max_grad_norm));
  config.seed = seed;
  config.eval_every = args.integer("eval-every", 0, 1, L::max_steps);
  config.save_every = args.integer("save-every", 0, 1, L::max_steps);
  config.output = output;
  config.progress = !args.has("no-progress");
  config.label = method;

  std::int64_t trainable = 0;
  for (const auto& p : target.parameters) trainable += p.tensor.numel();
  const std::int64_t total = backbone.info().parameter_count;
  fmt::print(stderr, "{} on {} ({} train / {} dev rows): {} trainable parameters ({:.3f}% of {})\n", method, task.train.task,
             task.train.examples.size(), task.dev.examples.size(), trainable, 100.0 * trainable / total, total);
  if (target.hooks) fmt::print(stderr, "  {}\n", adapters.describe("task"));

  const train::TrainResult r = train::train_model(config, target, task.train, task.dev, *loaded.tokenizer);
  nlohmann::json results = {
      {"method", method},
      {"plugin", choice.plugin},
      {"config", choice.config_json.empty() ? nlohmann::json::object() : nlohmann::json::parse(choice.config_json)},
      {"task", task.train.task},
      {"backbone", backbone.info().source},
      {"train_rows", task.train.examples.size()},
      {"dev_rows", task.dev.examples.size()},
      {"trainable_parameters", trainable},
      {"backbone_parameters", total},
      {"trainable_percent", 100.0 * trainable / total},
      {"headline", r.best.headline},
      {"best", r.best.values},
      {"best_step", r.best_step},
      {"last", r.last.values},
      {"steps", r.steps},
      {"lr", config.lr},
      {"seed", seed},
      {"train_seconds", r.seconds},
      {"tokens_per_second", r.tokens_per_second},
      {"peak_memory_mib", train::peak_memory_mib()},
      {"adapter_bytes", folder_bytes(output / "best")},
      {"resumed", r.resumed}};
  io::write_file_atomic(output / "results.json", results.dump(2) + "\n");
  fmt::print("{}: best dev {} {:.4f} at step {} ({} steps, {:.0f} s); saved to {}\n", method, r.best.headline, r.best.score(),
             r.best_step, r.steps, r.seconds, (output / "best").string());
  return 0;
}

}  // namespace graft::cli
