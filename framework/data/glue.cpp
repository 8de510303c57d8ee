#include "data/glue.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>

#include "graft/error.h"

namespace graft::data {
namespace {

struct Spec {
  std::string folder;  // under glue/
  bool header;
  std::vector<std::string> columns;  // text, [pair], label — by header name or, without header, "#index"
  TaskKind kind;
  std::vector<std::string> labels;   // label strings in class order (empty for regression)
  std::string metric;
};

const std::map<std::string, Spec>& specs() {
  static const std::map<std::string, Spec> table = {
      {"cola", {"CoLA", false, {"#3", "#1"}, TaskKind::classification, {"0", "1"}, "matthews"}},
      {"sst2", {"SST-2", true, {"sentence", "label"}, TaskKind::classification, {"0", "1"}, "accuracy"}},
      {"mrpc", {"MRPC", true, {"#1 String", "#2 String", "Quality"}, TaskKind::classification, {"0", "1"}, "f1"}},
      {"stsb", {"STS-B", true, {"sentence1", "sentence2", "score"}, TaskKind::regression, {}, "pearson"}},
      {"rte", {"RTE", true, {"sentence1", "sentence2", "label"}, TaskKind::classification, {"entailment", "not_entailment"}, "accuracy"}},
      {"qnli", {"QNLI", true, {"question", "sentence", "label"}, TaskKind::classification, {"entailment", "not_entailment"}, "accuracy"}},
      {"wnli", {"WNLI", true, {"sentence1", "sentence2", "label"}, TaskKind::classification, {"0", "1"}, "accuracy"}},
  };
  return table;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

[[noreturn]] void bad_row(const std::filesystem::path& file, std::size_t line, const std::string& what, const std::string& hint) {
  throw FormatError("data", fmt::format("{}:{}: {}", file.string(), line, what), hint);
}

}  // namespace

std::vector<std::string> glue_tasks() {
  std::vector<std::string> out;
  for (const auto& [name, spec] : specs()) out.push_back(name);
  return out;
}

std::string canonical_glue_task(const std::string& name) {
  std::string key;
  for (char c : name)
    if (c != '-' && c != '_') key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!specs().count(key))
    throw ConfigError("data", fmt::format("unknown GLUE task '{}'", name), fmt::format("GLUE tasks: {}", fmt::join(glue_tasks(), ", ")));
  return key;
}

Dataset read_glue(const std::filesystem::path& glue_dir, const std::string& task, const std::string& split) {
  const std::string key = canonical_glue_task(task);
  if (split != "train" && split != "dev")
    throw ConfigError("data", fmt::format("unknown split '{}'", split), "GLUE splits here: train, dev");
  return read_glue_file(glue_dir / specs().at(key).folder / (split + ".tsv"), key);
}

Dataset read_glue_file(const std::filesystem::path& file, const std::string& task) {
  const Spec& spec = specs().at(canonical_glue_task(task));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError("data", fmt::format("cannot read '{}'", file.string()), "check the path to the GLUE folder (--data)");
  Dataset ds;
  ds.task = canonical_glue_task(task);
  ds.source = file;
  ds.kind = spec.kind;
  ds.label_names = spec.labels;
  ds.metric = spec.metric;

  std::string line;
  std::size_t number = 0;
  std::vector<int> index;  // column index of text, [pair], label
  std::size_t header_fields = 0;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // byte-order mark
    if (!line.empty() && line.back() == '\r') line.pop_back();
    require_utf8(line, file, number);
    if (line.empty()) continue;
    const std::vector<std::string> fields = split_tabs(line);
    if (index.empty()) {
      if (spec.header) {
        header_fields = fields.size();
        for (const auto& name : spec.columns) {
          auto it = std::find(fields.begin(), fields.end(), name);
          if (it == fields.end())
            bad_row(file, number,
                    fmt::format("header has no column '{}' (columns: {})", name, fmt::join(fields, " | ")),
                    fields.size() == 1 ? "the file is not tab-separated: GLUE files split on tabs" : "is this the right task's file?");
          index.push_back(static_cast<int>(it - fields.begin()));
        }
        continue;
      }
      for (const auto& name : spec.columns) index.push_back(std::stoi(name.substr(1)));
    }
    const std::size_t needed = static_cast<std::size_t>(*std::max_element(index.begin(), index.end())) + 1;
    if (fields.size() < needed)
      bad_row(file, number, fmt::format("row has {} columns, {} needed", fields.size(), std::max(needed, header_fields)),
              fields.size() == 1 ? "the row is not tab-separated: GLUE files split on tabs" : "a field is missing or the row is cut");
    Example ex;
    ex.line = number;
    ex.text = fields[index[0]];
    const bool pair = spec.columns.size() == 3;
    if (pair) {
      ex.text_pair = fields[index[1]];
      ex.has_pair = true;
    }
    const std::string& label = fields[index.back()];
    if (spec.kind == TaskKind::regression) {
      ex.label = parse_number_label(label, file, number, "STS-B scores are numbers from 0 to 5");
    } else {
      auto it = std::find(spec.labels.begin(), spec.labels.end(), label);
      if (it == spec.labels.end())
        bad_row(file, number, fmt::format("unknown label '{}'", label),
                fmt::format("{} labels: {}", ds.task, fmt::join(spec.labels, ", ")));
      ex.label = static_cast<double>(it - spec.labels.begin());
    }
    ds.examples.push_back(std::move(ex));
  }
  if (ds.examples.empty())
    throw FormatError("data", fmt::format("'{}' holds no rows", file.string()), "the file is empty or has only a header");
  return ds;
}

double parse_number_label(const std::string& text, const std::filesystem::path& file, std::size_t line, const std::string& hint) {
  double value = 0;
  try {
    std::size_t used = 0;
    value = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw FormatError("data", fmt::format("{}:{}: label '{}' is not a number", file.string(), line, text), hint);
  }
  if (!std::isfinite(value) || std::abs(value) > std::numeric_limits<float>::max())  // targets are f32
    throw FormatError("data", fmt::format("{}:{}: label '{}' is not a finite number", file.string(), line, text), hint);
  return value;
}

void require_utf8(const std::string& text, const std::filesystem::path& file, std::size_t line) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (s[i + k] & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;                                              // overlong
    if (ok && len == 3) ok = !(c == 0xE0 && s[i + 1] < 0xA0) && !(c == 0xED && s[i + 1] >= 0xA0);  // overlong, surrogates
    if (ok && len == 4) ok = !(c == 0xF0 && s[i + 1] < 0x90) && c <= 0xF4 && !(c == 0xF4 && s[i + 1] >= 0x90);
    if (!ok)
      throw FormatError("data", fmt::format("{}:{}: invalid UTF-8 at byte {} of the line", file.string(), line, i + 1),
                        "save the file as UTF-8");
    i += len;
  }
}

}  // namespace graft::data
