// BPE tokenizers from tokenizer.json: id-for-id agreement with Hugging Face's
// `tokenizers` on a byte-level (RoBERTa) and two SentencePiece-style (LLaMA) layouts
// (tests/golden/bpe, written by tests/golden/make_bpe_fixtures.py), GPT-2's split regex,
// and a clear error for each malformed or unsupported file.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/bpe.h"
#include "text/bpe_pipeline.h"
#include "graft/error.h"

namespace fs = std::filesystem;
using graft::text::BpeTokenizer;
using nlohmann::json;
using Ids = std::vector<std::int64_t>;

namespace {

const fs::path kDir = fs::path(GRAFT_SOURCE_DIR) / "tests/golden/bpe";

json read_json(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path << " is missing";
  return json::parse(in);
}

class BpeReference : public ::testing::TestWithParam<std::string> {};

TEST_P(BpeReference, EveryCaseMatchesHuggingFace) {
  const std::string file = GetParam();
  const BpeTokenizer tok = fs::is_directory(kDir / file) ? BpeTokenizer::from_vocab_and_merges(kDir / file)
                                                         : BpeTokenizer::from_tokenizer_json(kDir / file);
  EXPECT_EQ(tok.vocab_size(), 700u);
  const json cases = read_json(kDir / "cases.json").at(file);
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    SCOPED_TRACE(file + " / " + c["name"].get<std::string>());
    if (c.contains("words")) {
      Ids starts;
      const auto enc = tok.encode_words(c["words"].get<std::vector<std::string>>(), starts, 512);
      EXPECT_EQ(enc.ids, c["ids"].get<Ids>());
      // HF's word_ids mark every piece of a word; graft marks the first (labels go there).
      Ids first_pieces = c["word_ids"].get<Ids>();
      for (std::size_t i = first_pieces.size(); i-- > 1;)
        if (first_pieces[i] == first_pieces[i - 1]) first_pieces[i] = -1;
      EXPECT_EQ(starts, first_pieces);
      continue;
    }
    const std::string text = c["text"];
    const bool has_pair = c.contains("pair");
    const std::string pair = has_pair ? c["pair"].get<std::string>() : "";
    const auto enc = tok.encode(text, pair, has_pair, c.value("max_length", std::size_t{100000}));
    EXPECT_EQ(enc.ids, c["ids"].get<Ids>());
    EXPECT_EQ(enc.token_type_ids, c["type_ids"].get<Ids>());
    EXPECT_EQ(enc.attention_mask, Ids(enc.ids.size(), 1));
    EXPECT_EQ(tok.decode(enc.ids, true), c["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(enc.ids, false), c["decoded_with_specials"].get<std::string>());
    // HF reports an lstrip token with the space it swallowed; compare the others.
    if (!has_pair && !c.contains("max_length") && text.find("<mask>") == std::string::npos) {
      auto tokens = c["tokens"].get<std::vector<std::string>>();
      tokens.erase(tokens.begin());                          // <s>
      if (file.rfind("roberta", 0) == 0) tokens.pop_back();  // </s>
      const auto pieces = tok.tokenize(text);
      EXPECT_EQ(pieces, tokens);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, BpeReference,
                         ::testing::Values("roberta/tokenizer.json", "llama/tokenizer.json",
                                           "llama_metaspace.tokenizer.json", "llama3.tokenizer.json",
                                           "qwen2.tokenizer.json", "roberta_vocab_merges"),
                         [](const auto& info) {
                           return info.param.substr(0, info.param.find_first_of("/."));
                         });

TEST(Gpt2Split, FollowsTheRegexAlternatives) {
  using graft::text::bpe_pipeline::gpt2_split;
  const std::vector<std::u32string> want = {U"Hello", U",", U" world", U"'s", U" 42", U"   ", U" x", U" !!", U"\n\n"};
  EXPECT_EQ(gpt2_split(U"Hello, world's 42    x !!\n\n"), want);
  EXPECT_EQ(gpt2_split(U"a  "), (std::vector<std::u32string>{U"a", U"  "}));
  EXPECT_EQ(gpt2_split(U"Ünïcödé 日本"), (std::vector<std::u32string>{U"Ünïcödé", U" 日本"}));
}

TEST(Cl100kSplit, FollowsTheRegexAlternatives) {
  using graft::text::bpe_pipeline::cl100k_split;
  const std::vector<std::u32string> want = {U"Hello", U" world", U"'S", U" ", U"123", U"45", U" (", U"test",
                                            U")\n\n", U" ", U" x", U"\tword", U" \n \n", U"  "};
  EXPECT_EQ(cl100k_split(U"Hello world'S 12345 (test)\n\n  x\tword \n \n  ", 3), want);
  EXPECT_EQ(cl100k_split(U"12345", 1), (std::vector<std::u32string>{U"1", U"2", U"3", U"4", U"5"}));
}

TEST(BpeDecode, InvalidByteSequencesBecomeReplacementCharacters) {
  // Byte-level: a lone continuation byte (Ģ = 0x80 in GPT-2's map) is not valid UTF-8.
  const BpeTokenizer roberta = BpeTokenizer::from_tokenizer_json(kDir / "roberta/tokenizer.json");
  const std::int64_t lone = roberta.token_id("\xC4\xA2");
  ASSERT_GE(lone, 0);
  EXPECT_EQ(roberta.decode({lone, roberta.token_id("a")}), "\xEF\xBF\xBD" "a");
  // Byte fallback: <0xE4> alone is an incomplete character.
  const BpeTokenizer llama = BpeTokenizer::from_tokenizer_json(kDir / "llama/tokenizer.json");
  EXPECT_EQ(llama.decode({llama.token_id("<0xE4>"), llama.token_id("a")}), "\xEF\xBF\xBD" "a");
  EXPECT_THROW(llama.decode({700}), graft::ConfigError);
}

// ---------------------------------------------------------------- malformed files

class BpeBadFile : public ::testing::Test {
 protected:
  fs::path dir_ = fs::temp_directory_path() / ("graft_bpe_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                               "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  void SetUp() override { fs::create_directories(dir_); }
  void TearDown() override { fs::remove_all(dir_); }

  // The reference tokenizer.json with `edit` applied; returns the error's message.
  std::string error_after(const std::function<void(json&)>& edit) {
    json spec = read_json(kDir / "roberta/tokenizer.json");
    edit(spec);
    const fs::path path = dir_ / "tokenizer.json";
    std::ofstream(path) << spec.dump();
    try {
      BpeTokenizer::from_tokenizer_json(path);
    } catch (const graft::FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no FormatError";
    return "";
  }
};

TEST_F(BpeBadFile, NotJson) {
  const fs::path path = dir_ / "tokenizer.json";
  std::ofstream(path) << "{\"model\": {\"type\": \"BPE\", ";
  try {
    BpeTokenizer::from_tokenizer_json(path);
    FAIL() << "no error";
  } catch (const graft::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BpeTokenizer::from_tokenizer_json(dir_ / "absent.json"), graft::IoError);
}

TEST_F(BpeBadFile, EachProblemNamesItsKey) {
  EXPECT_NE(error_after([](json& j) { j["model"]["type"] = "Unigram"; }).find("model.type"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["model"].erase("merges"); }).find("model.merges"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["model"]["merges"][3] = "Ġ zzz"; }).find("model.merges[3]"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["model"]["merges"][0] = "nospace"; }).find("model.merges[0]"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["model"]["dropout"] = 0.1; }).find("model.dropout"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["model"]["vocab"]["Ġthe"] = -4; }).find("model.vocab"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }).find("pre_tokenizer.type"),
            std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }).find("decoder.type"), std::string::npos);
  EXPECT_NE(error_after([](json& j) {
              j["pre_tokenizer"] = {{"type", "Sequence"},
                                    {"pretokenizers",
                                     {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}},
                                      {{"type", "ByteLevel"}, {"use_regex", false}}}}};
            }).find("pre_tokenizer.pretokenizers[0].pattern.Regex"),
            std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", " "}}; })
                .find("normalizer.pattern"),
            std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["post_processor"]["cls"] = "<s>"; }).find("post_processor.cls"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["added_tokens"][0].erase("id"); }).find("added_tokens"), std::string::npos);
  EXPECT_NE(error_after([](json& j) { j["model"]["unk_token"] = "<nope>"; }).find("model.unk_token"), std::string::npos);
}

