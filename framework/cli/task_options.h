// How the training commands name their data and their model:
//   --task sst2|cola|mrpc|stsb|rte|qnli|wnli [--data GLUE_DIR]   (GLUE, train + dev)
//   --task conll2003 [--data DIR]                                  (NER, train.txt + dev.txt)
//   --task csv|jsonl --train-file F --dev-file F [--regression]   (text, text_pair, label)
//   --task text --train-file F --dev-file F                       (causal LM, a line each)
//   --train-rows N / --dev-rows N keep the first N rows (budgets, smoke runs).
// and --method: a plugin name, "pfeiffer" (houlsby with Pfeiffer's placement), or the
// built-in baselines "head" (linear probe) and "full" (full fine-tuning).
#pragma once
#include <string>
#include <vector>

#include "cli/args.h"
#include "data/dataset.h"

namespace graft::cli {

struct TaskData {
  data::Dataset train, dev;
};

std::vector<OptionSpec> task_option_specs();
TaskData load_task(const Args& args);
// --max-length (at least 1; the Session caps it at what the model can place).
OptionSpec max_length_option();

}  // namespace graft::cli
