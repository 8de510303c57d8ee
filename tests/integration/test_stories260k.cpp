// The real pre-trained stories260K (llama2.c format): greedy decoding from BOS must
// reproduce the model's known output word for word; malformed files fail clearly.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "model/backbone_registry.h"
#include "graft/error.h"
#include "model/generation.h"
#include "llama/llama_model.h"
#include "text/llama2c_tokenizer.h"

namespace graft::backbones {
using model::generate;
using model::GenerationConfig;
using model::load_backbone;
using text::Encoding;
using text::Llama2cTokenizer;
using text::make_batch;
namespace {

namespace fs = std::filesystem;
const fs::path kModelDir = fs::path(GRAFT_SHARED_DIR) / "models" / "stories260K";
const std::string kKnown =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
    "big, red ball. She wanted to play with it, but it was too high.";

std::string greedy_story(DType dtype, std::int64_t tokens) {
  auto model = load_llama2c(kModelDir / "stories260K.bin", dtype);
  auto tok = Llama2cTokenizer::load(kModelDir / "tok512.bin", model->info().vocab_size);
  GenerationConfig config;
  config.max_new_tokens = tokens;
  return tok.decode(generate(*model, {tok.bos_id()}, config));
}

TEST(Stories260K, GreedyFromBosReproducesKnownText) {
  const std::string story = greedy_story(DType::f32, 80);
  EXPECT_EQ(story.substr(0, kKnown.size()), kKnown) << story;
}

TEST(Stories260K, Bf16WeightsStillTellTheStoryOpening) {
  // bf16 weights perturb logits by ~1e-2; the opening must survive it.
  const std::string story = greedy_story(DType::bf16, 20);
  EXPECT_EQ(story.substr(0, 30), kKnown.substr(0, 30)) << story;
}

TEST(Stories260K, DescribesItself) {
  auto model = load_llama2c(kModelDir / "stories260K.bin");
  const BackboneInfo& info = model->info();
  EXPECT_EQ(info.num_layers, 5);
  EXPECT_EQ(info.hidden_size, 64);
  EXPECT_EQ(info.num_kv_heads, 4);
  // 264,128 floats in the file, less the 4,096 of the RoPE tables that graft recomputes.
  EXPECT_EQ(info.parameter_count, 260032);
  // Embeddings; per layer 7 linear, 2 sublayer, 1 attention_kv and 2 norm sites; the
  // head and the final norm.
  EXPECT_EQ(model->sites().size(), 1 + 5 * 12 + 2u);
}

TEST(Stories260K, TokenizerRoundTrip) {
  auto tok = Llama2cTokenizer::load(kModelDir / "tok512.bin", 512);
  const std::string text = "Lily saw a big red ball.";
  const auto ids = tok.encode_ids(text, true, false);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(tok.decode(ids), text);
}

class TempDir : public ::testing::Test {
 protected:
  fs::path dir = fs::temp_directory_path() / fmt::format("graft_llama2c_{}", ::getpid());
  void SetUp() override { fs::create_directories(dir); }
  void TearDown() override { fs::remove_all(dir); }
  fs::path truncated_copy(const fs::path& src, std::size_t keep) {
    std::ifstream in(src, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const fs::path out = dir / src.filename();
    std::ofstream(out, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(std::min(keep, bytes.size())));
    return out;
  }
};

TEST_F(TempDir, TruncatedCheckpointNamesTheTensorItCuts) {
  const fs::path bad = truncated_copy(kModelDir / "stories260K.bin", 200000);
  try {
    load_llama2c(bad);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ends inside tensor 'wq'"), std::string::npos) << e.what();
  }
}

TEST_F(TempDir, ImplausibleHeaderIsRejected) {
  const fs::path bad = truncated_copy(kModelDir / "tok512.bin", 4096);  // not a checkpoint
  EXPECT_THROW(load_llama2c(bad), FormatError);
}

TEST_F(TempDir, CorruptTokenizerIsRejected) {
  const fs::path bad = truncated_copy(kModelDir / "tok512.bin", 2000);
  try {
    Llama2cTokenizer::load(bad, 512);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tok512.bin"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace graft::backbones
