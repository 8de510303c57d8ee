#include "data/conll.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "graft/error.h"

namespace graft::data {

const std::vector<std::string>& conll_tags() {
  static const std::vector<std::string> tags = {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"};
  return tags;
}

Dataset read_conll(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError("data", fmt::format("cannot read '{}'", file.string()), "check the path to the CoNLL-2003 file");
  Dataset ds;
  ds.task = "conll2003";
  ds.source = file;
  ds.kind = TaskKind::token_classification;
  ds.label_names = conll_tags();
  ds.metric = "entity_f1";
  Example sentence;
  auto flush = [&] {
    if (!sentence.words.empty()) ds.examples.push_back(std::move(sentence));
    sentence = Example();
  };
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    require_utf8(line, file, number);
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
      continue;
    }
    std::istringstream fields(line);
    std::vector<std::string> cols;
    for (std::string c; fields >> c;) cols.push_back(c);
    if (cols.empty()) {  // only whitespace such as \v or \f: a blank line too
      flush();
      continue;
    }
    if (cols[0] == "-DOCSTART-") continue;
    if (cols.size() != 4)
      throw FormatError("data", fmt::format("{}:{}: {} columns, CoNLL-2003 has 4 (word POS chunk NER)", file.string(), number, cols.size()),
                        "separate the columns with spaces, one token per line");
    const auto& tags = conll_tags();
    auto tag = std::find(tags.begin(), tags.end(), cols[3]);
    if (tag == tags.end())
      throw FormatError("data", fmt::format("{}:{}: unknown NER tag '{}'", file.string(), number, cols[3]),
                        fmt::format("tags: {}", fmt::join(tags, ", ")));
    if (sentence.words.empty()) sentence.line = number;
    sentence.words.push_back(cols[0]);
    sentence.word_labels.push_back(tag - tags.begin());
  }
  flush();
  if (ds.examples.empty()) throw FormatError("data", fmt::format("'{}' holds no sentences", file.string()), "is it a CoNLL file?");
  return ds;
}

}  // namespace graft::data
