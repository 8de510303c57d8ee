// Task data readers (framework/data/glue.h, tabular.h, conll.h) and batching: the input
// is read as each GLUE task's TSV, as CSV and JSONL (classification and regression), as
// plain text lines and as CoNLL-2003; what reads is batched with the tiny BERT WordPiece
// tokenizer (data/batching.h), as training would.
#include <cmath>
#include <filesystem>

#include "data/batching.h"
#include "data/conll.h"
#include "data/glue.h"
#include "data/tabular.h"
#include "fuzz_util.h"
#include "text/wordpiece.h"

using namespace graft;
namespace fs = std::filesystem;

namespace {

void batch(const data::Dataset& ds, const text::Tokenizer& tok) {
  if (ds.examples.empty()) __builtin_trap();  // readers refuse empty files
  for (const auto& ex : ds.examples) {
    if (ds.kind == TaskKind::regression && !std::isfinite(ex.label)) __builtin_trap();
    if (ds.kind == TaskKind::classification || ds.kind == TaskKind::token_classification) {
      const auto n = static_cast<double>(ds.label_names.size());
      if (ds.kind == TaskKind::classification && !(ex.label >= 0 && ex.label < n)) __builtin_trap();
      if (ex.words.size() != ex.word_labels.size()) __builtin_trap();
      for (auto l : ex.word_labels)
        if (l < 0 || l >= static_cast<std::int64_t>(n)) __builtin_trap();
    }
  }
  (void)data::make_batches(ds, tok, 3, 24, true, 7);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto tok =
      text::WordPieceTokenizer::from_vocab_file(fuzz::source_dir() / "tests/golden/backbones/tiny_bert/vocab.txt");
  static const fs::path dir = fuzz::folder("data");
  static const std::vector<std::string> tasks = data::glue_tasks();

  const fs::path tsv = fuzz::write_file(dir / "dev.tsv", data, size);
  for (const auto& task : tasks) fuzz::expect_errors([&] { batch(data::read_glue_file(tsv, task), tok); });
  const fs::path csv = fuzz::write_file(dir / "rows.csv", data, size);
  const fs::path jsonl = fuzz::write_file(dir / "rows.jsonl", data, size);
  for (bool regression : {false, true}) {
    fuzz::expect_errors([&] { batch(data::read_csv(csv, regression), tok); });
    fuzz::expect_errors([&] { batch(data::read_jsonl(jsonl, regression), tok); });
  }
  fuzz::expect_errors([&] { batch(data::read_csv(csv, false, {"neg", "pos"}), tok); });
  fuzz::expect_errors([&] { batch(data::read_jsonl(jsonl, false, {"0", "1"}), tok); });
  fuzz::expect_errors([&] { batch(data::read_text_lines(fuzz::write_file(dir / "lines.txt", data, size)), tok); });
  fuzz::expect_errors([&] { batch(data::read_conll(fuzz::write_file(dir / "train.txt", data, size)), tok); });
  return 0;
}
