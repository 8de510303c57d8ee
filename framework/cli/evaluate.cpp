// graft eval --backbone B --adapter DIR --task T   : dev-set metrics of a saved adapter
// graft predict --backbone B --adapter DIR TEXT... : its predictions on new inputs
//   (--pair TEXT gives the second sentence for pair tasks; --input FILE reads one row
//    per line, a tab separating the pair)
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "cli/task_options.h"
#include "data/batching.h"
#include "graft/error.h"
#include "train/adapter_io.h"
#include "model/backbone_registry.h"
#include "train/evaluator.h"
#include "train/trainer.h"

namespace graft::cli {
namespace {

struct LoadedTask {
  model::LoadedBackbone backbone;
  std::unique_ptr<AdapterSet> adapters;
  std::unique_ptr<TaskHead> head;
  SavedAdapter saved;
  Selection selection;
};

LoadedTask load_with_adapter(const Args& args) {
  LoadedTask t;
  t.backbone = model::load_backbone(args.require("backbone"), model::parse_dtype(args.get("dtype")));
  if (!t.backbone.tokenizer) throw ConfigError("eval", "the backbone has no tokenizer graft can read");
  t.adapters = std::make_unique<AdapterSet>(*t.backbone.model);
  const text::Tokenizer* tokenizer = t.backbone.tokenizer.get();
  t.adapters->set_tokenizer([tokenizer](const std::string& text) { return tokenizer->encode(text).ids; });
  const plugin::PluginRegistry plugins = load_plugins(args);
  t.saved = load_adapter(args.require("adapter"), *t.adapters, "task", plugins, *t.backbone.model, &t.head);
  if (!t.head)
    throw ConfigError("eval", fmt::format("'{}' has no task head", args.get("adapter")),
                      "evaluate folders written by `graft train` (they hold the head)");
  if (t.adapters->contains("task")) t.selection = Selection::one("task");
  return t;
}

// The adapter's head must be the one the task needs: a classification head evaluated on
// a regression task would otherwise fail deep inside the loss.
void check_head_fits(const TaskHead& head, const data::Dataset& dev, const std::string& adapter) {
  const HeadConfig& h = head.config();
  const std::int64_t labels = static_cast<std::int64_t>(dev.label_names.size());
  const bool counts_labels = dev.kind == TaskKind::classification || dev.kind == TaskKind::token_classification;
  if (h.kind != dev.kind)
    throw ConfigError("eval",
                      fmt::format("'{}' holds a {} head{}, but task '{}' is {}", adapter, task_kind_name(h.kind),
                                  h.kind == TaskKind::classification || h.kind == TaskKind::token_classification
                                      ? fmt::format(" ({} labels)", h.num_labels)
                                      : "",
                                  dev.task, task_kind_name(dev.kind)),
                      "evaluate an adapter on the kind of task it was trained for (its graft_adapter.json names the head)");
  if (counts_labels && h.num_labels != labels)
    throw ConfigError("eval",
                      fmt::format("'{}' holds a head with {} labels, but task '{}' has {} ({})", adapter, h.num_labels,
                                  dev.task, labels, fmt::join(dev.label_names, ", ")),
                      "evaluate an adapter on a task with the labels it was trained for");
}

std::vector<OptionSpec> common_specs() {
  return {{.name = "backbone", .help = "model folder or llama2.c .bin", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
          {.name = "adapter", .help = "adapter folder (from graft train)", .example = "runs/sst2-lora/best", .required = true},
          dtype_option(), plugin_dir_option(),
          {.name = "batch-size", .help = "rows per batch", .value = "32", .example = "64"}, max_length_option()};
}

}  // namespace

int cmd_eval(const std::vector<std::string>& argv) {
  auto specs = common_specs();
  const auto task_specs = task_option_specs();
  specs.insert(specs.end(), task_specs.begin(), task_specs.end());
  specs.push_back({.name = "json", .takes_value = false, .help = "print the scores as JSON"});
  const Args args("eval", argv, specs);
  LoadedTask t = load_with_adapter(args);
  const TaskData task = load_task(args);
  check_head_fits(*t.head, task.dev, args.get("adapter"));
  const auto batches = data::make_batches(task.dev, *t.backbone.tokenizer, args.count("batch-size", train::TrainLimits::max_batch_size),
                                          capped_max_length(args, *t.backbone.model), false, 0);
  ActiveAdapters hooks = t.adapters->bind(t.selection);
  const train::Scores s = train::evaluate(*t.backbone.model, &hooks, *t.head, batches, task.dev.metric, task.dev.label_names);
  if (args.has("json")) {
    nlohmann::json j = s.values;
    j["headline"] = s.headline;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{} ({}) on {} dev, {} rows\n", args.get("adapter"), t.saved.method, task.dev.task, task.dev.examples.size());
  for (const auto& [name, value] : s.values) fmt::print("  {:<18} {:.4f}{}\n", name, value, name == s.headline ? "  <- headline" : "");
  return 0;
}

int cmd_predict(const std::vector<std::string>& argv) {
  auto specs = common_specs();
  specs.push_back({.name = "pair", .help = "second text, for pair tasks", .example = "'a second sentence'", .default_note = "none"});
  specs.push_back({.name = "input", .help = "file: one row per line, a tab before the pair", .example = "rows.tsv", .default_note = "none"});
  const Args args("predict", argv, specs);
  LoadedTask t = load_with_adapter(args);
  data::Dataset rows;
  rows.kind = t.head->config().kind;
  auto add = [&](const std::string& text, const std::string& pair, bool has_pair) {
    data::Example ex;
    ex.text = text;
    ex.text_pair = pair;
    ex.has_pair = has_pair;
    rows.examples.push_back(ex);
  };
  for (const auto& text : args.positional()) add(text, args.get("pair"), args.has("pair"));
  if (args.has("input")) {
    std::ifstream in(args.get("input"));
    if (!in) throw IoError("predict", fmt::format("cannot read '{}'", args.get("input")));
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      data::require_utf8(line, args.get("input"), number);
      const auto tab = line.find('\t');
      if (!line.empty()) add(line.substr(0, tab), tab == std::string::npos ? "" : line.substr(tab + 1), tab != std::string::npos);
    }
  }
  if (rows.examples.empty()) throw ConfigError("predict", "nothing to predict", "give TEXT arguments or --input FILE");
  if (rows.kind != TaskKind::classification && rows.kind != TaskKind::regression)
    throw ConfigError("predict", fmt::format("predict handles classification and regression heads, not {}", task_kind_name(rows.kind)));
  const auto batches = data::make_batches(rows, *t.backbone.tokenizer, args.count("batch-size", train::TrainLimits::max_batch_size),
                                          capped_max_length(args, *t.backbone.model), false, 0);
  ActiveAdapters hooks = t.adapters->bind(t.selection);
  std::size_t row = 0;
  for (const auto& b : batches)
    for (double value : train::predict(*t.backbone.model, &hooks, *t.head, b.batch)) {
      const auto& ex = rows.examples[row++];
      const std::string shown = ex.has_pair ? ex.text + " ||| " + ex.text_pair : ex.text;
      if (rows.kind == TaskKind::regression) fmt::print("{:.4f}\t{}\n", value, shown);
      else fmt::print("{}\t{}\n", static_cast<std::int64_t>(value), shown);
    }
  return 0;
}

}  // namespace graft::cli
