// Inputs the libFuzzer targets (tests/fuzz, docs/testing.md) found crashing or
// misbehaving, minimised, each with the clear error it must now give. The reproducers
// themselves are also kept in tests/fuzz/corpus/<target>/ and replayed by `make fuzz`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <string>

#include "data/conll.h"
#include "graft/config.h"
#include "graft/error.h"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "train/adapter_io.h"
#include "peft/adapter_set.h"
#include "peft/site_select.h"
#include "plugin/loader.h"
#include "model/backbone_registry.h"
#include "text/bpe.h"
#include "text/wordpiece.h"
#include "unit/error_of.h"

namespace fs = std::filesystem;
using namespace graft;
using graft::testing::error_of;

namespace {

class FuzzRegression : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("graft-fuzz-regress-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& bytes) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  fs::path dir_;
};

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << "missing '" << (part) << "' in:\n" << (text)

const fs::path kSource = GRAFT_SOURCE_DIR;

// --- A JSON number beyond a double's range -------------------------------------------
// nlohmann reports "1e400" as out_of_range (406), not as a parse_error: every reader
// that caught only parse_error let it escape as an unknown exception (std::terminate
// in the fuzzers; "internal error" in the CLI). Found by fuzz_safetensors,
// fuzz_model_config and fuzz_adapter_config at once.

TEST_F(FuzzRegression, SafetensorsHeaderNumberOverflow) {
  std::string header = R"({"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})";
  const std::uint64_t n = header.size();
  const fs::path file = write("x.safetensors", std::string(reinterpret_cast<const char*>(&n), 8) + header + "abcd");
  const std::string msg = error_of<FormatError>([&] { io::SafetensorsFile::open(file); });
  EXPECT_HAS(msg, file.string());
  EXPECT_HAS(msg, "header is not valid JSON");
  EXPECT_HAS(msg, "number overflow parsing '1e400'");
}

TEST_F(FuzzRegression, ConfigNumberOverflow) {
  EXPECT_EQ(error_of<FormatError>([] { io::parse_json(R"({"r": 1e400})", "--config"); }),
            "json: '--config' is not valid JSON: number overflow parsing '1e400'\n"
            "  hint: numbers must lie within the range of a double (about ±1.8e308)");
  const std::string msg = error_of<FormatError>([] { Config::parse(R"({"lora_alpha": -1e400})", "--config"); });
  EXPECT_HAS(msg, "number overflow parsing '-1e400'");
}

TEST_F(FuzzRegression, ModelConfigNumberOverflow) {
  const fs::path folder = dir_ / "model";
  write("model/config.json", R"({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1e3082})");
  const std::string msg = error_of<FormatError>([&] { model::load_backbone(folder); });
  EXPECT_HAS(msg, (folder / "config.json").string());
  EXPECT_HAS(msg, "not valid JSON: number overflow parsing '1e3082'");
}

TEST_F(FuzzRegression, AdapterManifestNumberOverflow) {
  const fs::path folder = dir_ / "adapter";
  write("adapter/graft_adapter.json", R"({"format": "graft-adapter/1", "method": "lora", "config": {"r": 921e3082337242}})");
  const plugin::PluginRegistry none;
  const std::string msg = error_of<FormatError>([&] { read_adapter_manifest(folder, none); });
  EXPECT_HAS(msg, (folder / "graft_adapter.json").string());
  EXPECT_HAS(msg, "number overflow parsing '921e3082337242'");
}

TEST_F(FuzzRegression, TokenizerJsonNumberOverflow) {
  const fs::path file = write("tokenizer.json", R"({"model": {"type": "BPE", "dropout": 1e400}})");
  const std::string msg = error_of<FormatError>([&] { text::BpeTokenizer::is_bpe(file); });
  EXPECT_HAS(msg, file.string() + ": not valid JSON");
  EXPECT_HAS(msg, "number overflow parsing '1e400'");
}

// --- RoBERTa vocab.json ---------------------------------------------------------------

// A special token whose id is not a number: the id was read with get<int64_t>() outside
// the loader's catch, so nlohmann's type_error escaped. Found by fuzz_tokenizer_json.
TEST_F(FuzzRegression, VocabJsonSpecialTokenIdNotANumber) {
  const fs::path folder = dir_ / "roberta";
  write("roberta/vocab.json", R"({"<s>": "x", "a": 0})");
  std::ifstream merges(kSource / "tests/golden/bpe/roberta_vocab_merges/merges.txt", std::ios::binary);
  write("roberta/merges.txt", std::string(std::istreambuf_iterator<char>(merges), {}));
  const std::string msg = error_of<FormatError>([&] { text::BpeTokenizer::from_vocab_and_merges(folder); });
  EXPECT_HAS(msg, (folder / "vocab.json").string() + ": key \"<s>\" is not a non-negative id");
}

