// The comparison report: a table (terminal and Markdown) and an SVG chart of the dev
// metric against the percentage of trainable parameters (log scale).
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace graft::train {

// `runs` is an array of the results.json objects `graft train` writes (a failed run:
// {"method", "error"}).
// With `graft compare --seeds` a row also holds "seeds" (one entry per seed: its "best"
// scores, or an "error") and "seed_summary", and its dev metric is shown as mean ± std.
std::string comparison_table(const nlohmann::json& runs, bool markdown);

// {"n", "mean": {metric: v}, "std": {metric: v}} over the seeds that ran (std: the sample
// standard deviation, n − 1 in the denominator; 0 for one seed).
nlohmann::json seed_summary(const nlohmann::json& per_seed);
std::string comparison_svg(const nlohmann::json& runs, const std::string& title);

}  // namespace graft::train
