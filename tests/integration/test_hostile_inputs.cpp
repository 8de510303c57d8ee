// Hostile input, as a probe of main found it: every case ends in a clear error naming
// the option, file, key or tensor (exit status 1), never in a signal, a hang, a folder
// left behind, or NaN outputs with exit status 0.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "graft/error.h"
#include "io/safetensors.h"
#include "train/adapter_io.h"
#include "integration/cli_harness.h"
#include "integration/peft_harness.h"
#include "model/backbone_registry.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = GRAFT_SOURCE_DIR;
const fs::path kTinyBert = kSource / "tests/golden/backbones/tiny_bert";
const fs::path kTinyLlama = kSource / "tests/golden/backbones/tiny_llama";
const fs::path kStories = fs::path(GRAFT_SHARED_DIR) / "models/stories260K/stories260K.bin";
const fs::path kMiniLm = kSource / ".cache/models/all-MiniLM-L6-v2";

using testing::read_file;
using testing::write_file;

class Hostile : public ::testing::Test {
 protected:
  fs::path dir = fs::temp_directory_path() / fmt::format("graft_hostile_{}", ::getpid());
  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  using Run = testing::ShellRun;
  // `graft ARGS`; a hang is killed after 120 s.
  Run graft(const std::string& args) const { return testing::run_graft(args, dir / "cli.log", 120); }
  // Expects a clean refusal: exit status 1 and `what` in the message.
  void expect_refused(const std::string& args, const std::string& what) const {
    SCOPED_TRACE(args);
    const Run r = graft(args);
    EXPECT_EQ(r.status, 1) << "not a clean error exit (signal, hang or success)\n" << r.output;
    EXPECT_NE(r.output.find(what), std::string::npos) << "missing '" << what << "' in:\n" << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  }
  std::string train_args(const fs::path& out) const {
    return fmt::format("train --backbone \"{}\" --task sst2 --data \"{}/data/glue\" --method lora --train-rows 16 --dev-rows 8 "
                       "--batch-size 8 --no-progress --output \"{}\"",
                       kTinyBert.string(), GRAFT_SHARED_DIR, out.string());
  }
  // A copy of a model folder with config.json replaced by `config` (the weights linked).
  fs::path model_with_config(const fs::path& model, const json& config) const {
    const fs::path copy = dir / "model";
    fs::remove_all(copy);
    fs::create_directories(copy);
    for (const auto& e : fs::directory_iterator(model))
      if (e.path().filename() != "config.json") fs::create_symlink(fs::absolute(e.path()), copy / e.path().filename());
    write_file(copy / "config.json", config.dump());
    return copy;
  }
};

TEST_F(Hostile, TrainingNumbersOutOfRangeAreRefusedUpFront) {
  const fs::path out = dir / "run";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--batch-size 0", "'--batch-size' is 0"},      {"--batch-size -1", "'--batch-size' is -1"},
      {"--batch-size 1e9", "wants a whole number"},  {"--batch-size 99999999999999999999", "far too large"},
      {"--grad-accum -1", "'--grad-accum' is -1"},   {"--grad-accum 0", "'--grad-accum' is 0"},
      {"--max-length -5", "'--max-length' is -5"},   {"--max-length 0", "'--max-length' is 0"},
      {"--max-steps 0", "'--max-steps' is 0"},       {"--max-steps -1", "'--max-steps' is -1"},
      {"--epochs 0", "'--epochs' is 0"},             {"--train-rows -3", "'--train-rows' is -3"},
      {"--dev-rows 0", "'--dev-rows' is 0"},         {"--lr 0", "'--lr' is 0"},
      {"--lr -1", "'--lr' is -1"},                   {"--lr 1e30", "'--lr' is 1e30"},
      {"--lr nan", "finite number, got 'nan'"},      {"--lr inf", "finite number, got 'inf'"},
      {"--warmup 2", "'--warmup' is 2"},             {"--weight-decay -1", "'--weight-decay' is -1"},
      {"--max-grad-norm nan", "finite number"},      {"--eval-every 0", "'--eval-every' is 0"},
      {"--save-every -1", "'--save-every' is -1"},   {"--seed -1", "'--seed' is -1"},
      {"--lr-scale 0", "'--lr-scale' is 0"},         {"--lr 5 --lr-scale 4", "--lr-scale makes the learning rate 20"},
      {"--config @", "names no file"},               {"--config @" + dir.string(), "it is a folder"},
  };
  for (const auto& [option, message] : cases) {
    expect_refused(train_args(out) + " " + option, message);
    EXPECT_FALSE(fs::exists(out)) << option << ": a refused run must not leave an output folder";
  }
}

