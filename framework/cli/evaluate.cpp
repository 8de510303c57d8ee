// graft eval --backbone B --adapter DIR --task T   : dev-set metrics of a saved adapter
// graft predict --backbone B --adapter DIR TEXT... : its predictions on new inputs
//   (several adapters: --adapter NAME=DIR ... --compose EXPR; predict prints each
//    parallel branch's rows after the previous branch's, the branch first on the line)
//   (--pair TEXT gives the second sentence for pair tasks; --input FILE reads one row
//    per line, a tab separating the pair)
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/adapter_options.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "cli/task_options.h"
#include "graft/error.h"
#include "data/dataset.h"
#include "graft/session.h"
#include "train/trainer.h"

namespace graft::cli {
namespace {

// A session with the adapter folders loaded (a lone one as "task") and the composition
// to run; the head of the composition is what eval and predict score with.
struct Opened {
  Session session;
  Selection selection;
};
Opened open_with_adapters(const Args& args) {
  Session session = open_session(args);
  const auto names = load_adapters(session, args, "task");
  Selection selection = composition(args, names);
  if (names.size() == 1 && !args.has("compose") && !session.adapter("task").head)
    throw ConfigError("eval", fmt::format("'{}' has no task head", args.get("adapter")),
                      "evaluate folders written by `graft train` (they hold the head)");
  return {std::move(session), std::move(selection)};
}

EvalOptions eval_options(const Args& args) {
  EvalOptions o;
  o.batch_size = args.count("batch-size", train::TrainLimits::max_batch_size);
  o.max_length = static_cast<std::size_t>(args.integer("max-length", 1, train::TrainLimits::max_length));
  return o;
}

std::vector<OptionSpec> common_specs() {
  return {{.name = "backbone", .help = "model folder or llama2.c .bin", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
          adapter_option("adapter folder (from graft train)", true), compose_option(), dtype_option(), plugin_dir_option(),
          {.name = "batch-size", .help = "rows per batch", .value = "32", .example = "64"}, max_length_option()};
}

}  // namespace

int cmd_eval(const std::vector<std::string>& argv) {
  auto specs = common_specs();
  const auto task_specs = task_option_specs();
  specs.insert(specs.end(), task_specs.begin(), task_specs.end());
  specs.push_back({.name = "json", .takes_value = false, .help = "print the scores as JSON"});
  const Args args("eval", argv, specs);
  const auto [session, selection] = open_with_adapters(args);
  const TaskData task = load_task(args);
  const Scores s = session.evaluate(task.dev, selection, eval_options(args));
  if (args.has("json")) {
    nlohmann::json j = s.values;
    j["headline"] = s.headline;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  const std::string what = args.values("adapter").size() == 1 && !args.has("compose")
                               ? fmt::format("{} ({})", args.get("adapter"), session.adapter("task").method)
                               : selection.to_string();
  fmt::print("{} on {} dev, {} rows\n", what, task.dev.task, task.dev.examples.size());
  for (const auto& [name, value] : s.values) fmt::print("  {:<18} {:.4f}{}\n", name, value, name == s.headline ? "  <- headline" : "");
  return 0;
}

int cmd_predict(const std::vector<std::string>& argv) {
  auto specs = common_specs();
  specs.push_back({.name = "pair", .help = "second text, for pair tasks", .example = "'a second sentence'", .default_note = "none"});
  specs.push_back({.name = "input", .help = "file: one row per line, a tab before the pair", .example = "rows.tsv", .default_note = "none"});
  const Args args("predict", argv, specs);
  const auto [session, selection] = open_with_adapters(args);
  std::vector<TextInput> rows;
  for (const auto& text : args.positional())
    rows.push_back({text, args.has("pair") ? std::optional<std::string>(args.get("pair")) : std::nullopt});
  if (args.has("input")) {
    std::ifstream in(args.get("input"));
    if (!in) throw IoError("predict", fmt::format("cannot read '{}'", args.get("input")));
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      data::require_utf8(line, args.get("input"), number);
      const auto tab = line.find('\t');
      if (line.empty()) continue;
      if (tab == std::string::npos) rows.push_back({line, std::nullopt});
      else rows.push_back({line.substr(0, tab), line.substr(tab + 1)});
    }
  }
  if (rows.empty()) throw ConfigError("predict", "nothing to predict", "give TEXT arguments or --input FILE");
  const auto predictions = session.predict(rows, selection, eval_options(args));
  const auto branches = selection.branches();
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    const TextInput& row = rows[i % rows.size()];
    const std::string shown = row.pair ? row.text + " ||| " + *row.pair : row.text;
    const Prediction& p = predictions[i];
    const std::string branch = branches.size() > 1 ? branches[i / rows.size()].to_string() + "\t" : "";
    if (p.probabilities.empty()) fmt::print("{}{:.4f}\t{}\n", branch, p.value, shown);  // regression
    else fmt::print("{}{}\t{}\n", branch, p.label, shown);
  }
  return 0;
}

}  // namespace graft::cli
