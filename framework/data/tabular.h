// Generic task files: CSV (RFC 4180 quoting, a header naming the columns) and JSONL
// (one object per line) with `text`, optional `text_pair` and `label`; plain text (one
// example per non-empty line, for causal LM).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace graft::data {

// Labels: numbers for regression (`regression` true), else class names; classes are
// numbered in the order of `label_names` when given (the training set's classes, for a
// dev file), else sorted. A row with a class not in `label_names` is an error.
Dataset read_csv(const std::filesystem::path& file, bool regression, std::vector<std::string> label_names = {});
Dataset read_jsonl(const std::filesystem::path& file, bool regression, std::vector<std::string> label_names = {});
Dataset read_text_lines(const std::filesystem::path& file);

}  // namespace graft::data
