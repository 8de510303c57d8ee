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
#include "train/task_head.h"

namespace graft::cli {

struct TaskData {
  data::Dataset train, dev;
};

std::vector<OptionSpec> task_option_specs();
TaskData load_task(const Args& args);
// The head a dataset needs on `backbone` (--pooling overrides the default: mean for
// encoders, last token for decoders).
HeadConfig head_for(const data::Dataset& data, const Backbone& backbone, const Args& args);

// --max-length (at least 1), never longer than the model can place.
OptionSpec max_length_option();
std::size_t capped_max_length(const Args& args, const Backbone& backbone);

struct MethodChoice {
  std::string plugin;       // plugin name, or "head" / "full"
  std::string config_json;  // the alias's preset merged with --config
  std::string origin;
};
MethodChoice resolve_method(const std::string& method, const std::string& user_config, const std::string& origin);
// A learning rate that suits each method on BERT-size models (used when --lr is absent).
float default_lr(const std::string& method);
std::string default_lr_note();  // the rates above in words, for --help

}  // namespace graft::cli
