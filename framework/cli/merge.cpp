// graft merge --backbone B --adapter a=DIR --adapter b=DIR --combine C [--weights W,...]
//             [--density D] --output DIR
// A new adapter folder merged from saved adapters: LoRA/DoRA as PEFT's
// add_weighted_adapter combines them, bottleneck adapters averaged as AdapterHub's
// average_adapter (Session::merge_adapters; docs/composition.md, "Merging").
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/method_options.h"
#include "graft/error.h"
#include "graft/session.h"

namespace graft::cli {
namespace fs = std::filesystem;

namespace {

std::vector<double> parse_weights(const Args& args, std::size_t adapters) {
  if (!args.has("weights")) return std::vector<double>(adapters, 1.0 / static_cast<double>(adapters));
  std::vector<double> out;
  std::stringstream in(args.get("weights"));
  for (std::string item; std::getline(in, item, ',');) {
    std::size_t used = 0;
    double w = 0;
    try {
      w = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || !std::isfinite(w))
      throw ConfigError("merge", fmt::format("--weights: '{}' is not a number", item), "e.g. --weights 0.7,0.3");
    out.push_back(w);
  }
  if (out.size() != adapters)
    throw ConfigError("merge", fmt::format("--weights gives {} weight{} for {} adapters", out.size(), out.size() == 1 ? "" : "s", adapters),
                      "give one weight per --adapter, in the same order");
  return out;
}

}  // namespace

int cmd_merge(const std::vector<std::string>& argv) {
  Args args("merge", argv,
            {{.name = "backbone", .help = "the model folder the adapters were trained on", .example = ".cache/models/all-MiniLM-L6-v2", .required = true},
             {.name = "adapter", .help = "NAME=DIR: an adapter folder to merge; repeatable (two or more)", .example = "sst2=runs/sst2/best", .required = true},
             {.name = "combine", .help = fmt::format("how: {}", fmt::join(merge_combinations(), ", ")), .example = "linear", .required = true},
             {.name = "weights", .help = "one weight per --adapter, in order", .example = "0.7,0.3", .default_note = "equal weights summing to 1"},
             {.name = "density", .help = "fraction of values kept, in (0, 1]: ties, dare_*, magnitude_prune", .example = "0.5"},
             {.name = "majority-sign", .help = "ties / dare_ties sign election: total or frequency", .value = "total"},
             {.name = "svd-rank", .help = "rank of an *svd merge", .example = "8", .default_note = "the largest input rank"},
             {.name = "no-dare-rescale", .takes_value = false, .help = "DARE without dividing by the density (PEFT 0.10.0 as released)"},
             {.name = "seed", .help = "seed of DARE's random masks", .value = "0"},
             {.name = "head", .help = "NAME: keep this input's task head", .example = "sst2", .default_note = "no head"},
             {.name = "output", .help = "the new adapter folder (must not exist)", .example = "runs/merged", .required = true},
             plugin_dir_option()});
  const fs::path output = args.require("output");
  if (fs::exists(output) && !(fs::is_directory(output) && fs::is_empty(output)))
    throw ConfigError("merge", fmt::format("the output '{}' already exists", output.string()),
                      "give a new folder, or remove that one first");
  std::vector<std::pair<std::string, std::string>> inputs;
  for (const auto& spec : args.values("adapter")) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw ConfigError("merge", fmt::format("--adapter '{}' is not NAME=DIR", spec), "e.g. --adapter sst2=runs/sst2/best");
    for (const auto& [name, dir] : inputs)
      if (name == spec.substr(0, eq))
        throw ConfigError("merge", fmt::format("--adapter: the name '{}' is given twice", name), "give each adapter its own name");
    inputs.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
  }
  const std::vector<double> weights = parse_weights(args, inputs.size());
  MergeOptions options;
  options.combination = args.get("combine");
  if (args.has("density")) options.density = args.number("density", -1e9, 1e9);
  options.majority_sign = args.get("majority-sign");
  if (args.has("svd-rank")) options.svd_rank = args.integer("svd-rank", 1, 1 << 20);
  options.dare_rescale = !args.has("no-dare-rescale");
  options.seed = static_cast<std::uint64_t>(args.integer("seed", 0, std::numeric_limits<std::int64_t>::max()));
  options.head = args.get("head", "");

  SessionOptions session_options;
  for (const auto& dir : args.values("plugin-dir")) session_options.plugin_dirs.emplace_back(dir);
  Session session(args.require("backbone"), session_options);
  std::vector<std::pair<std::string, double>> merged;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    with_plugin_warnings(session, [&] { session.load_adapter(inputs[i].first, inputs[i].second); });
    merged.emplace_back(inputs[i].first, weights[i]);
  }
  std::string name = "merged";  // a name none of the inputs has
  while (std::any_of(inputs.begin(), inputs.end(), [&](const auto& in) { return in.first == name; })) name += "_";
  session.merge_adapters(name, merged, options);
  session.save_adapter(name, output);
  const AdapterInfo info = session.adapter(name);
  fmt::print("graft merge: {} of {} -> {}: {}{}\n", options.combination, inputs.size(), output.string(), info.description,
             info.head ? fmt::format(" (head of '{}')", options.head) : "");
  return 0;
}

}  // namespace graft::cli