TEST_F(Hostile, ARunThatCannotFitInMemoryIsRefusedWithTheEstimate) {
  ASSERT_TRUE(fs::exists(kMiniLm / "config.json")) << "run `make models` first";
  const fs::path out = dir / "big";
  expect_refused(fmt::format("train --backbone \"{}\" --task sst2 --data \"{}/data/glue\" --method lora --train-rows 16 "
                             "--batch-size 65536 --max-length 512 --no-progress --output \"{}\"",
                             kMiniLm.string(), GRAFT_SHARED_DIR, out.string()),
                 "GiB (batch 65536 x 512 tokens");
  EXPECT_FALSE(fs::exists(out / "checkpoint"));
}

TEST_F(Hostile, GenerationNumbersOutOfRangeAreRefused) {
  const std::string base = fmt::format("generate --backbone \"{}\" --max-tokens 4", kStories.string());
  for (const auto& [option, message] : std::vector<std::pair<std::string, std::string>>{
           {"--temperature nan", "finite number"}, {"--temperature -1", "'--temperature' is -1"},
           {"--top-p nan", "finite number"}, {"--top-p 0", "'--top-p' is 0"}, {"--top-p 1.5", "'--top-p' is 1.5"},
           {"--max-tokens 0", "'--max-tokens' is 0"}})
    expect_refused(base + " " + option, message);
}

