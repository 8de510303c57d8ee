// Encoding arbitrary bytes and decoding arbitrary ids with the committed tokenizers:
// byte-level BPE (RoBERTa, Llama 3, Qwen2), SentencePiece-style BPE (LLaMA-2, Metaspace),
// WordPiece (tiny BERT vocab.txt) and, when ../shared has it, llama2.c's tok512.bin.
// The input is the text (a tab splits off a pair, spaces split words for encode_words);
// its bytes read two at a time are also decoded as ids, in range or not.
#include <algorithm>
#include <filesystem>
#include <memory>

#include "fuzz_util.h"
#include "text/bpe.h"
#include "text/llama2c_tokenizer.h"
#include "text/wordpiece.h"

using namespace graft;
using namespace graft::text;
namespace fs = std::filesystem;

namespace {

struct Loaded {
  std::vector<std::unique_ptr<BpeTokenizer>> bpe;
  std::vector<std::unique_ptr<WordPieceTokenizer>> wordpiece;
  std::unique_ptr<Llama2cTokenizer> llama2c;
  Loaded() {
    const fs::path bpe_dir = fuzz::source_dir() / "tests/golden/bpe";
    for (const char* file : {"roberta/tokenizer.json", "llama/tokenizer.json", "llama3.tokenizer.json", "qwen2.tokenizer.json",
                             "llama_metaspace.tokenizer.json"})
      bpe.push_back(std::make_unique<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(bpe_dir / file)));
    bpe.push_back(std::make_unique<BpeTokenizer>(BpeTokenizer::from_vocab_and_merges(bpe_dir / "roberta_vocab_merges")));
    const fs::path vocab = fuzz::source_dir() / "tests/golden/backbones/tiny_bert/vocab.txt";
    wordpiece.push_back(std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_file(vocab)));
    WordPieceConfig cased;
    cased.lowercase = cased.strip_accents = false;
    cased.max_input_chars_per_word = 8;
    wordpiece.push_back(std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_file(vocab, cased)));
    const fs::path tok512 = fs::path(GRAFT_SHARED_DIR) / "models/stories260K/tok512.bin";
    if (fs::exists(tok512)) llama2c = std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(tok512, 512));
  }
};

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::size_t start = 0;
  while (start <= text.size() && words.size() < 64) {
    const std::size_t space = text.find(' ', start);
    words.emplace_back(text.substr(start, space == std::string_view::npos ? std::string_view::npos : space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  return words;
}

// Ids from the input's bytes, spread over [-4, vocab + 4).
std::vector<std::int64_t> ids_of(const std::uint8_t* data, std::size_t size, std::size_t vocab) {
  std::vector<std::int64_t> ids;
  const auto span = static_cast<std::int64_t>(vocab) + 8;
  for (std::size_t i = 0; i + 1 < size && ids.size() < 512; i += 2)
    ids.push_back(static_cast<std::int64_t>(data[i] | (data[i + 1] << 8)) % span - 4);
  return ids;
}

// What a model may be fed: ids inside the vocabulary, three parallel vectors, at most
// max_length long.
void check(const Tokenizer& tok, const Encoding& e, std::size_t max_length) {
  if (e.ids.size() > max_length || e.attention_mask.size() != e.ids.size() ||
      (!e.token_type_ids.empty() && e.token_type_ids.size() != e.ids.size()))
    __builtin_trap();
  for (auto id : e.ids)
    if (id < 0 || id >= static_cast<std::int64_t>(tok.vocab_size())) __builtin_trap();
}

void common(const Tokenizer& tok, std::string_view text, std::string_view pair, bool has_pair,
            const std::vector<std::string>& words, const std::vector<std::int64_t>& ids) {
  for (std::size_t max_length : {std::size_t{512}, std::size_t{5}})
    fuzz::expect_errors([&] { check(tok, tok.encode(text, pair, has_pair, max_length), max_length); });
  fuzz::expect_errors([&] {
    std::vector<std::int64_t> starts;
    const Encoding e = tok.encode_words(words, starts, 24);
    check(tok, e, 24);
    if (starts.size() != e.ids.size()) __builtin_trap();
    for (auto s : starts)
      if (s < -1 || s >= static_cast<std::int64_t>(words.size())) __builtin_trap();
  });
  fuzz::expect_errors([&] { (void)tok.decode(ids); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Loaded loaded;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t tab = input.find('\t');
  const std::string_view text = input.substr(0, tab);
  const std::string_view pair = tab == std::string_view::npos ? std::string_view{} : input.substr(tab + 1);
  const bool has_pair = tab != std::string_view::npos;
  const auto words = split_words(text);

  for (const auto& tok : loaded.bpe) {
    const auto ids = ids_of(data, size, tok->vocab_size());
    common(*tok, text, pair, has_pair, words, ids);
    fuzz::expect_errors([&] { (void)tok->tokenize(input); });
    fuzz::expect_errors([&] { (void)tok->decode(ids, false); });
  }
  for (const auto& tok : loaded.wordpiece) {
    const auto ids = ids_of(data, size, tok->vocab_size());
    common(*tok, text, pair, has_pair, words, ids);
    fuzz::expect_errors([&] { (void)tok->tokenize(input); });
    fuzz::expect_errors([&] { (void)tok->decode(ids, false); });
  }
  if (loaded.llama2c) {
    const auto ids = ids_of(data, size, loaded.llama2c->vocab_size());
    fuzz::expect_errors([&] { check(*loaded.llama2c, loaded.llama2c->encode(text, pair, has_pair, 512), 512); });
    fuzz::expect_errors([&] {
      for (auto id : loaded.llama2c->encode_ids(input, true, true))
        if (id < 0 || id >= static_cast<std::int64_t>(loaded.llama2c->vocab_size())) __builtin_trap();
    });
    fuzz::expect_errors([&] { (void)loaded.llama2c->decode(ids); });
  }
  return 0;
}
