#include "data/tabular.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "graft/error.h"
#include "io/json_config.h"

namespace graft::data {
namespace {

struct RawRow {
  std::string text, pair, label;
  bool has_pair = false;
  std::size_t line = 0;
};

[[noreturn]] void bad(const std::filesystem::path& file, std::size_t line, const std::string& what, const std::string& hint) {
  throw FormatError("data", fmt::format("{}:{}: {}", file.string(), line, what), hint);
}

std::ifstream open(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError("data", fmt::format("cannot read '{}'", file.string()), "check the path");
  return in;
}

// Splits one CSV record, which may span lines when a quoted field holds newlines.
bool read_record(std::istream& in, std::vector<std::string>& fields, std::size_t& line, const std::filesystem::path& file) {
  fields.clear();
  std::string field, text;
  if (!std::getline(in, text)) return false;
  ++line;
  const std::size_t start_line = line;
  bool quoted = false;
  for (std::size_t i = 0;; ++i) {
    if (i == text.size()) {
      if (!quoted) break;
      std::string more;
      if (!std::getline(in, more)) bad(file, start_line, "a quoted field is never closed", "close it with \"");
      ++line;
      field += '\n';
      text = more;
      i = static_cast<std::size_t>(-1);
      continue;
    }
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(field);
      field.clear();
    } else if (c != '\r') {
      field += c;
    }
  }
  fields.push_back(field);
  return true;
}

Dataset finish(const std::filesystem::path& file, std::vector<RawRow> rows, bool regression, std::vector<std::string> label_names) {
  if (rows.empty()) throw FormatError("data", fmt::format("'{}' holds no rows", file.string()), "the file is empty or has only a header");
  Dataset ds;
  ds.task = file.stem().string();
  ds.source = file;
  ds.kind = regression ? TaskKind::regression : TaskKind::classification;
  ds.metric = regression ? "pearson" : "accuracy";
  if (!regression && label_names.empty()) {
    std::set<std::string> classes;
    for (const auto& r : rows) classes.insert(r.label);
    label_names.assign(classes.begin(), classes.end());
  }
  ds.label_names = label_names;
  for (const auto& r : rows) {
    if (r.label.empty()) bad(file, r.line, "the label is empty", "every row needs its label: a class name or number");
    Example ex;
    ex.text = r.text;
    ex.text_pair = r.pair;
    ex.has_pair = r.has_pair;
    ex.line = r.line;
    require_utf8(r.text + r.pair + r.label, file, r.line);
    if (regression) {
      ex.label = parse_number_label(r.label, file, r.line, "regression labels are finite numbers");
    } else {
      auto it = std::find(label_names.begin(), label_names.end(), r.label);
      if (it == label_names.end())
        bad(file, r.line, fmt::format("unknown label '{}'", r.label), fmt::format("labels: {}", fmt::join(label_names, ", ")));
      ex.label = static_cast<double>(it - label_names.begin());
    }
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

}  // namespace

Dataset read_csv(const std::filesystem::path& file, bool regression, std::vector<std::string> label_names) {
  auto in = open(file);
  std::vector<std::string> header, fields;
  std::size_t line = 0;
  if (!read_record(in, header, line, file)) throw FormatError("data", fmt::format("'{}' is empty", file.string()), "it needs a header row");
  if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0].erase(0, 3);
  auto column = [&](const char* name, bool required) -> int {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end() && required)
      bad(file, 1, fmt::format("header has no column '{}' (columns: {})", name, fmt::join(header, " | ")),
          header.size() == 1 ? "the file is not comma-separated" : "name the columns text, text_pair (optional), label");
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int text = column("text", true), pair = column("text_pair", false), label = column("label", true);
  std::vector<RawRow> rows;
  while (read_record(in, fields, line, file)) {
    if (fields.size() == 1 && fields[0].empty()) continue;
    if (fields.size() != header.size())
      bad(file, line, fmt::format("row has {} columns, the header {}", fields.size(), header.size()),
          "quote fields that contain commas");
    rows.push_back({fields[text], pair >= 0 ? fields[pair] : "", fields[label], pair >= 0, line});
  }
  return finish(file, std::move(rows), regression, std::move(label_names));
}

Dataset read_jsonl(const std::filesystem::path& file, bool regression, std::vector<std::string> label_names) {
  auto in = open(file);
  std::string text;
  std::size_t line = 0;
  std::vector<RawRow> rows;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    require_utf8(text, file, line);
    nlohmann::json j;
    try {
      io::check_json_depth(text, fmt::format("{} line {}", file.string(), line), 64);
      j = nlohmann::json::parse(text);
    } catch (const FormatError&) {
      bad(file, line, "nests too deeply", "JSONL rows are flat objects");
    } catch (const nlohmann::json::exception&) {
      bad(file, line, "not a JSON object", "JSONL holds one {\"text\": ..., \"label\": ...} object per line");
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string() || !j.contains("label"))
      bad(file, line, "row needs a string \"text\" and a \"label\"", "JSONL rows: {\"text\", \"text_pair\"?, \"label\"}");
    RawRow r;
    r.line = line;
    r.text = j["text"];
    if (j.contains("text_pair")) {
      if (!j["text_pair"].is_string()) bad(file, line, "\"text_pair\" is not a string", "");
      r.pair = j["text_pair"];
      r.has_pair = true;
    }
    if (j["label"].is_null() || j["label"].is_structured())
      bad(file, line, fmt::format("\"label\" is {}", j["label"].is_null() ? "null" : "not a string or number"),
          "every row needs its label: a class name or number");
    r.label = j["label"].is_string() ? j["label"].get<std::string>() : j["label"].dump();
    rows.push_back(std::move(r));
  }
  return finish(file, std::move(rows), regression, std::move(label_names));
}

Dataset read_text_lines(const std::filesystem::path& file) {
  auto in = open(file);
  Dataset ds;
  ds.task = "text";
  ds.source = file;
  ds.kind = TaskKind::causal_lm;
  ds.metric = "perplexity";
  std::string text;
  std::size_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    require_utf8(text, file, line);
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    Example ex;
    ex.text = text;
    ex.line = line;
    ds.examples.push_back(std::move(ex));
  }
  if (ds.examples.empty()) throw FormatError("data", fmt::format("'{}' holds no text", file.string()), "one example per line");
  return ds;
}

}  // namespace graft::data
