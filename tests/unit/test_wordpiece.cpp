// WordPiece tokenizer: id-for-id agreement with Hugging Face on the real
// all-MiniLM-L6-v2 vocabulary (tests/golden/tokenizer_fixtures.json, made by
// tests/golden/make_tokenizer_fixtures.py), and behaviour on a tiny in-test vocabulary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/wordpiece.h"
#include "graft/error.h"

namespace fs = std::filesystem;
using graft::text::WordPieceConfig;
using graft::text::WordPieceTokenizer;
using Ids = std::vector<std::int64_t>;

namespace {

fs::path model_dir() {
  if (const char* env = std::getenv("GRAFT_MINILM_DIR"); env && *env) return env;
  return fs::path(GRAFT_SOURCE_DIR) / ".cache/models/all-MiniLM-L6-v2";
}

nlohmann::json fixtures() {
  std::ifstream in(fs::path(GRAFT_SOURCE_DIR) / "tests/golden/tokenizer_fixtures.json");
  EXPECT_TRUE(in) << "tests/golden/tokenizer_fixtures.json is missing";
  return nlohmann::json::parse(in);
}

// Fails (never skips) when the model files are absent: the suite must not pass vacuously.
#define REQUIRE_MODEL_DIR()                                                                  \
  ASSERT_TRUE(fs::exists(model_dir() / "vocab.txt") && fs::exists(model_dir() / "tokenizer.json")) \
      << "all-MiniLM-L6-v2 tokenizer files not found in " << model_dir()                    \
      << "; run `make models` (or set GRAFT_MINILM_DIR to a folder holding them)"

// Every fixture case through `tok`: ids, token types, mask, pieces and decode.
void check_against_reference(const WordPieceTokenizer& tok, const std::string& loader) {
  const auto data = fixtures();
  ASSERT_GE(data["cases"].size(), 50u);
  for (const auto& c : data["cases"]) {
    SCOPED_TRACE(loader + " / " + c["name"].get<std::string>());
    const std::string text = c["text"];
    const bool has_pair = c.contains("pair");
    const std::string pair = has_pair ? c["pair"].get<std::string>() : "";
    const std::size_t max_length = c.value("max_length", std::size_t{100000});
    const auto enc = tok.encode(text, pair, has_pair, max_length);
    EXPECT_EQ(enc.ids, c["ids"].get<Ids>());
    EXPECT_EQ(enc.token_type_ids, c["token_type_ids"].get<Ids>());
    EXPECT_EQ(enc.attention_mask, c["attention_mask"].get<Ids>());
    if (c.contains("tokens")) EXPECT_EQ(tok.tokenize(text), c["tokens"].get<std::vector<std::string>>());
    if (c.contains("decoded")) EXPECT_EQ(tok.decode(enc.ids), c["decoded"].get<std::string>());
  }
}

// A scratch folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("graft_wordpiece_" + std::to_string(::getpid()) + "_" +
                                                 std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
    return path_ / name;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

const std::vector<std::string> kTinyVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "##a", "##ab",
    "##ffable", "hello", "world", "!", ",", ".", "runne", "run", "##ner", "a", "##a",
    "b", "c", "cafe"};

std::string lines(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t + "\n";
  return out;
}

WordPieceTokenizer tiny(const TempDir& dir, WordPieceConfig config = {}) {
  return WordPieceTokenizer::from_vocab_file(dir.write("vocab.txt", lines(kTinyVocab)), config);
}

