// Backbones against Hugging Face's own implementations (fixtures written by
// tests/golden/make_backbone_fixtures.py): tiny random BERT, RoBERTa and LLaMA in the
// HF format, the real stories260K, and the real all-MiniLM-L6-v2.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "bert/bert_model.h"
#include "train/pooling.h"
#include "golden/fixture.h"
#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "model/generation.h"
#include "ops/op_util.h"
#include "llama/llama_model.h"
#include "model/backbone_registry.h"

namespace graft::backbones {
using model::generate;
using model::GenerationConfig;
using model::load_backbone;
using text::Encoding;
using text::make_batch;
using train::l2_normalize;
using train::pool;
namespace {

namespace fs = std::filesystem;
using testing::expect_close;
using testing::json;
using testing::tensor_of;

const fs::path kFixtures = fs::path(GRAFT_SOURCE_DIR) / "tests" / "golden" / "backbones";

fs::path minilm_dir() {
  if (const char* env = std::getenv("GRAFT_MINILM_DIR")) return env;
  return fs::path(GRAFT_SOURCE_DIR) / ".cache" / "models" / "all-MiniLM-L6-v2";
}

Batch batch_of(const json& ref) {
  Batch b{tensor_of(ref.at("input_ids")), Tensor(), Tensor()};
  if (ref.contains("attention_mask")) b.attention_mask = tensor_of(ref.at("attention_mask"));
  if (ref.contains("token_type_ids")) b.token_type_ids = tensor_of(ref.at("token_type_ids"));
  return b;
}

// Which of the fixture's bf16 references graft's bf16 weights compute: where the CPU
// multiplies bf16 natively the activations are rounded too (bf16matmul); elsewhere the
// rounded weights are widened to f32 (bf16weights, at f32's tolerance). CTest runs these
// tests a second time with ONEDNN_MAX_CPU_ISA=AVX2, so both paths are checked on a CPU
// that has bf16.
std::string bf16_kind() { return ops::bf16_matmul_native() ? "bf16matmul" : "bf16weights"; }

void check_encoder(const std::string& name) {
  const json ref = graft::testing::load_fixture((kFixtures / name / "reference.json").string());
  const double abs = ref.at("tolerance").at("f32_abs");
  NoGradGuard no_grad;
  auto f32 = load_hf_bert(kFixtures / name);
  expect_close(name + " last_hidden_state f32", f32->forward(batch_of(ref)), ref.at("last_hidden_state"), {abs, 0});
  auto bf16 = load_hf_bert(kFixtures / name, DType::bf16);
  expect_close(name + " last_hidden_state " + bf16_kind(), bf16->forward(batch_of(ref)),
               ref.at("last_hidden_state_" + bf16_kind()), {ref.at("tolerance").at(bf16_kind() + "_abs").get<double>(), 0});
}

TEST(HfBackbones, TinyBertMatchesTransformers) { check_encoder("tiny_bert"); }
TEST(HfBackbones, TinyRobertaMatchesTransformers) { check_encoder("tiny_roberta"); }

TEST(HfBackbones, TinyLlamaLogitsAndGreedyMatchTransformers) {
  const json ref = graft::testing::load_fixture((kFixtures / "tiny_llama" / "reference.json").string());
  NoGradGuard no_grad;
  auto model = load_hf_llama(kFixtures / "tiny_llama");
  const Tensor ids = tensor_of(ref.at("input_ids"));
  expect_close("tiny_llama logits f32", model->lm_logits(model->forward({ids, Tensor(), Tensor()})), ref.at("logits"),
               {ref.at("tolerance").at("f32_abs").get<double>(), 0});
  GenerationConfig greedy;
  greedy.max_new_tokens = 10;
  greedy.stop_ids = {};
  const auto continuation = generate(*model, tensor_of(ref.at("prompt")).to_ints(), greedy);
  EXPECT_EQ(continuation, ref.at("greedy_continuation").at("data").get<std::vector<std::int64_t>>());

  auto bf16 = load_hf_llama(kFixtures / "tiny_llama", DType::bf16);
  expect_close("tiny_llama logits " + bf16_kind(), bf16->lm_logits(bf16->forward({ids, Tensor(), Tensor()})),
               ref.at("logits_" + bf16_kind()), {ref.at("tolerance").at(bf16_kind() + "_abs").get<double>(), 0});
}

TEST(HfBackbones, Stories260KLogitsMatchIndependentTorchForward) {
  const json ref = graft::testing::load_fixture((kFixtures / "stories260k_reference.json").string());
  NoGradGuard no_grad;
  auto model = load_llama2c(fs::path(GRAFT_SHARED_DIR) / "models" / "stories260K" / "stories260K.bin");
  const Tensor ids = tensor_of(ref.at("tokens")).view({1, 8});
  const Tensor logits = model->lm_logits(model->forward({ids, Tensor(), Tensor()}));
  expect_close("stories260K logits", logits.view({8, 512}), ref.at("logits"), {ref.at("tolerance").at("logits_abs").get<double>(), 0});
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) dot += double(a[i]) * b[i], na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
  return dot / std::sqrt(na * nb);
}

TEST(MiniLM, EmbeddingsAndTokensMatchSentenceTransformers) {
  ASSERT_TRUE(fs::exists(minilm_dir() / "model.safetensors"))
      << "all-MiniLM-L6-v2 is not at " << minilm_dir() << ": run `make models` (or set GRAFT_MINILM_DIR)";
  const json ref = graft::testing::load_fixture((kFixtures / "minilm_embeddings.json").string());
  auto loaded = load_backbone(minilm_dir());
  ASSERT_TRUE(loaded.tokenizer);
  NoGradGuard no_grad;
  int checked = 0;
  for (const json& c : ref.at("cases")) {
    const std::string name = c.at("name");
    const bool pair = c.at("kind") == "pair";
    const Encoding enc = loaded.tokenizer->encode(c.at("text").get<std::string>(), pair ? c.at("text_pair").get<std::string>() : "",
                                                  pair, ref.at("model").at("max_seq_length").get<std::size_t>());
    EXPECT_EQ(enc.ids, c.at("input_ids").at("data").get<std::vector<std::int64_t>>()) << name << ": token ids";
    EXPECT_EQ(enc.token_type_ids, c.at("token_type_ids").at("data").get<std::vector<std::int64_t>>()) << name;
    const Batch batch = make_batch({enc}, loaded.tokenizer->pad_id());
    const Tensor hidden = loaded.model->forward(batch);
    if (c.contains("last_hidden_state"))
      expect_close(name + " last_hidden_state", hidden.view({hidden.dim(1), hidden.dim(2)}), c.at("last_hidden_state"),
                   {ref.at("tolerance").at("last_hidden_state_abs").get<double>(), 0});
    const Tensor embedding = l2_normalize(pool(hidden, batch.attention_mask, Pooling::mean));
    const auto want = c.at("embedding").at("data").get<std::vector<float>>();
    const double cos = cosine(embedding.to_floats(), want);
    EXPECT_GE(cos, 0.9999) << name;
    expect_close(name + " embedding", embedding.view({embedding.dim(1)}), c.at("embedding"),
                 {ref.at("tolerance").at("embedding_abs").get<double>(), 0});
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

// Text in, model out: the folder's tokenizer.json (BPE) feeds its model; ids and
// outputs against HF's tokenizer and model (tests/golden/make_bpe_fixtures.py).
const fs::path kBpe = fs::path(GRAFT_SOURCE_DIR) / "tests" / "golden" / "bpe";

TEST(HfBackbones, RobertaFolderWithBpeTokenizerMatchesTransformersFromText) {
  const json ref = graft::testing::load_fixture((kBpe / "roberta" / "reference.json").string());
  auto loaded = load_backbone(kBpe / "roberta");
  ASSERT_TRUE(loaded.tokenizer) << "load_backbone found no tokenizer in " << kBpe / "roberta";
  std::vector<Encoding> rows;
  for (const auto& text : ref.at("texts")) rows.push_back(loaded.tokenizer->encode(text.get<std::string>()));
  const Batch batch = make_batch(rows, loaded.tokenizer->pad_id());
  EXPECT_EQ(batch.input_ids.to_ints(), ref.at("input_ids").at("data").get<std::vector<std::int64_t>>());
  EXPECT_EQ(batch.attention_mask.to_ints(), ref.at("attention_mask").at("data").get<std::vector<std::int64_t>>());
  NoGradGuard no_grad;
  expect_close("roberta+bpe last_hidden_state", loaded.model->forward(batch), ref.at("last_hidden_state"),
               {ref.at("tolerance").at("f32_abs").get<double>(), 0});
}

TEST(HfBackbones, LlamaFolderWithBpeTokenizerMatchesTransformersFromText) {
  const json ref = graft::testing::load_fixture((kBpe / "llama" / "reference.json").string());
  auto loaded = load_backbone(kBpe / "llama");
  ASSERT_TRUE(loaded.tokenizer) << "load_backbone found no tokenizer in " << kBpe / "llama";
  NoGradGuard no_grad;
  for (std::size_t r = 0; r < ref.at("texts").size(); ++r) {
    const Encoding enc = loaded.tokenizer->encode(ref.at("texts")[r].get<std::string>());
    EXPECT_EQ(enc.ids, ref.at("input_ids")[r].get<std::vector<std::int64_t>>());
    const Batch batch = make_batch({enc}, loaded.tokenizer->pad_id());
    const Tensor logits = loaded.model->lm_logits(loaded.model->forward(batch));
    expect_close("llama+bpe logits " + std::to_string(r), logits.view({logits.dim(1), logits.dim(2)}), ref.at("logits")[r], {ref.at("tolerance").at("f32_abs").get<double>(), 0});
  }
}

// Runs `graft ARGS`; returns its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run_cli(const std::string& args) {
  std::string output;
  FILE* pipe = popen((std::string("\"") + GRAFT_CLI + "\" " + args + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, ""};
  for (char buf[256]; std::fgets(buf, sizeof buf, pipe);) output += buf;
  return {pclose(pipe), output};
}

TEST(HfBackbones, GenerateCommandContinuesTextAsTransformersGreedy) {
  const json greedy = graft::testing::load_fixture((kBpe / "llama" / "reference.json").string()).at("greedy");
  const auto [status, output] = run_cli("generate --backbone \"" + (kBpe / "llama").string() + "\" --prompt \"" +
                                        greedy.at("prompt").get<std::string>() + "\" --max-tokens " +
                                        std::to_string(greedy.at("max_new_tokens").get<int>()));
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, greedy.at("text").get<std::string>() + "\n");
}

TEST(HfBackbones, InfoNamesTheTokenizer) {
  for (const auto& [folder, kind] : {std::pair{"roberta", "byte-level BPE, 700 tokens"},
                                     std::pair{"llama", "SentencePiece-style BPE (byte fallback), 700 tokens"}}) {
    const auto [status, output] = run_cli("info --backbone \"" + (kBpe / folder).string() + "\"");
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find(std::string("tokenizer     ") + kind), std::string::npos) << output;
  }
}

TEST(HfBackbones, RobertaFolderWithVocabAndMergesGetsItsTokenizer) {
  const fs::path dir = fs::temp_directory_path() / "graft_roberta_vocab_merges";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* name : {"config.json", "model.safetensors"}) fs::copy_file(kBpe / "roberta" / name, dir / name);
  for (const char* name : {"vocab.json", "merges.txt"}) fs::copy_file(kBpe / "roberta_vocab_merges" / name, dir / name);
  auto loaded = load_backbone(dir);
  ASSERT_TRUE(loaded.tokenizer);
  EXPECT_EQ(loaded.tokenizer->vocab_size(), 700u);
  EXPECT_EQ(loaded.tokenizer->pad_id(), 1);
  EXPECT_EQ(loaded.tokenizer->decode(loaded.tokenizer->encode("a witty movie").ids), "a witty movie");
  fs::remove_all(dir);
}

TEST(HfBackbones, TokenizerLargerThanTheEmbeddingIsRefused) {
  const fs::path dir = fs::temp_directory_path() / "graft_tokenizer_mismatch";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* name : {"config.json", "model.safetensors"}) fs::copy_file(kFixtures / "tiny_roberta" / name, dir / name);
  fs::copy_file(kBpe / "roberta" / "tokenizer.json", dir / "tokenizer.json");
  try {
    load_backbone(dir);
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("700 tokens but the model embeds only 64"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace graft::backbones
