// Malformed Hugging Face checkpoints fail with errors naming the file and the tensor or
// key: each case starts from a copy of the tiny BERT fixture and breaks one thing.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "io/safetensors.h"
#include "model/backbone_registry.h"

namespace graft::backbones {
using model::load_backbone;
namespace {

namespace fs = std::filesystem;
const fs::path kTinyBert = fs::path(GRAFT_SOURCE_DIR) / "tests" / "golden" / "backbones" / "tiny_bert";

class BadCheckpoint : public ::testing::Test {
 protected:
  fs::path dir = fs::temp_directory_path() / fmt::format("graft_bad_ckpt_{}_{}", ::getpid(), counter_++);
  void SetUp() override {
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(kTinyBert)) fs::copy_file(e.path(), dir / e.path().filename());
  }
  void TearDown() override { fs::remove_all(dir); }

  nlohmann::json config() const { return nlohmann::json::parse(std::ifstream(dir / "config.json")); }
  void write_config(const nlohmann::json& j) const { std::ofstream(dir / "config.json") << j.dump(2); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(dir / name) << text; }
  // Rewrites the weights without `drop`, or with `reshape` given a new shape.
  void rewrite_weights(const std::string& drop, const std::string& reshape = {}, Shape shape = {}) const {
    auto file = io::SafetensorsFile::open(dir / "model.safetensors");
    std::vector<std::pair<std::string, Tensor>> kept;
    for (const auto& info : file.tensors()) {
      if (info.name == drop) continue;
      Tensor t = file.get(info.name).clone();
      if (info.name == reshape) t = Tensor::zeros(shape, t.dtype());
      kept.emplace_back(info.name, t);
    }
    io::save_safetensors(dir / "model.safetensors", kept);
  }
  // The load fails with an error of type E whose text holds every one of `parts`.
  template <class E>
  void expect_failure(const std::vector<std::string>& parts) const {
    try {
      load_backbone(dir);
      FAIL() << "loading should have failed";
    } catch (const E& e) {
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "'" << p << "' not in: " << e.what();
    }
  }

 private:
  static inline int counter_ = 0;
};

TEST_F(BadCheckpoint, IntactCopyLoads) { EXPECT_NO_THROW(load_backbone(dir)); }

TEST_F(BadCheckpoint, MissingTensorIsNamed) {
  rewrite_weights("encoder.layer.1.attention.self.value.weight");
  expect_failure<FormatError>({"model.safetensors", "encoder.layer.1.attention.self.value.weight", "has no tensor"});
}

TEST_F(BadCheckpoint, WrongShapeIsNamed) {
  rewrite_weights("", "encoder.layer.0.intermediate.dense.weight", {47, 32});
  expect_failure<FormatError>({"encoder.layer.0.intermediate.dense.weight", "[47, 32]", "[48, 32]"});
}

TEST_F(BadCheckpoint, ConfigAndWeightsDisagree) {
  auto j = config();
  j["num_hidden_layers"] = 3;  // the weights have 2
  write_config(j);
  expect_failure<FormatError>({"encoder.layer.2.", "has no tensor"});
}

TEST_F(BadCheckpoint, UnknownArchitecture) {
  auto j = config();
  j["model_type"] = "gpt2";
  write_config(j);
  expect_failure<FormatError>({"config.json", "gpt2", "unknown architecture"});
}

TEST_F(BadCheckpoint, MissingConfigKeyIsNamed) {
  auto j = config();
  j.erase("intermediate_size");
  write_config(j);
  expect_failure<FormatError>({"config.json", "intermediate_size", "missing"});
}

TEST_F(BadCheckpoint, ConfigThatIsNotJson) {
  write("config.json", "{\"model_type\": \"bert\",\n \"hidden_size\": 32,,}\n");
  expect_failure<FormatError>({"config.json", "line 2"});
}

TEST_F(BadCheckpoint, CorruptTokenizerVocabulary) {
  write("vocab.txt", "hello\nworld\n");  // no [UNK], [CLS], [SEP], [PAD]
  expect_failure<FormatError>({"vocab.txt", "[UNK]"});
}

TEST_F(BadCheckpoint, OnlyPytorchBinGetsTheConversionHint) {
  fs::rename(dir / "model.safetensors", dir / "pytorch_model.bin");
  expect_failure<FormatError>({"pytorch_model.bin", "convert_to_safetensors.py"});
}

TEST_F(BadCheckpoint, TruncatedWeightsFile) {
  fs::resize_file(dir / "model.safetensors", 4000);
  expect_failure<FormatError>({"model.safetensors"});
}

}  // namespace
}  // namespace graft::backbones
