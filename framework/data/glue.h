// The GLUE tasks as published (../shared/data/glue): TSV split on tabs only (fields may
// hold quote characters), an optional UTF-8 byte-order mark, a header row except CoLA.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace graft::data {

// task: cola, sst2, mrpc, stsb, rte, qnli, wnli (case-insensitive; "SST-2" too).
// split: "train" or "dev". A bad row is a FormatError naming the file and line.
Dataset read_glue(const std::filesystem::path& glue_dir, const std::string& task, const std::string& split);
// Reads one GLUE-format file for `task`.
Dataset read_glue_file(const std::filesystem::path& file, const std::string& task);
std::vector<std::string> glue_tasks();
// "sst2" for "SST-2", "sst-2", "sst2"; ConfigError listing the tasks otherwise.
std::string canonical_glue_task(const std::string& name);

}  // namespace graft::data