// The next free id after 2^63 - 1 overflowed a signed integer (undefined behaviour);
// such an id is now left to from_json, which refuses ids of 2^31 and more.
TEST_F(FuzzRegression, VocabJsonHugeId) {
  const fs::path folder = dir_ / "roberta";
  write("roberta/vocab.json", R"({"a": 9223372036854775807, "b": 0})");
  write("roberta/merges.txt", "#version: 0.2\n");
  const std::string msg = error_of<FormatError>([&] { text::BpeTokenizer::from_vocab_and_merges(folder); });
  EXPECT_HAS(msg, (folder / "vocab.json").string() + ": key \"model.vocab.a\" is not an id in [0, 2^31)");
}

// An id of 2^63 or more passed is_number_unsigned() and wrapped negative when read as
// int64: the vocabulary vector was then written at a negative index (UBSan, then a heap
// overflow). Found by fuzz_tokenizer_json through vocab.json; tokenizer.json had the
// same hole, in BPE and WordPiece alike.
TEST_F(FuzzRegression, VocabIdPast2p63) {
  const fs::path folder = dir_ / "roberta";
  std::ifstream in(kSource / "tests/fuzz/corpus/fuzz_tokenizer_json/regress_vocab_id_past_2p63.json", std::ios::binary);
  write("roberta/vocab.json", std::string(std::istreambuf_iterator<char>(in), {}));
  write("roberta/merges.txt", "#version: 0.2\n");
  EXPECT_HAS(error_of<FormatError>([&] { text::BpeTokenizer::from_vocab_and_merges(folder); }),
             "\"model.vocab.a\" is not an id in [0, 2^31)");
  const fs::path bpe = write("bpe.json", R"({"model": {"type": "BPE", "vocab": {"a": 9223372073647585806, "b": 1}, "merges": []}})");
  EXPECT_HAS(error_of<FormatError>([&] { text::BpeTokenizer::from_tokenizer_json(bpe); }),
             bpe.string() + ": key \"model.vocab.a\" is not an id in [0, 2^31)");
  const fs::path added = write("added.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                                 "added_tokens": [{"id": 18446744073709551615, "content": "x"}]})");
  EXPECT_HAS(error_of<FormatError>([&] { text::BpeTokenizer::from_tokenizer_json(added); }),
             "key \"added_tokens\" has an id 18446744073709551615, not in [0, 2^31)");
  const fs::path wp = write("wp.json", R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 9223372036854775808}},
                                           "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  EXPECT_HAS(error_of<FormatError>([&] { text::WordPieceTokenizer::from_tokenizer_json(wp); }),
             wp.string() + ": key \"model.vocab.a\" is not an id in [0, 2^31)");
}

// padding.pad_id was taken as given: an id past the vocabulary padded every batch with
// an index outside the embedding table.
TEST_F(FuzzRegression, BpePadIdOutsideVocab) {
  const fs::path file = kSource / "tests/fuzz/corpus/fuzz_tokenizer_json/regress_bpe_pad_id_outside_vocab.json";
  EXPECT_HAS(error_of<FormatError>([&] { text::BpeTokenizer::from_tokenizer_json(file); }),
             file.string() + ": key \"padding.pad_id\" 5 is outside the vocabulary");
}

// --- WordPiece tokenizer.json -------------------------------------------------------

// BertProcessing with "cls": [] read element 0 of an empty array (UBSan: reference
// binding to null; out of bounds in a release build). Found by reading the code the
// fuzzer pointed at; the input is kept in tests/fuzz/corpus/fuzz_tokenizer_json/.
TEST_F(FuzzRegression, BertProcessingEmptyCls) {
  const fs::path file = kSource / "tests/fuzz/corpus/fuzz_tokenizer_json/regress_bert_processing_empty_cls.json";
  const std::string msg = error_of<FormatError>([&] { text::WordPieceTokenizer::from_tokenizer_json(file); });
  EXPECT_HAS(msg, file.string() + ": key \"post_processor.cls\" is not a [token, id] pair");
}

// max_input_chars_per_word 4294967295 was read as the int -1.
TEST_F(FuzzRegression, WordPieceMaxInputCharsOverflow) {
  const fs::path file = kSource / "tests/fuzz/corpus/fuzz_tokenizer_json/regress_max_input_chars_overflow.json";
  const std::string msg = error_of<FormatError>([&] { text::WordPieceTokenizer::from_tokenizer_json(file); });
  EXPECT_HAS(msg, file.string() + ": key \"model.max_input_chars_per_word\" is not a positive integer");
}

// --- CoNLL-2003 -----------------------------------------------------------------------

