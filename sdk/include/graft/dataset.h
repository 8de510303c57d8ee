// Task data in memory: rows of text (or text pairs, or labelled words) with labels, as
// the readers make them from the formats people have (GLUE TSV, CSV/JSONL, CoNLL,
// plain text) and as Session::train / evaluate take them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "graft/task.h"

namespace graft::data {

struct Example {
  std::string text, text_pair;
  bool has_pair = false;
  double label = 0;                       // class index, or the regression target
  std::vector<std::string> words;         // token classification: the words…
  std::vector<std::int64_t> word_labels;  // …and one label index per word
  std::size_t line = 0;                   // where the row starts in its file
};

struct Dataset {
  std::string task;                       // "sst2", "conll2003", "text", …
  std::filesystem::path source;
  TaskKind kind = TaskKind::classification;
  std::vector<std::string> label_names;   // classification / token classification
  std::string metric;                     // the task's headline metric (see train/metrics.h)
  std::vector<Example> examples;
};

}  // namespace graft::data
