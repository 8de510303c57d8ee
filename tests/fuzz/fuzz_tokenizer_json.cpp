// Loading tokenizers (framework/text/tokenizer_json.cpp, bpe.cpp, bpe_pipeline.cpp,
// wordpiece.cpp): the input is read as a tokenizer.json (BPE or WordPiece, dispatched as
// load_backbone does), as a BERT vocab.txt, as a RoBERTa vocab.json beside the
// committed merges.txt, and as the tokenizer_config.json of a RoBERTa (vocab.json +
// merges.txt) and a BERT (vocab.txt) folder. Whatever loads then encodes a fixed text (and a piece of the
// input as text) and decodes a range of ids, so the settings it read are exercised.
#include <algorithm>
#include <filesystem>

#include "fuzz_util.h"
#include "text/bpe.h"
#include "text/wordpiece.h"

using namespace graft;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kText =
    "Hello world! The cat sat on the mat. don't  STOP\t\tüñïcödé ÀÉ 你好 ｆｕｌｌ <s></s>[CLS] [MASK] <unk> 123,456 \n\x01 end";

void exercise(const text::Tokenizer& tok, std::string_view extra) {
  if (tok.pad_id() < 0 || tok.pad_id() >= static_cast<std::int64_t>(tok.vocab_size())) __builtin_trap();  // pads index embeddings
  for (std::size_t max_length : {std::size_t{512}, std::size_t{7}, std::size_t{1}}) {
    fuzz::expect_errors([&] { (void)tok.encode(kText, {}, false, max_length); });
    fuzz::expect_errors([&] { (void)tok.encode(kText, extra, true, max_length); });
    fuzz::expect_errors([&] { (void)tok.encode(extra, {}, false, max_length); });
  }
  std::vector<std::int64_t> ids;
  for (std::int64_t i = -1; i < static_cast<std::int64_t>(std::min<std::size_t>(tok.vocab_size(), 300)) + 1; ++i) ids.push_back(i);
  fuzz::expect_errors([&] { (void)tok.decode(ids); });
  ids.erase(ids.begin());
  ids.pop_back();
  fuzz::expect_errors([&] { (void)tok.decode(ids); });
  std::vector<std::int64_t> starts;
  fuzz::expect_errors([&] { (void)tok.encode_words({"Hello", "world", "", "!", std::string(extra)}, starts, 16); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path dir = fuzz::folder("tokenizer");
  static const fs::path roberta = [] {
    const auto d = fuzz::folder("roberta");
    const fs::path merges = fuzz::source_dir() / "tests/golden/bpe/roberta_vocab_merges/merges.txt";
    if (!fs::exists(d / "merges.txt")) fs::create_symlink(merges, d / "merges.txt");
    return d;
  }();
  static const fs::path roberta_config = [] {
    const auto d = fuzz::folder("roberta_config");
    const fs::path fixture = fuzz::source_dir() / "tests/golden/bpe/roberta_vocab_merges";
    for (const char* file : {"vocab.json", "merges.txt"})
      if (!fs::exists(d / file)) fs::create_symlink(fixture / file, d / file);
    return d;
  }();
  static const fs::path bert_config = [] {
    const auto d = fuzz::folder("bert_config");
    const fs::path vocab = fuzz::source_dir() / "tests/golden/backbones/tiny_bert/vocab.txt";
    if (!fs::exists(d / "vocab.txt")) fs::create_symlink(vocab, d / "vocab.txt");
    return d;
  }();
  const std::string_view extra(reinterpret_cast<const char*>(data), std::min<std::size_t>(size, 200));

  const fs::path json = fuzz::write_file(dir / "tokenizer.json", data, size);
  fuzz::expect_errors([&] {
    if (text::BpeTokenizer::is_bpe(json))
      exercise(text::BpeTokenizer::from_tokenizer_json(json), extra);
    else
      exercise(text::WordPieceTokenizer::from_tokenizer_json(json), extra);
  });
  const fs::path vocab_txt = fuzz::write_file(dir / "vocab.txt", data, size);
  fuzz::expect_errors([&] { exercise(text::WordPieceTokenizer::from_vocab_file(vocab_txt), extra); });
  fuzz::write_file(roberta / "vocab.json", data, size);
  fuzz::expect_errors([&] { exercise(text::BpeTokenizer::from_vocab_and_merges(roberta), extra); });
  // The input as tokenizer_config.json beside a good vocabulary.
  fuzz::write_file(roberta_config / "tokenizer_config.json", data, size);
  fuzz::expect_errors([&] { exercise(text::BpeTokenizer::from_vocab_and_merges(roberta_config), extra); });
  fuzz::write_file(bert_config / "tokenizer_config.json", data, size);
  fuzz::expect_errors([&] { exercise(text::WordPieceTokenizer::from_folder(bert_config), extra); });
  return 0;
}