// A line of whitespace other than space and tab (here a vertical tab) split into no
// columns, and cols[0] read past the end. It is a blank line, as in Python's strip().
TEST_F(FuzzRegression, ConllWhitespaceOnlyLine) {
  const fs::path file = kSource / "tests/fuzz/corpus/fuzz_data_readers/regress_conll_vertical_tab_line.txt";
  const data::Dataset ds = data::read_conll(file);
  ASSERT_EQ(ds.examples.size(), 1u);
  EXPECT_EQ(ds.examples[0].words, std::vector<std::string>{"EU"});
  const fs::path two = write("two.txt", "EU NNP B-NP B-ORG\n\f\nPeter NNP B-NP B-PER\n");
  EXPECT_EQ(data::read_conll(two).examples.size(), 2u);
}

// --- Site globs and LoRA's target_modules regex --------------------------------------

Site linear_site(int layer, const std::string& module) {
  Site s;
  s.name = "layers." + std::to_string(layer) + "." + module;
  s.kind = SiteKind::linear;
  s.layer = layer;
  s.module = module;
  return s;
}

// "A-B" in a glob became an alternation of every number from A to B: std::stoi threw
// std::out_of_range for a bound past 2^31, and a wide range built millions of strings.
// Now matched numerically (same semantics: whole parts, no leading zeros).
TEST(FuzzRegressionGlob, RangesAreMatchedNumerically) {
  const Site s3 = linear_site(3, "attention.query"), s12 = linear_site(12, "ffn.up");
  EXPECT_TRUE(site_matches("layers.0-5.*", s3));
  EXPECT_FALSE(site_matches("layers.0-5.*", s12));
  EXPECT_TRUE(site_matches("layers.10-12.ffn.up", s12));
  EXPECT_TRUE(site_matches("layers.*.attention.*", s3));
  EXPECT_TRUE(site_matches("*query", s3));
  EXPECT_FALSE(site_matches("layers.5-0.*", s3));  // empty range
  EXPECT_FALSE(site_matches("layers.03-3.*", linear_site(30, "ffn.up")));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(site_matches("layers.0-99999999999999999999999.*", s12));
  EXPECT_TRUE(site_matches("layers.0-99999999.*", s3));
  EXPECT_FALSE(site_matches("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*z", linear_site(1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  const std::vector<Site> sites = {s3, s12};
  EXPECT_EQ(select_sites(sites, SiteKind::linear, {"layers.4-4294967296.*"}, {}, "lora").size(), 1u);
}

class FuzzRegressionLora : public FuzzRegression {
 protected:
  static const plugin::PluginRegistry& plugins() {
    static const plugin::PluginRegistry registry = [] {
      plugin::PluginRegistry r;
      r.scan(plugin::search_path({}));
      return r;
    }();
    return registry;
  }
  // The error attaching LoRA with `target_modules` (a JSON string) to tiny BERT gives.
  std::string attach_error(const std::string& target_modules) {
    static const auto bert = model::load_backbone(kSource / "tests/golden/backbones/tiny_bert");
    AdapterSet set(*bert.model);
    const std::string config = R"({"peft_type": "LORA", "r": 2, "target_modules": )" + target_modules + "}";
    write("adapter/adapter_config.json", config);
    try {
      const SavedAdapter saved = read_adapter_manifest(dir_ / "adapter", plugins());
      attach_method(set, plugins(), "a", saved.method, saved.config_json, "adapter_config.json", 0);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "attached";
  }
};

// A target_modules string that names no site is a regex over full module names, as in
// PEFT; libstdc++'s std::regex overflowed an integer reading "\18446744073709551615"
// (UBSan), overflowed the stack on long patterns and backtracked exponentially on
// nested stars. Such patterns are now refused with a ConfigError before compiling, and
// accepted ones are matched by the polynomial executor. Found by fuzz_adapter_config.
TEST_F(FuzzRegressionLora, HostileTargetRegexIsRefused) {
  if (plugins().plugins().empty()) GTEST_SKIP() << "the lora plugin is not built";
  // (The patterns below are JSON strings: "\\." is the regex \. and "\\1" the regex \1.)
  EXPECT_EQ(attach_error(R"j(".*layer\\.1\\..*(query|value)")j"), "attached");
  // The fuzzer's input, minimised: a back-reference number past 2^64.
  EXPECT_HAS(attach_error(R"j(".*layer\\18446744073709551615AAvalun")j"),
             "names no site, and graft does not read it as a regex: back-references (\\1) are not supported");
  EXPECT_HAS(attach_error(R"j(".*(query)\\1")j"), "back-references (\\1) are not supported");
  EXPECT_HAS(attach_error(R"j(".*query{18446744073709551615}")j"), "it holds a number of 20 digits");
  EXPECT_HAS(attach_error("\"" + std::string(5000, 'a') + "\""), "a branch of it has more than 4000 terms");
  EXPECT_HAS(attach_error(R"j("((){100}){100}")j"), "build too large an automaton");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_HAS(attach_error(R"j("(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*x")j"), "matches no linear site");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
