// Inputs the libFuzzer targets (tests/fuzz, docs/testing.md) found crashing or
// misbehaving, minimised, each with the clear error it must now give. The reproducers
// themselves are also kept in tests/fuzz/corpus/<target>/ and replayed by `make fuzz`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "graft/config.h"
#include "graft/error.h"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "peft/adapter_io.h"
#include "plugin/loader.h"
#include "registry.h"
#include "tokenizers/bpe.h"

namespace fs = std::filesystem;
using namespace graft;

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

// The message of the graft::Error of type E that `f` throws ("" if it throws none).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return {};
}

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
  const std::string msg = error_of<FormatError>([&] { backbones::load_backbone(folder); });
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
  const std::string msg = error_of<FormatError>([&] { backbones::BpeTokenizer::is_bpe(file); });
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
  const std::string msg = error_of<FormatError>([&] { backbones::BpeTokenizer::from_vocab_and_merges(folder); });
  EXPECT_HAS(msg, (folder / "vocab.json").string() + ": key \"<s>\" is not a non-negative id");
}

// The next free id after 2^63 - 1 overflowed a signed integer (undefined behaviour);
// such an id is now left to from_json, which refuses ids far beyond the vocabulary.
TEST_F(FuzzRegression, VocabJsonHugeId) {
  const fs::path folder = dir_ / "roberta";
  write("roberta/vocab.json", R"({"a": 9223372036854775807, "b": 0})");
  write("roberta/merges.txt", "#version: 0.2\n");
  const std::string msg = error_of<FormatError>([&] { backbones::BpeTokenizer::from_vocab_and_merges(folder); });
  EXPECT_HAS(msg, "has ids far beyond its size (max id 9223372036854775807)");
}

}  // namespace
