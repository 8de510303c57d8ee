#include "cli/task_options.h"

#include <fmt/format.h>

#include "data/conll.h"
#include "data/glue.h"
#include "data/tabular.h"
#include "graft/error.h"

namespace graft::cli {

namespace {

const char* kGlueData = "../shared/data/glue";
const char* kConllData = "../shared/data/conll2003";
constexpr const char* kDefaultMaxLength = "128";

void keep_first(data::Dataset& ds, std::size_t rows) {
  if (rows < ds.examples.size()) ds.examples.resize(rows);
}

// Scores on a dev set with a single class say nothing about a classifier (any constant
// prediction is perfect): say so rather than report 1.0 silently.
void warn_if_one_class(const data::Dataset& dev) {
  if (dev.kind != TaskKind::classification || dev.examples.empty()) return;
  for (const auto& ex : dev.examples)
    if (ex.label != dev.examples.front().label) return;
  const auto label = static_cast<std::size_t>(dev.examples.front().label);
  fmt::print(stderr, "graft: warning: every held-out row of '{}' has the label '{}': its scores cannot tell a model from a constant\n",
             dev.source.string(), label < dev.label_names.size() ? dev.label_names[label] : std::to_string(label));
}

}  // namespace

std::vector<OptionSpec> task_option_specs() {
  const std::string files = "none; required for csv, jsonl and text";
  return {{.name = "task", .help = "sst2, cola, mrpc, stsb, rte, qnli, wnli, conll2003, csv, jsonl or text", .example = "sst2",
           .required = true},
          {.name = "data", .help = "the GLUE or CoNLL-2003 folder", .example = "/data/glue",
           .default_note = fmt::format("{} ({} for conll2003)", kGlueData, kConllData)},
          {.name = "train-file", .help = "training rows (csv, jsonl, text)", .example = "train.csv", .default_note = files},
          {.name = "dev-file", .help = "held-out rows (csv, jsonl, text)", .example = "dev.csv", .default_note = files},
          {.name = "regression", .takes_value = false, .help = "csv/jsonl labels are numbers"},
          {.name = "train-rows", .help = "keep the first N training rows", .example = "1000", .default_note = "all"},
          {.name = "dev-rows", .help = "keep the first N held-out rows", .example = "200", .default_note = "all"},
          {.name = "pooling", .help = "how the head pools: mean, cls or last", .example = "cls",
           .default_note = "mean for encoders, last for decoders"}};
}

OptionSpec max_length_option() {
  return {.name = "max-length", .help = "tokens per row, capped at the model's positions", .value = kDefaultMaxLength,
          .example = "256"};
}

TaskData load_task(const Args& args) {
  const std::string task = args.require("task");
  TaskData out;
  if (task == "conll2003") {
    const std::filesystem::path dir = args.get("data", kConllData);
    out.train = data::read_conll(args.has("train-file") ? std::filesystem::path(args.get("train-file")) : dir / "train.txt");
    out.dev = data::read_conll(args.has("dev-file") ? std::filesystem::path(args.get("dev-file")) : dir / "dev.txt");
  } else if (task == "csv" || task == "jsonl" || task == "text") {
    const std::string train = args.require("train-file"), dev = args.require("dev-file");
    if (task == "text") {
      out.train = data::read_text_lines(train);
      out.dev = data::read_text_lines(dev);
    } else {
      const bool regression = args.has("regression");
      auto read = task == "csv" ? data::read_csv : data::read_jsonl;
      out.train = read(train, regression, {});
      out.dev = read(dev, regression, out.train.label_names);
    }
  } else {
    const std::filesystem::path glue = args.get("data", kGlueData);
    out.train = data::read_glue(glue, task, "train");
    out.dev = data::read_glue(glue, task, "dev");
  }
  keep_first(out.train, args.count("train-rows", SIZE_MAX / 2, INT64_MAX));
  keep_first(out.dev, args.count("dev-rows", SIZE_MAX / 2, INT64_MAX));
  warn_if_one_class(out.dev);
  return out;
}

}  // namespace graft::cli
