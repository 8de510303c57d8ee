// The comparison report: a table (terminal and Markdown) and an SVG chart of the dev
// metric against the percentage of trainable parameters (log scale).
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace graft::train {

// `runs` is an array of the results.json objects `graft train` writes (a failed run:
// {"method", "error"}).
std::string comparison_table(const nlohmann::json& runs, bool markdown);
std::string comparison_svg(const nlohmann::json& runs, const std::string& title);

}  // namespace graft::train
