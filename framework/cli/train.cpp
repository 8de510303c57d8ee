// graft train --backbone B --task T --method M [--config C] --output DIR [budget options]
// Trains one method on one task; writes DIR/best (the best model on the dev set, as an
// adapter folder), DIR/checkpoint (resumable), DIR/log.jsonl and DIR/results.json.
// Rerunning the same command after an interruption resumes from DIR/checkpoint.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/adapter_options.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "cli/task_options.h"
#include "graft/error.h"
#include "io/atomic_file.h"
#include "graft/session.h"
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

}  // namespace

std::vector<OptionSpec> train_option_specs() {
  std::vector<OptionSpec> specs = task_option_specs();
  const std::vector<OptionSpec> more = {
      {.name = "backbone", .help = "model folder or llama2.c .bin", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
      dtype_option(),
      {.name = "method", .help = "plugin name, pfeiffer, head, full, or fusion (over the --adapter folders)", .example = "lora", .required = true},
      adapter_option("a trained adapter to train through (frozen); the new adapter is named task", false),
      compose_option(),
      {.name = "config", .help = "method config: JSON or @file", .example = "@lora.json", .default_note = "the method's defaults"},
      plugin_dir_option(),
      {.name = "output", .help = "run folder", .example = "runs/sst2-lora", .required = true},
      {.name = "epochs", .help = "passes over the training set", .value = "3", .example = "10"},
      {.name = "max-steps", .help = "optimiser steps (overrides epochs)", .example = "500", .default_note = "none: --epochs decides"},
      {.name = "batch-size", .help = "rows per micro-batch", .value = "32", .example = "16"},
      {.name = "grad-accum", .help = "micro-batches per step", .value = "1", .example = "4"},
      max_length_option(),
      {.name = "lr", .help = "peak learning rate", .example = "3e-4",
       .default_note = "the method's default_lr (its plugin's metadata, listed by graft plugins; head 0.005, full 0.0001)"},
      {.name = "lr-scale", .help = "multiplies the learning rate (--lr or the default)", .value = "1", .example = "0.3"},
      {.name = "weight-decay", .help = "AdamW decoupled weight decay", .value = "0", .example = "0.01"},
      {.name = "warmup", .help = "warm-up fraction of the steps", .value = "0.06", .example = "0.1"},
      {.name = "schedule", .help = "decay after warm-up: linear, cosine or constant", .value = "linear", .example = "cosine"},
      {.name = "max-grad-norm", .help = "clip the global gradient norm (0: off)", .value = "1", .example = "0.5"},
      {.name = "seed", .help = "seed of initialisation, data order and dropout", .value = "42", .example = "7"},
      {.name = "eval-every", .help = "steps between evaluations", .example = "100", .default_note = "each epoch"},
      {.name = "save-every", .help = "steps between resumable checkpoints", .example = "500", .default_note = "each evaluation"},
      {.name = "patience", .help = "stop after this many evaluations in a row without a better dev score (the best is kept)",
       .example = "5", .default_note = "0: no early stopping"},
      {.name = "no-progress", .takes_value = false, .help = "no progress line"}};
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

int cmd_train(const std::vector<std::string>& argv) {
  const Args args("train", argv, train_option_specs());
  const std::string method = args.require("method");
  const MethodConfig user = method_config(args);
  const fs::path output = args.require("output");
  const TaskData task = load_task(args);
  Session session = open_session(args);
  const auto seed = static_cast<std::uint64_t>(args.integer("seed", 0, INT64_MAX));
  // Frozen adapters to train through: the new one ("task") stacks on them, or fuses them.
  const std::vector<std::string> frozen = load_adapters(session, args, "frozen");
  Selection through = args.has("compose")              ? Selection::parse(args.get("compose"))
                      : method == "fusion" && !frozen.empty() ? Selection::fuse(frozen)
                      : frozen.empty()                  ? Selection::none()
                                                        : Selection::stack([&] {
                                                            auto names = frozen;
                                                            names.push_back("task");
                                                            return names;
                                                          }());
  std::string config = user.json;
  if (method == "fusion" && config.empty()) {
    if (through.kind() != Selection::Kind::fuse)
      throw ConfigError("train", "--method fusion needs the adapters it fuses",
                        "give them with --adapter NAME=DIR (and --compose 'fuse(a,b)')");
    config = nlohmann::json{{"adapters", through.names()}}.dump();
  }
  with_plugin_warnings(session, [&] { session.add_adapter("task", method, config, seed, user.origin); });
  const AdapterInfo adapter = session.adapter("task");

  using L = train::TrainLimits;
  TrainOptions options;
  options.epochs = args.integer("epochs", 1, L::max_epochs);
  options.max_steps = args.integer("max-steps", 0, 1, L::max_steps);
  options.batch_size = args.count("batch-size", L::max_batch_size);
  options.grad_accumulation = args.count("grad-accum", L::max_grad_accumulation);
  options.max_length = static_cast<std::size_t>(args.integer("max-length", 1, L::max_length));
  const double lr = args.has("lr") ? args.number("lr", 0.0, 1e-12, L::max_lr) : adapter.default_lr;
  options.lr = static_cast<float>(lr * args.number("lr-scale", 1e-6, 1e6));
  if (!(options.lr <= L::max_lr))
    throw ConfigError("train", fmt::format("--lr-scale makes the learning rate {:g}, above {:g}", options.lr, L::max_lr));
  options.weight_decay = static_cast<float>(args.number("weight-decay", 0, L::max_weight_decay));
  options.warmup_ratio = static_cast<float>(args.number("warmup", 0, 1));
  options.schedule = args.get("schedule");
  options.max_grad_norm = static_cast<float>(args.number("max-grad-norm", 0, L::max_grad_norm));
  options.seed = seed;
  options.eval_every = args.integer("eval-every", 0, 1, L::max_steps);
  options.save_every = args.integer("save-every", 0, 1, L::max_steps);
  options.patience = args.integer("patience", 0, 0, L::max_patience);
  options.output = output;
  if (args.has("pooling")) options.pooling = parse_pooling(args.get("pooling"));
  options.progress_line = !args.has("no-progress");
  options.label = method;
  options.compose = through;

  session.add_head("task", task.train, options.pooling);
  const AdapterInfo with_head = session.adapter("task");
  const std::int64_t trainable = with_head.trainable_parameters + with_head.head_parameters;
  const std::int64_t total = session.backbone_info().parameter_count;
  fmt::print(stderr, "{} on {} ({} train / {} dev rows): {} trainable parameters ({:.3f}% of {})\n", method, task.train.task,
             task.train.examples.size(), task.dev.examples.size(), trainable, 100.0 * trainable / total, total);
  fmt::print(stderr, "  {}\n", adapter.description);

  const TrainSummary r = session.train("task", task.train, task.dev, options);
  // A finished run asked again (compare resuming a report): its results.json, written
  // when it ran, holds the figures measured then (time, memory), so it stays.
  if (r.already_finished && fs::exists(output / "results.json")) {
    fmt::print("{}: already finished in {}: best dev {} {:.4f} at step {} of {}\n", method, output.string(), r.best.headline,
               r.best.score(), r.best_step, r.steps);
    return 0;
  }
  nlohmann::json results = {
      {"method", method},
      {"plugin", adapter.method},
      {"config", adapter.config_json.empty() ? nlohmann::json::object() : nlohmann::json::parse(adapter.config_json)},
      {"task", task.train.task},
      {"backbone", session.backbone_info().source},
      {"train_rows", task.train.examples.size()},
      {"dev_rows", task.dev.examples.size()},
      {"trainable_parameters", r.trainable_parameters},
      {"backbone_parameters", total},
      {"trainable_percent", 100.0 * r.trainable_parameters / total},
      {"headline", r.best.headline},
      {"best", r.best.values},
      {"best_step", r.best_step},
      {"last", r.last.values},
      {"steps", r.steps},
      {"early_stopped", r.early_stopped},
      {"budget", {{"epochs", options.epochs}, {"max_steps", options.max_steps}, {"patience", options.patience},
                  {"batch_size", options.batch_size}, {"grad_accumulation", options.grad_accumulation},
                  {"max_length", options.max_length}, {"eval_every", options.eval_every}}},
      {"lr", r.lr},
      {"seed", seed},
      {"train_seconds", r.seconds},
      {"tokens_per_second", r.tokens_per_second},
      {"peak_memory_mib", r.peak_memory_mib},
      {"adapter_bytes", folder_bytes(r.best_folder)},
      {"resumed", r.resumed}};
  for (const EvalPoint& e : r.evals)  // the learning curve: docs/results.md reads the train loss at the best step
    results["evals"].push_back({{"step", e.step}, {"train_loss", e.train_loss}, {"dev", e.scores.values}});
  if (!through.empty()) results["compose"] = through.to_string();
  io::write_file_atomic(output / "results.json", results.dump(2) + "\n");
  fmt::print("{}: best dev {} {:.4f} at step {} ({} steps, {:.0f} s); saved to {}\n", method, r.best.headline, r.best.score(),
             r.best_step, r.steps, r.seconds, r.best_folder.string());
  return 0;
}

}  // namespace graft::cli
