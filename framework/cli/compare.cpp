// graft compare --backbone B --task T --methods houlsby,pfeiffer,lora,... [train options]
// Trains every method on the same data with the same seed and budget — each in its own
// `graft train` process, so memory is measured per method and full fine-tuning cannot
// touch the weights the others use — then writes DIR/results.json, DIR/results.md and
// DIR/chart.svg and prints the table. With --lr-scales each method is trained at its
// learning rate times each scale and reported at the one that scores best on dev (as
// Houlsby et al. chose theirs), and --lr-extend steps past an edge of that grid while the
// edge wins; every run is kept under DIR/METHOD/lr-X. With --seeds the
// search runs at the first seed, then the chosen rate at every seed (DIR/METHOD/seed-N),
// and the row reports their mean and standard deviation. Every run is a `graft train`
// folder, so a compare started again resumes: finished runs are read, not rerun.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "graft/error.h"
#include "graft/session.h"
#include "io/atomic_file.h"
#include "cli/task_options.h"
#include "io/json_config.h"
#include "io/output_folder.h"
#include "train/report.h"
#include "train/trainer.h"

namespace graft::cli {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<OptionSpec> train_option_specs();

namespace {

const char* kDefaultMethods = "houlsby,pfeiffer,lora,prefix_tuning,prompt_tuning,full,head";

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Runs this executable as `graft train ARGS`; returns its exit status.
int run_train(const std::vector<std::string>& args) {
  std::vector<std::string> full = {"graft", "train"};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("compare", "cannot start a training process (fork failed)");
  if (pid == 0) {
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A label becomes a folder name under --output: nothing that could climb out of it
// ("..", "/abs", "a/b") or hide (".x").
bool plain_name(const std::string& label) {
  if (label.empty() || label[0] == '.') return false;
  return std::all_of(label.begin(), label.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-' || c == '.'; });
}

// A report folder written by a graft older than the .graft marker: its results.md
// starts with the title this command writes.
bool wrote_compare_report(const fs::path& dir) {
  std::ifstream in(dir / "results.md");
  std::string first;
  return std::getline(in, first) && first.rfind("# graft compare:", 0) == 0;
}

}  // namespace

int cmd_compare(const std::vector<std::string>& argv) {
  std::vector<OptionSpec> specs = train_option_specs();
  std::erase_if(specs, [](const OptionSpec& s) {
    return s.name == "method" || s.name == "config" || s.name == "output" || s.name == "lr-scale";
  });
  specs.push_back({.name = "methods", .help = "comma-separated; LABEL=METHOD runs a method twice", .value = kDefaultMethods,
                   .example = "lora,lora16=lora"});
  specs.push_back({.name = "configs", .help = "JSON file: {\"method or label\": {config}, ...}", .example = "configs.json",
                   .default_note = "each method's defaults"});
  specs.push_back({.name = "output", .help = "report folder", .example = "results/sst2", .default_note = "results/compare-TASK"});
  specs.push_back({.name = "lr-scales", .help = "multiples of each method's lr to try; the best on dev is reported", .value = "1",
                   .example = "0.3,1,3"});
  specs.push_back({.name = "lr-extend", .help = "while the best scale is the lowest or highest tried, try up to N more steps that way",
                   .value = "0", .example = "2"});
  specs.push_back({.name = "seeds", .help = "train each method at each seed (the lr search at the first); report mean ± std",
                   .example = "1,2,3", .default_note = "--seed alone"});
  specs.push_back({.name = "seeds-for", .help = "only these labels run every seed; the others run the first one (--seeds)",
                   .example = "full,houlsby64", .default_note = "every method"});
  const Args args("compare", argv, specs);
  const std::vector<std::string> methods = split_commas(args.get("methods"));
  std::vector<std::string> labels;
  for (const auto& entry : methods) {
    const auto eq = entry.find('=');
    labels.push_back(entry.substr(0, eq));
    if (labels.back().empty() || (eq != std::string::npos && eq + 1 == entry.size()))
      throw ConfigError("compare", fmt::format("--methods: '{}' is not METHOD or LABEL=METHOD", entry), "e.g. --methods houlsby,wide=houlsby");
    if (!plain_name(labels.back()))
      throw ConfigError("compare", fmt::format("--methods: label '{}' is not a plain name", labels.back()),
                        "a label names its run's folder inside --output: letters, digits, '_', '-' and '.', not starting "
                        "with '.' (e.g. --methods lora,lora16=lora)");
    if (std::count(labels.begin(), labels.end(), labels.back()) > 1)
      throw ConfigError("compare", fmt::format("--methods: '{}' appears twice", labels.back()),
                        "give a second run of a method its own label: LABEL=METHOD");
  }
  const fs::path output = args.get("output", "results/compare-" + args.require("task"));
  const json configs = args.has("configs") ? io::load_json(args.get("configs")) : json::object();
  std::vector<double> scales;
  for (const auto& item : split_commas(args.get("lr-scales"))) {
    try {
      scales.push_back(std::stod(item));
    } catch (const std::exception&) {
      scales.push_back(-1);
    }
    if (!(scales.back() > 0 && scales.back() <= 1e6))
      throw ConfigError("compare", fmt::format("--lr-scales: '{}' is not a positive number", item), "e.g. --lr-scales 0.3,1,3");
  }
  const bool sweep = args.has("lr-scales");
  const auto extend = static_cast<int>(args.integer("lr-extend", 0, 10));
  // A step past an edge repeats the grid's outermost ratio on that side (0.3,1,3: x0.3 below, x3 above).
  std::vector<double> sorted_scales = scales;
  std::sort(sorted_scales.begin(), sorted_scales.end());
  if (extend > 0 && (sorted_scales.size() < 2 || sorted_scales.front() == sorted_scales[1] || sorted_scales.back() == sorted_scales.end()[-2]))
    throw ConfigError("compare", "--lr-extend needs at least two different --lr-scales at each end of the grid",
                      "the step past an edge is the ratio of the two outermost scales: e.g. --lr-scales 0.3,1,3 --lr-extend 2");
  const double step_down = sorted_scales.size() > 1 ? sorted_scales[0] / sorted_scales[1] : 1;
  const double step_up = sorted_scales.size() > 1 ? sorted_scales.end()[-1] / sorted_scales.end()[-2] : 1;
  std::vector<std::uint64_t> seeds;
  for (const auto& item : split_commas(args.get("seeds"))) {
    const bool digits = !item.empty() && item.size() <= 18 && std::all_of(item.begin(), item.end(), [](unsigned char c) { return std::isdigit(c); });
    if (!digits) throw ConfigError("compare", fmt::format("--seeds: '{}' is not a whole number", item), "e.g. --seeds 1,2,3");
    seeds.push_back(std::stoull(item));
    if (std::count(seeds.begin(), seeds.end(), seeds.back()) > 1)
      throw ConfigError("compare", fmt::format("--seeds: {} appears twice", item), "each seed once, e.g. --seeds 1,2,3");
  }
  const bool multi_seed = args.has("seeds");
  if (multi_seed && seeds.empty()) throw ConfigError("compare", "--seeds names no seed", "e.g. --seeds 1,2,3");
  if (multi_seed && args.has("seed"))
    throw ConfigError("compare", "--seed and --seeds both given", "--seeds 1,2,3 sets every run's seed; drop --seed");
  const std::vector<std::string> seeds_for = split_commas(args.get("seeds-for"));
  if (!seeds_for.empty() && !multi_seed) throw ConfigError("compare", "--seeds-for without --seeds", "e.g. --seeds 1,2,3 --seeds-for full");
  for (const auto& label : seeds_for)
    if (std::find(labels.begin(), labels.end(), label) == labels.end())
      throw ConfigError("compare", fmt::format("--seeds-for: '{}' is not one of --methods", label),
                        fmt::format("the labels run here: {}", fmt::join(labels, ",")));
  io::prepare_run_folder(output, "compare", wrote_compare_report);
  io::clean_stale_staging(output, "compare", {"results.json", "results.md", "chart.svg"});

  // Every option but the compare-only ones goes to each `graft train` unchanged.
  std::vector<std::string> shared;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string name = argv[i].rfind("--", 0) == 0 ? argv[i].substr(2) : "";
    const bool inline_value = name.find('=') != std::string::npos;
    name = name.substr(0, name.find('='));
    const bool takes_value = std::any_of(specs.begin(), specs.end(), [&](auto& s) { return s.name == name && s.takes_value; });
    if (name == "methods" || name == "configs" || name == "output" || name == "lr-scales" || name == "lr-extend" ||
        name == "seeds" ||
        name == "seeds-for") {
      if (takes_value && !inline_value) ++i;
      continue;
    }
    shared.push_back(argv[i]);
    if (takes_value && !inline_value && i + 1 < argv.size()) shared.push_back(argv[++i]);
  }


  // A run that finished in an earlier sitting may keep only its results.json (results/
  // commits those; the checkpoint, with the weights, stays on the machine that ran it).
  // When it is the run asked for (task, method, seed, budget), it is read back, not rerun.
  auto finished_before = [&](const std::string& method, std::optional<std::uint64_t> seed, const fs::path& run_dir) {
    if (!fs::exists(run_dir / "results.json") || fs::exists(run_dir / "checkpoint")) return false;
    const json r = io::load_json(run_dir / "results.json");
    const json budget = r.value("budget", json::object());
    auto asked = [&](const char* option) {  // 0 for an option without a value (none given, no default)
      return args.get(option).empty() ? std::int64_t{0} : args.integer(option, 0, std::numeric_limits<std::int64_t>::max());
    };
    const std::pair<const char*, const char*> keys[] = {{"epochs", "epochs"},         {"max_steps", "max-steps"},
                                                        {"batch_size", "batch-size"}, {"grad_accumulation", "grad-accum"},
                                                        {"max_length", "max-length"}, {"eval_every", "eval-every"},
                                                        {"patience", "patience"}};
    bool same = r.value("task", "") == args.get("task") && r.value("method", "") == method && r.contains("best") &&
                (!seed || r.value("seed", std::uint64_t{0}) == *seed);
    for (const auto& [key, option] : keys) same = same && budget.value(key, std::int64_t{-1}) == asked(option);
    if (same) fmt::print(stderr, "{}: finished in an earlier sitting: {}/results.json read back\n", method, run_dir.string());
    return same;
  };

  // One `graft train` of a method; its results.json, or {"error"} when it failed.
  auto train_run = [&](const std::string& label, const std::string& method, double scale, std::optional<std::uint64_t> seed,
                       const fs::path& run_dir) -> json {
    if (finished_before(method, seed, run_dir)) return io::load_json(run_dir / "results.json");
    std::vector<std::string> args_for = shared;
    args_for.insert(args_for.end(), {"--method", method, "--output", run_dir.string(), "--lr-scale", fmt::format("{:.9g}", scale)});
    if (seed) args_for.insert(args_for.end(), {"--seed", std::to_string(*seed)});
    const std::string config_key = configs.contains(label) ? label : method;
    if (configs.contains(config_key)) args_for.insert(args_for.end(), {"--config", configs.at(config_key).dump()});
    const int status = run_train(args_for);
    if (status != 0 || !fs::exists(run_dir / "results.json")) return {{"error", fmt::format("exit status {}", status)}};
    return io::load_json(run_dir / "results.json");
  };
  auto score_of = [](const json& run) { return run.at("best").at(run.at("headline").get<std::string>()).get<double>(); };

  json runs = json::array();
  bool any_failed = false;
  for (const auto& entry : methods) {
    // "houlsby64=houlsby": the method under its own label, so one method can run with
    // several configs (--configs keys them by label) side by side.
    const auto eq = entry.find('=');
    const std::string label = entry.substr(0, eq), method = eq == std::string::npos ? entry : entry.substr(eq + 1);
    fmt::print(stderr, "\n== {} ({}/{})\n", entry, &entry - &methods[0] + 1, methods.size());
    const std::optional<std::uint64_t> first_seed = multi_seed ? std::optional(seeds[0]) : std::nullopt;
    const fs::path method_dir = output / label;
    // The rate: the best on dev of the scales tried, at the first seed. A best rate at an
    // edge of the grid was never bracketed, so --lr-extend steps past that edge (the
    // outermost ratio again) while the edge keeps winning.
    json best, tried = json::array();
    double best_scale = 1;
    std::vector<double> grid = scales;
    int extended_down = 0, extended_up = 0;
    for (std::size_t next = 0; next < grid.size(); ++next) {
      const double scale = grid[next];
      fs::path run_dir = sweep ? method_dir / fmt::format("lr-x{:.3g}", scale) : method_dir;
      if (multi_seed) run_dir /= fmt::format("seed-{}", seeds[0]);
      if (sweep) fmt::print(stderr, "-- lr x{:.3g}\n", scale);
      json run = train_run(label, method, scale, first_seed, run_dir);
      if (run.contains("error")) {
        tried.push_back({{"lr_scale", scale}, {"error", run.at("error")}});
      } else {
        const double score = score_of(run);
        tried.push_back({{"lr", run.at("lr")}, {"lr_scale", scale}, {"score", score}, {"output", run_dir.string()}});
        const bool lower_is_better = run.at("headline") == "perplexity";  // as train::Scores ranks
        if (best.is_null() || (lower_is_better ? score < score_of(best) : score > score_of(best))) {
          best = std::move(run);
          best_scale = scale;
        }
      }
      // A failed step past an edge is now that edge, so the grid stops growing there.
      if (next + 1 == grid.size() && !best.is_null()) {
        const auto [lowest, highest] = std::minmax_element(grid.begin(), grid.end());
        if (best_scale == *lowest && extended_down < extend) {
          grid.push_back(*lowest * step_down);
          ++extended_down;
        } else if (best_scale == *highest && extended_up < extend) {
          grid.push_back(*highest * step_up);
          ++extended_up;
        }
      }
    }
    if (best.is_null()) {
      runs.push_back({{"method", label}, {"error", tried.back().at("error")}});
      any_failed = true;
      continue;
    }
    if (sweep) best["lr_sweep"] = tried;
    if (label != method) best["method"] = label;  // the row's name; "plugin" names the method
    if (multi_seed) {
      // The chosen rate at every seed (the first one's run is the search's).
      const bool every_seed = seeds_for.empty() || std::find(seeds_for.begin(), seeds_for.end(), label) != seeds_for.end();
      json per_seed = json::array();
      for (std::size_t i = 0; i < (every_seed ? seeds.size() : 1); ++i) {
        const fs::path run_dir = (sweep ? method_dir / fmt::format("lr-x{:.3g}", best_scale) : method_dir) / fmt::format("seed-{}", seeds[i]);
        if (i > 0) fmt::print(stderr, "-- seed {}\n", seeds[i]);
        const json run = i == 0 ? best : train_run(label, method, best_scale, seeds[i], run_dir);
        if (run.contains("error")) {
          per_seed.push_back({{"seed", seeds[i]}, {"error", run.at("error")}, {"output", run_dir.string()}});
          any_failed = true;
          continue;
        }
        per_seed.push_back({{"seed", seeds[i]}, {"score", score_of(run)}, {"best", run.at("best")}, {"output", run_dir.string()}});
      }
      best["seeds"] = per_seed;
      best["seed_summary"] = train::seed_summary(per_seed);
    }
    runs.push_back(std::move(best));
  }

  const std::string title = fmt::format("graft compare: {} on {}", args.get("task"), fs::path(args.get("backbone")).filename().string());
  io::write_file_atomic(output / "results.json", runs.dump(2) + "\n");
  io::write_file_atomic(output / "results.md", fmt::format("# {}\n\n{}", title, train::comparison_table(runs, true)));
  io::write_file_atomic(output / "chart.svg", train::comparison_svg(runs, title));
  fmt::print("\n{}\n\n{}\nwritten: {}/results.json, results.md, chart.svg\n", title, train::comparison_table(runs, false),
             output.string());
  return any_failed ? 1 : 0;
}

}  // namespace graft::cli