// The message of the graft::Error subtype E that `fn` throws ("" if it throws none).
template <class E>
std::string error_text(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ---------------------------------------------------------------- Hugging Face parity

TEST(WordPieceReference, VocabTxtMatchesHuggingFace) {
  REQUIRE_MODEL_DIR();
  auto tok = WordPieceTokenizer::from_vocab_file(model_dir() / "vocab.txt", {});
  EXPECT_EQ(tok.vocab_size(), 30522u);
  check_against_reference(tok, "vocab.txt");
}

TEST(WordPieceReference, TokenizerJsonMatchesHuggingFace) {
  REQUIRE_MODEL_DIR();
  auto tok = WordPieceTokenizer::from_tokenizer_json(model_dir() / "tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), 30522u);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.unk_id(), 100);
  EXPECT_EQ(tok.cls_id(), 101);
  EXPECT_EQ(tok.sep_id(), 102);
  check_against_reference(tok, "tokenizer.json");
}

TEST(WordPieceReference, FolderWithAndWithoutTokenizerJson) {
  REQUIRE_MODEL_DIR();
  check_against_reference(WordPieceTokenizer::from_folder(model_dir()), "folder");
  // Without tokenizer.json the folder loader falls back to vocab.txt + tokenizer_config.json.
  TempDir dir;
  fs::copy_file(model_dir() / "vocab.txt", dir.path() / "vocab.txt");
  fs::copy_file(model_dir() / "tokenizer_config.json", dir.path() / "tokenizer_config.json");
  check_against_reference(WordPieceTokenizer::from_folder(dir.path()), "folder (vocab.txt)");
}

TEST(WordPieceReference, BatchPadsToLongest) {
  REQUIRE_MODEL_DIR();
  const auto data = fixtures();
  auto tok = WordPieceTokenizer::from_folder(model_dir());
  const auto batch = tok.encode_batch(data["batch"]["texts"].get<std::vector<std::string>>());
  const auto& rows = data["batch"]["rows"];
  ASSERT_EQ(batch.batch, rows.size());
  Ids ids, types, mask;
  for (const auto& row : rows) {
    ASSERT_EQ(row["ids"].size(), batch.length);
    for (auto v : row["ids"]) ids.push_back(v);
    for (auto v : row["token_type_ids"]) types.push_back(v);
    for (auto v : row["attention_mask"]) mask.push_back(v);
  }
  EXPECT_EQ(batch.ids, ids);
  EXPECT_EQ(batch.token_type_ids, types);
  EXPECT_EQ(batch.attention_mask, mask);
}

// ---------------------------------------------------------------- tiny vocabulary

TEST(WordPiece, GreedyLongestMatchFirst) {
  TempDir dir;
  auto tok = tiny(dir);
  // "##affable"-style alternatives exist, but the longest prefix wins at each step.
  EXPECT_EQ(tok.tokenize("unaffable"), (std::vector<std::string>{"un", "##aff", "##able"}));
  EXPECT_EQ(tok.encode_tokens("unaffable"), (Ids{5, 6, 7}));
  // No backtracking: "runne" matches first, "##r" does not exist, so the word is [UNK]
  // even though "run ##ner" would have worked.
  EXPECT_EQ(tok.tokenize("runner"), (std::vector<std::string>{"[UNK]"}));
  // Normalisation: case, accents, punctuation split, whitespace runs.
  EXPECT_EQ(tok.tokenize("  HELLO,\tWorld!  Café "),
            (std::vector<std::string>{"hello", ",", "world", "!", "cafe"}));
  // Special tokens in the raw text stay whole; a lower-case look-alike does not.
  EXPECT_EQ(tok.tokenize("hello [MASK] world"), (std::vector<std::string>{"hello", "[MASK]", "world"}));
  EXPECT_EQ(tok.token_id("##aff"), 6);
  EXPECT_EQ(tok.token_id("absent"), -1);
  EXPECT_EQ(tok.mask_id(), 4);
}

TEST(WordPiece, UnknownAndOverLongWords) {
  TempDir dir;
  auto tok = tiny(dir);
  EXPECT_EQ(tok.encode_tokens("hello xyz world"), (Ids{11, 1, 12}));
  const std::string hundred(100, 'a'), long_word(101, 'a');
  EXPECT_EQ(tok.encode_tokens(hundred).size(), 100u);  // a ##a ##a ...
  EXPECT_EQ(tok.encode_tokens(long_word), (Ids{1}));
  WordPieceConfig short_words;
  short_words.max_input_chars_per_word = 5;
  auto strict = tiny(dir, short_words);
  EXPECT_EQ(strict.tokenize("hello runne unaffable"), (std::vector<std::string>{"hello", "runne", "[UNK]"}));
}

TEST(WordPiece, EncodeAddsSpecialsAndTypes) {
  TempDir dir;
  auto tok = tiny(dir);
  auto single = tok.encode("hello world");
  EXPECT_EQ(single.ids, (Ids{2, 11, 12, 3}));
  EXPECT_EQ(single.token_type_ids, (Ids{0, 0, 0, 0}));
  EXPECT_EQ(single.attention_mask, (Ids{1, 1, 1, 1}));
  auto pair = tok.encode("hello", "world !", true);
  EXPECT_EQ(pair.ids, (Ids{2, 11, 3, 12, 13, 3}));
  EXPECT_EQ(pair.token_type_ids, (Ids{0, 0, 0, 1, 1, 1}));
  auto empty_pair = tok.encode("", "", true);
  EXPECT_EQ(empty_pair.ids, (Ids{2, 3, 3}));
}

TEST(WordPiece, PairTruncationLongestFirst) {
  TempDir dir;
  auto tok = tiny(dir);
  auto lengths = [&](const std::string& a, const std::string& b, std::size_t max_length) {
    const auto enc = tok.encode(a, b, true, max_length);
    std::size_t first = 0, second = 0;
    for (std::size_t i = 0; i < enc.ids.size(); ++i)
      if (enc.ids[i] != 2 && enc.ids[i] != 3) (enc.token_type_ids[i] == 0 ? first : second)++;
    EXPECT_EQ(enc.ids.size(), std::min(max_length, first + second + 3));
    return std::pair{first, second};
  };
  const std::string a8 = "a a a a a a a a", b3 = "b b b", a5 = "a a a a a", b5 = "b b b b b",
                    a9 = "a a a a a a a a a", b6 = "b b b b b b";
  EXPECT_EQ(lengths(a8, b3, 10), (std::pair<std::size_t, std::size_t>{4, 3}));  // only the longer is cut
  EXPECT_EQ(lengths(b3, a8, 10), (std::pair<std::size_t, std::size_t>{3, 4}));
  EXPECT_EQ(lengths(a5, b5, 10), (std::pair<std::size_t, std::size_t>{3, 4}));  // tie: odd one to the second
  EXPECT_EQ(lengths(a9, b6, 11), (std::pair<std::size_t, std::size_t>{4, 4}));  // both cut to half
  EXPECT_EQ(lengths(a5, b3, 20), (std::pair<std::size_t, std::size_t>{5, 3}));  // fits: untouched
  EXPECT_EQ(tok.encode(a8, {}, false, 5).ids, (Ids{2, 19, 19, 19, 3}));
  EXPECT_THROW(tok.encode("a", "b", true, 2), graft::ConfigError);
}

TEST(WordPiece, DecodeJoinsPiecesAndCleansSpaces) {
  TempDir dir;
  auto tok = tiny(dir);
  const auto ids = tok.encode("unaffable, hello world!").ids;
  EXPECT_EQ(tok.decode(ids), "unaffable, hello world!");
  EXPECT_EQ(tok.decode(ids, false), "[CLS] unaffable, hello world! [SEP]");
  EXPECT_EQ(tok.decode({6, 7}), "##affable");  // a leading "##" piece keeps its prefix
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_THROW(tok.decode({999}), graft::ConfigError);
}

TEST(WordPiece, BatchPadding) {
  TempDir dir;
  auto tok = tiny(dir);
  const auto batch = tok.encode_batch({"hello", "hello world !"}, {"a", "b"});
  EXPECT_EQ(batch.batch, 2u);
  EXPECT_EQ(batch.length, 7u);
  EXPECT_EQ(batch.ids, (Ids{2, 11, 3, 19, 3, 0, 0, 2, 11, 12, 13, 3, 21, 3}));
  EXPECT_EQ(batch.token_type_ids, (Ids{0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(batch.attention_mask, (Ids{1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_THROW(tok.encode_batch({"a", "b"}, {"c"}), graft::ConfigError);
}

TEST(WordPiece, FolderReadsTokenizerConfig) {
  TempDir dir;
  dir.write("vocab.txt", lines(kTinyVocab));
  dir.write("tokenizer_config.json", R"({"do_lower_case": false, "strip_accents": null,
      "unk_token": {"content": "[UNK]"}, "tokenize_chinese_chars": true})");
  auto cased = WordPieceTokenizer::from_folder(dir.path());
  EXPECT_FALSE(cased.config().lowercase);
  EXPECT_FALSE(cased.config().strip_accents);  // null follows do_lower_case
  EXPECT_EQ(cased.tokenize("Hello hello"), (std::vector<std::string>{"[UNK]", "hello"}));
}

// ---------------------------------------------------------------- errors

TEST(WordPieceErrors, MissingFiles) {
  TempDir dir;
  const auto missing = dir.path() / "nope" / "vocab.txt";
  const auto text = error_text<graft::IoError>([&] { WordPieceTokenizer::from_vocab_file(missing); });
  EXPECT_NE(text.find(missing.string()), std::string::npos) << text;
  EXPECT_NE(text.find("make models"), std::string::npos) << text;
  const auto folder = error_text<graft::IoError>([&] { WordPieceTokenizer::from_folder(dir.path() / "nope"); });
  EXPECT_NE(folder.find("not found"), std::string::npos) << folder;
  const auto empty = error_text<graft::IoError>([&] { WordPieceTokenizer::from_folder(dir.path()); });
  EXPECT_NE(empty.find("neither tokenizer.json nor vocab.txt"), std::string::npos) << empty;
}

TEST(WordPieceErrors, VocabWithoutRequiredSpecials) {
  TempDir dir;
  const auto path = dir.write("vocab.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
  const auto text = error_text<graft::FormatError>([&] { WordPieceTokenizer::from_vocab_file(path); });
  EXPECT_NE(text.find(path.string()), std::string::npos) << text;
  EXPECT_NE(text.find("unk_token \"[UNK]\""), std::string::npos) << text;
  EXPECT_NE(text.find("hint:"), std::string::npos) << text;
  const auto no_pad = dir.write("vocab2.txt", "[UNK]\n[CLS]\n[SEP]\n");
  EXPECT_NE(error_text<graft::FormatError>([&] { WordPieceTokenizer::from_vocab_file(no_pad); }).find("[PAD]"),
            std::string::npos);
}

TEST(WordPieceErrors, CorruptTokenizerJson) {
  TempDir dir;
  auto message = [&](const std::string& content) {
    const auto path = dir.write("tokenizer.json", content);
    return error_text<graft::FormatError>([&] { WordPieceTokenizer::from_tokenizer_json(path); });
  };
  const auto not_json = message("{\"model\": {\"type\": \"WordPiece\", ");
  EXPECT_NE(not_json.find("tokenizer.json: not valid JSON"), std::string::npos) << not_json;
  EXPECT_NE(not_json.find("hint:"), std::string::npos) << not_json;
  const auto bpe = message(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})");
  EXPECT_NE(bpe.find("\"model.type\" is \"BPE\""), std::string::npos) << bpe;
  const auto no_vocab = message(R"({"model": {"type": "WordPiece"}})");
  EXPECT_NE(no_vocab.find("\"model.vocab\""), std::string::npos) << no_vocab;
  const auto no_model = message(R"({"version": "1.0"})");
  EXPECT_NE(no_model.find("\"model\""), std::string::npos) << no_model;
  const auto bad_norm = message(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
      "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  EXPECT_NE(bad_norm.find("\"normalizer.type\""), std::string::npos) << bad_norm;
  const auto bad_type = message(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
      "normalizer": {"type": "BertNormalizer", "lowercase": "yes"}, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  EXPECT_NE(bad_type.find("\"normalizer.lowercase\" is not a boolean"), std::string::npos) << bad_type;
  const auto no_specials = message(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}},
      "normalizer": null, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  EXPECT_NE(no_specials.find("cls_token \"[CLS]\""), std::string::npos) << no_specials;
}

TEST(WordPieceErrors, InvalidUtf8NamesTheByteOffset) {
  TempDir dir;
  auto tok = tiny(dir);
  for (const auto& [input, offset] : std::vector<std::pair<std::string, int>>{
           {"abc\xff", 3}, {"hello \xe4\xb8", 6}, {"\xc0\xaf", 0}, {"ok \xed\xa0\x80 surrogate", 3}}) {
    const std::string& bytes = input;  // clang 14 cannot capture a structured binding
    const auto text = error_text<graft::FormatError>([&] { tok.encode(bytes); });
    EXPECT_NE(text.find("byte offset " + std::to_string(offset)), std::string::npos) << text;
    EXPECT_NE(text.find("must be UTF-8"), std::string::npos) << text;
  }
}