TEST_F(Hostile, DeeplyNestedJsonIsAnErrorNotAStackOverflow) {
  const std::string deep = std::string(60000, '[') + std::string(60000, ']');
  write_file(dir / "deep.json", deep);
  expect_refused(train_args(dir / "run") + " --config @" + (dir / "deep.json").string(), "more than 256 levels deep");

  // The same in each file of an adapter folder.
  for (const std::string file : {"adapter_config.json", "graft_adapter.json"}) {
    const fs::path adapter = dir / ("adapter-" + file);
    // adapter_config.json is what a PEFT-saved folder is read by; graft's own folders
    // are read by their manifest.
    fs::copy(kSource / (file == "graft_adapter.json" ? "tests/golden/peft_lora/graft_saved_tiny_bert"
                                                     : "tests/golden/peft_lora/tiny_bert_lora"),
             adapter);
    write_file(adapter / file, "{\"r\": " + deep + "}");
    AdapterSet set(*testing::tiny_bert().model);
    try {
      load_adapter(adapter, set, "a", testing::plugins(), *testing::tiny_bert().model, nullptr);
      ADD_FAILURE() << file << " accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("levels deep"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
  }
}

TEST_F(Hostile, ConfigJsonValuesOutOfRangeNameTheKey) {
  const json base = json::parse(read_file(kTinyBert / "config.json"));
  const std::vector<std::tuple<std::string, json, std::string>> cases = {
      {"layer_norm_eps", -1, "'layer_norm_eps' is -1"},
      {"num_hidden_layers", 0, "'num_hidden_layers' is 0"},
      {"num_hidden_layers", -1, "'num_hidden_layers' is -1"},
      {"num_hidden_layers", 1, "num_hidden_layers is 1, but"},  // the weights hold 2
      {"hidden_size", 32.5, "'hidden_size' is 32.5, not a whole number"},
      {"vocab_size", 1e12, "not a whole number"},
      {"vocab_size", 1000000000000LL, "'vocab_size' is 1000000000000, outside"},
      {"position_embedding_type", "relative_key", "position_embedding_type 'relative_key' is not supported"},
      {"hidden_dropout_prob", 1.5, "'hidden_dropout_prob' is 1.5"},
      {"pad_token_id", 64, "'pad_token_id' is 64"},
  };
  for (const auto& [key, value, message] : cases) {
    SCOPED_TRACE(key + " = " + value.dump());
    json config = base;
    config[key] = value;
    const fs::path model = model_with_config(kTinyBert, config);
    try {
      model::load_backbone(model);
      ADD_FAILURE() << "accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
  }
  const json llama = json::parse(read_file(kTinyLlama / "config.json"));
  for (const auto& [key, value, message] : std::vector<std::tuple<std::string, json, std::string>>{
           {"rms_norm_eps", -1, "'rms_norm_eps' is -1"},
           {"num_hidden_layers", llama["num_hidden_layers"].get<int>() - 1, "but"},
           {"num_attention_heads", 0, "'num_attention_heads' is 0"}}) {
    SCOPED_TRACE(key);
    json config = llama;
    config[key] = value;
    EXPECT_THROW(model::load_backbone(model_with_config(kTinyLlama, config)), FormatError);
    try {
      model::load_backbone(model_with_config(kTinyLlama, config));
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

// Rewrites `file` with the first value of tensor `name` set to NaN.
void poison(const fs::path& file, const std::string& name) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  {
    const auto st = io::SafetensorsFile::open(file);
    for (const auto& info : st.tensors()) tensors.emplace_back(info.name, st.get(info.name).clone());
  }
  for (auto& [n, t] : tensors)
    if (n == name) t.data<float>()[0] = std::nanf("");
  fs::remove(file);
  io::save_safetensors(file, tensors);
}

TEST_F(Hostile, NonFiniteWeightsAreReportedWithTheFileAndTensor) {
  // A Hugging Face checkpoint.
  const fs::path model = dir / "bert";
  fs::copy(kTinyBert, model);
  poison(model / "model.safetensors", "encoder.layer.1.output.dense.weight");
  expect_refused(fmt::format("embed --backbone \"{}\" hello", model.string()),
                 "tensor 'encoder.layer.1.output.dense.weight' holds 1 non-finite values");

  // A llama2.c checkpoint: the first float of the token embedding.
  std::string bytes = read_file(kStories);
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + 28, &nan, 4);
  write_file(dir / "stories.bin", bytes);
  fs::copy(kStories.parent_path() / "tok512.bin", dir / "tok512.bin");
  expect_refused(fmt::format("generate --backbone \"{}\" --max-tokens 2", (dir / "stories.bin").string()),
                 "tensor 'token_embedding' holds 1 non-finite values");

  // An adapter.
  const fs::path adapter = dir / "lora";
  fs::copy(kSource / "tests/golden/peft_lora/tiny_bert_lora", adapter);
  const auto names = io::SafetensorsFile::open(adapter / "adapter_model.safetensors").tensors();
  poison(adapter / "adapter_model.safetensors", names.front().name);
  AdapterSet set(*testing::tiny_bert().model);
  try {
    load_adapter(adapter, set, "a", testing::plugins(), *testing::tiny_bert().model, nullptr);
    ADD_FAILURE() << "a NaN adapter was loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(names.front().name + "' holds 1 non-finite"), std::string::npos) << e.what();
  }
}

TEST_F(Hostile, AnAdapterWithoutItsBackboneFingerprintIsRefused) {
  for (const std::string cut : {"backbone", "backbone.hidden_size"}) {
    SCOPED_TRACE(cut);
    const fs::path adapter = dir / "fp";
    fs::remove_all(adapter);
    fs::copy(kSource / "tests/golden/peft_lora/graft_saved_tiny_bert", adapter);
    json manifest = json::parse(read_file(adapter / "graft_adapter.json"));
    if (cut == "backbone") manifest.erase("backbone");
    else manifest["backbone"].erase("hidden_size");
    write_file(adapter / "graft_adapter.json", manifest.dump());
    AdapterSet set(*testing::tiny_bert().model);
    try {
      load_adapter(adapter, set, "a", testing::plugins(), *testing::tiny_bert().model, nullptr);
      ADD_FAILURE() << "loaded without the backbone check";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(cut == "backbone" ? "key 'backbone' is missing" : "lacks 'hidden_size'"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST_F(Hostile, AbsurdSizesInAnAdapterAreRefusedBeforeAllocating) {
  // LoRA rank beyond what the weights allow (r: 100000 took 3.6 GB before).
  const fs::path lora = dir / "lora";
  fs::copy(kSource / "tests/golden/peft_lora/tiny_bert_lora", lora);
  json config = json::parse(read_file(lora / "adapter_config.json"));
  config["r"] = 100000;
  write_file(lora / "adapter_config.json", config.dump());
  AdapterSet set(*testing::tiny_bert().model);
  try {
    load_adapter(lora, set, "a", testing::plugins(), *testing::tiny_bert().model, nullptr);
    ADD_FAILURE() << "r 100000 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r 100000 exceeds the rank"), std::string::npos) << e.what();
  }
  // A head with two million classes (3 GB before).
  HeadConfig head;
  head.num_labels = 2000000;
  try {
    TaskHead t(head, *testing::tiny_bert().model, 0);
    ADD_FAILURE() << "num_labels 2000000 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("num_labels 2000000"), std::string::npos) << e.what();
  }
  // Zero, negative, fractional and absurd values of each size key, refused by name.
  for (const auto& [method, config, key] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"lora", R"({"r": 0})", "r"},
           {"lora", R"({"r": -1})", "r"},
           {"lora", R"({"r": 8.5})", "r"},
           {"lora", R"({"r": 1e300})", "r"},
           {"houlsby", R"({"reduction_factor": 0})", "reduction_factor"},
           {"houlsby", R"({"reduction_factor": -16})", "reduction_factor"},
           {"prompt_tuning", R"({"num_virtual_tokens": -5})", "num_virtual_tokens"},
           {"prefix_tuning", R"({"num_virtual_tokens": 0})", "num_virtual_tokens"}}) {
    SCOPED_TRACE(method + " " + config);
    AdapterSet s(*testing::tiny_bert().model);
    try {
      attach_method(s, testing::plugins(), "a", method, config, "--config", 0);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
  // Virtual tokens that leave no position for the input.
  for (const std::string method : {"prompt_tuning", "prefix_tuning"}) {
    AdapterSet s(*testing::tiny_bert().model);
    try {
      attach_method(s, testing::plugins(), "a", method, R"({"num_virtual_tokens": 100000})", "--config", 0);
      ADD_FAILURE() << method << " accepted 100000 virtual tokens";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("num_virtual_tokens 100000 leaves no position"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Hostile, AnAdapterOfAnotherBackboneIsAnErrorNotACrash) {
  // A stories260K LoRA retargeted to MiniLM-style names, and a file of one unknown
  // tensor: both used to crash (SIGSEGV) while the error was being reported.
  const fs::path foreign = dir / "foreign";
  fs::copy(kSource / "tests/golden/peft_lora/tiny_llama_lora", foreign);
  json config = json::parse(read_file(foreign / "adapter_config.json"));
  config["target_modules"] = {"query", "value"};
  write_file(foreign / "adapter_config.json", config.dump());
  {
    AdapterSet set(*testing::tiny_bert().model);
    try {
      load_adapter(foreign, set, "a", testing::plugins(), *testing::tiny_bert().model, nullptr);
      ADD_FAILURE() << "a LLaMA adapter loaded onto BERT";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("lora"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(set.contains("a"));
  }

  const fs::path unknown = dir / "unknown";
  fs::copy(kSource / "tests/golden/peft_lora/tiny_bert_lora", unknown);
  fs::remove(unknown / "adapter_model.safetensors");
  io::save_safetensors(unknown / "adapter_model.safetensors", {{"base_model.model.foo.weight", Tensor::zeros({2})}});
  AdapterSet set(*testing::tiny_bert().model);
  try {
    load_adapter(unknown, set, "a", testing::plugins(), *testing::tiny_bert().model, nullptr);
    ADD_FAILURE() << "an adapter of one unknown tensor loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("base_model.model.foo.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(set.contains("a")) << "a failed load leaves nothing attached";
}

TEST_F(Hostile, ALossThatOverflowsStopsTheRunNamingTheStep) {
  // Regression targets of 1e20: the squared error overflows f32 at the first step.
  write_file(dir / "train.csv", "text,label\na good film,1e20\na bad film,-1e20\n");
  write_file(dir / "dev.csv", "text,label\nfine,1\n");
  const fs::path out = dir / "run";
  expect_refused(fmt::format("train --backbone \"{}\" --task csv --regression --train-file \"{}\" --dev-file \"{}\" --method lora "
                             "--max-steps 3 --no-progress --output \"{}\"",
                             kTinyBert.string(), (dir / "train.csv").string(), (dir / "dev.csv").string(), out.string()),
                 "at step 0");
  EXPECT_FALSE(fs::exists(out / "best")) << "no non-finite model may be kept as best";
}

TEST_F(Hostile, ADevSetOfOneClassIsWarnedAbout) {
  write_file(dir / "train.csv", "text,label\na good film,pos\na bad film,neg\n");
  write_file(dir / "dev.csv", "text,label\nfine,pos\ngreat,pos\n");
  const Run r = graft(fmt::format("train --backbone \"{}\" --task csv --train-file \"{}\" --dev-file \"{}\" --method head "
                                  "--max-steps 1 --no-progress --output \"{}\"",
                                  kTinyBert.string(), (dir / "train.csv").string(), (dir / "dev.csv").string(),
                                  (dir / "run").string()));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("every held-out row of"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("has the label 'pos'"), std::string::npos) << r.output;
}

TEST_F(Hostile, ASafetensorsHeaderOfManyEntriesParsesInLinearTime) {
  // 200k entries: under the old quadratic parse this took minutes (the watchdog kills
  // at 120 s); linear, it takes about a second.
  std::string header = "{";
  for (int i = 0; i < 200000; ++i)
    header += fmt::format("{}\"t{}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", i ? "," : "", i);
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::uint64_t n = header.size();
  std::string file(reinterpret_cast<const char*>(&n), 8);
  write_file(dir / "many.safetensors", file + header);
  const Run r = graft("inspect \"" + (dir / "many.safetensors").string() + "\"");
  EXPECT_EQ(r.status, 0) << r.output.substr(0, 500);
  EXPECT_NE(r.output.find("200000 tensors"), std::string::npos) << r.output.substr(r.output.size() > 500 ? r.output.size() - 500 : 0);
}

}  // namespace
}  // namespace graft