TEST(BpeEncode, IgnoreMergesTakesAWholeWordFromTheVocabulary) {
  // Llama 3 sets ignore_merges: a pre-token that is itself in the vocabulary is one id,
  // whatever the merges would make of it.
  const fs::path dir = fs::temp_directory_path() / "graft_bpe_ignore_merges";
  fs::create_directories(dir);
  json spec = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"bc", 3}, {"abc", 4}}}, {"merges", {"b c"}}}}};
  std::ofstream(dir / "merges.json") << spec.dump();
  spec["model"]["ignore_merges"] = true;
  std::ofstream(dir / "ignore.json") << spec.dump();
  EXPECT_EQ(BpeTokenizer::from_tokenizer_json(dir / "merges.json").encode_tokens("abc"), (Ids{0, 3}));
  EXPECT_EQ(BpeTokenizer::from_tokenizer_json(dir / "ignore.json").encode_tokens("abc"), (Ids{4}));
  EXPECT_EQ(BpeTokenizer::from_tokenizer_json(dir / "ignore.json").encode_tokens("cabc"), (Ids{2, 0, 3}));
  fs::remove_all(dir);
}

TEST(BpeEncode, MaxLengthMustLeaveRoomForContent) {
  const BpeTokenizer tok = BpeTokenizer::from_tokenizer_json(kDir / "roberta/tokenizer.json");
  EXPECT_THROW(tok.encode("a b", "c", true, 4), graft::ConfigError);  // <s> </s></s> </s>
  EXPECT_EQ(tok.encode("a b", "c", true, 5).ids.size(), 5u);
}

}  // namespace
