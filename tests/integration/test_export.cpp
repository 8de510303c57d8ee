// Exporting merged checkpoints (graft export --merged, Session::export_merged,
// train/merged_export): a LoRA adapter folded into tiny BERT and LLaMA checkpoints gives,
// in transformers (no PEFT) and as a plain graft backbone, what graft gives with the
// adapter attached; DoRA folds alike; methods with no weight delta, existing or nested
// output folders, llama2.c, sharded and bf16-held backbones are refused, leaving nothing
// behind; the CLI's export of all-MiniLM-L6-v2 embeds as the adapter does.
//
// Both ways, as the PEFT fixtures: with GRAFT_WRITE_EXPORT_FIXTURES=1 the LoRA test
// writes tests/golden/export_merged/<backbone>_lora/ (the exported folder and
// graft_outputs.json: graft's outputs with the adapter attached);
// tests/golden/make_export_fixtures.py then loads that folder in transformers, checks its
// outputs against graft's within 1e-4 (and against PEFT's merge_and_unload) and records
// transformers' outputs as reference.json, which every normal run checks graft against.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

#include "golden/fixture.h"
#include "graft/error.h"
#include "graft/session.h"
#include "integration/cli_harness.h"
#include "integration/lora_fixtures.h"
#include "io/safetensors.h"
#include "model/backbone_registry.h"
#include "train/merged_export.h"
#include "unit/error_of.h"

namespace graft::testing {
namespace {
namespace fs = std::filesystem;

const fs::path kFixtures = kGolden / "export_merged";
constexpr double kTransformersTol = 1e-4;  // the issue's bar: transformers on the export vs graft + adapter

json encode(const Tensor& t) {
  json j = {{"dtype", t.dtype() == DType::i64 ? "i64" : "f32"}, {"shape", t.shape()}};
  if (t.dtype() == DType::i64) j["data"] = t.to_ints();
  else j["data"] = t.to_floats();
  return j;
}

// The outputs of `folder` loaded as a plain backbone, without any adapter.
Tensor plain_outputs(const fs::path& folder, const Batch& batch) {
  model::LoadedBackbone loaded = model::load_backbone(folder);
  return outputs_of(*loaded.model, nullptr, batch);
}

// The checkpoint names of the weights adapter `name` gives a delta for.
std::set<std::string> delta_weights(const Backbone& b, const AdapterSet& set, const std::string& name) {
  std::set<std::string> out;
  NoGradGuard no_grad;
  for (const Site& s : b.sites())
    if (s.kind == SiteKind::linear && set.method(name).delta_weight(s).defined()) out.insert(s.checkpoint_module + ".weight");
  return out;
}

// Every tensor of the source checkpoint is in the export with its dtype and shape; those
// the merge did not change are byte-identical; the changed ones are `changed`.
void expect_same_layout(const fs::path& source, const fs::path& exported, const std::set<std::string>& changed) {
  const auto src = io::SafetensorsFile::open(source / "model.safetensors");
  const auto out = io::SafetensorsFile::open(exported / "model.safetensors");
  ASSERT_EQ(src.tensors().size(), out.tensors().size());
  std::size_t differing = 0;
  for (const auto& t : src.tensors()) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(out.contains(t.name));
    const io::TensorInfo& o = out.info(t.name);
    EXPECT_EQ(o.file_dtype, t.file_dtype);
    EXPECT_EQ(o.shape, t.shape);
    const bool same = o.nbytes == t.nbytes && std::memcmp(out.bytes(t.name), src.bytes(t.name), t.nbytes) == 0;
    EXPECT_EQ(!same, changed.count(t.name) > 0) << (same ? "unchanged, but the adapter changes it" : "changed, but not a delta weight");
    differing += !same;
  }
  EXPECT_EQ(differing, changed.size());
  EXPECT_EQ(out.metadata().count("format") ? out.metadata().at("format") : "", "pt");
  EXPECT_EQ(read_file(exported / "config.json"), read_file(source / "config.json"));
}

void export_lora(const std::string& name) {
  Backbone& b = name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
  const fs::path fixture = kFixtures / (name + "_lora");
  AdapterSet set(b);
  load_adapter(kGolden / "peft_lora" / (name + "_lora"), set, "lora", plugins(), b, nullptr);
  const Batch batch = fixture_batch(name);
  const std::string key = b.info().causal ? "logits" : "last_hidden_state";
  const Tensor attached = outputs_of(b, &set, batch);
  const auto before = snapshot(b);

  TempFolder tmp("export_" + name);
  const fs::path out = tmp.path / "merged";
  const MergedExport r = export_merged(out, set, "lora", b);
  EXPECT_TRUE(bit_identical(b, before)) << "the export must unmerge";
  EXPECT_FALSE(set.merged("lora"));
  const std::set<std::string> changed = delta_weights(b, set, "lora");
  EXPECT_EQ(changed.size(), name == "tiny_bert" ? 10u : 7u);  // 5 modules in 2 layers; 7 projections of layer 1
  EXPECT_EQ(std::set<std::string>(r.changed.begin(), r.changed.end()), changed);
  EXPECT_EQ(r.weights_dtype, "F32");
  expect_same_layout(b.info().source, out, changed);

  // graft on the export, with no adapter, computes what graft computes with the adapter.
  const double plain = max_abs_diff(plain_outputs(out, batch), attached);
  std::printf("  %-48s max |diff| %.3g\n", (name + ": plain graft on the export").c_str(), plain);
  EXPECT_LE(plain, kTransformersTol);

  if (std::getenv("GRAFT_WRITE_EXPORT_FIXTURES")) {
    fs::remove_all(fixture);
    fs::create_directories(fixture.parent_path());
    fs::copy(out, fixture, fs::copy_options::recursive);
    json j = {{"description", "graft's outputs with the LoRA adapter attached (tests/golden/peft_lora/" + name +
                                  "_lora), for the inputs of the backbone's reference.json"},
              {"input_ids", encode(batch.input_ids)},
              {key, encode(attached)}};
    j["attention_mask"] = encode(batch.attention_mask);
    if (batch.token_type_ids.defined()) j["token_type_ids"] = encode(batch.token_type_ids);
    std::ofstream(fixture / "graft_outputs.json") << j.dump() << "\n";
    std::printf("  wrote %s: now run /work/.venv-ref/bin/python tests/golden/make_export_fixtures.py\n", fixture.c_str());
    return;
  }
  // The committed export: the same tensors (up to float rounding across machines).
  const auto committed = io::SafetensorsFile::open(fixture / "model.safetensors");
  const auto fresh = io::SafetensorsFile::open(out / "model.safetensors");
  ASSERT_EQ(committed.tensors().size(), fresh.tensors().size());
  double tensors = 0;
  for (const auto& t : fresh.tensors()) {
    ASSERT_TRUE(committed.contains(t.name)) << t.name;
    EXPECT_EQ(committed.info(t.name).file_dtype, t.file_dtype) << t.name;
    if (t.file_dtype == "I64" || t.file_dtype == "I32") continue;
    tensors = std::max(tensors, max_abs_diff(committed.get(t.name), fresh.get(t.name)));
  }
  std::printf("  %-48s max |diff| %.3g\n", (name + ": export vs the committed export").c_str(), tensors);
  EXPECT_LE(tensors, 1e-6);
  // graft's outputs with the adapter are still those the fixture recorded...
  const json recorded = load_fixture((fixture / "graft_outputs.json").string());
  expect_close(name + ": graft + adapter vs recorded", attached, recorded.at(key), {1e-5, 0});
  // ...and transformers, loading the export with no PEFT, computed them (reference.json).
  const json ref = load_fixture((fixture / "reference.json").string());
  EXPECT_EQ(ref.at("script").get<std::string>(), "tests/golden/make_export_fixtures.py");
  compare_masked(name + ": transformers on export vs graft + adapter", attached, ref.at(key), batch.attention_mask,
                 kTransformersTol);
}

TEST(Export, LoraOnTinyBertLoadsInTransformersWithGraftsOutputs) { export_lora("tiny_bert"); }
TEST(Export, LoraOnTinyLlamaLoadsInTransformersWithGraftsOutputs) { export_lora("tiny_llama"); }

TEST(Export, DoraFoldsToTheAttachedOutputs) {
  for (const std::string name : {"tiny_bert", "tiny_llama"}) {
    SCOPED_TRACE(name);
    Backbone& b = name == "tiny_bert" ? *tiny_bert().model : *tiny_llama().model;
    AdapterSet set(b);
    load_adapter(kGolden / "peft_dora" / (name + "_dora"), set, "dora", plugins(), b, nullptr);
    const Batch batch = fixture_batch(name);
    const Tensor attached = outputs_of(b, &set, batch);
    const Tensor bare = outputs_of(b, nullptr, batch);
    ASSERT_GT(max_abs_diff(attached, bare), 1e-3) << "the fixture adapter must change the outputs";
    const auto before = snapshot(b);
    TempFolder tmp("export_dora");
    const MergedExport r = export_merged(tmp.path / "merged", set, "dora", b);
    EXPECT_TRUE(bit_identical(b, before));
    expect_same_layout(b.info().source, tmp.path / "merged", delta_weights(b, set, "dora"));
    const double d = max_abs_diff(plain_outputs(tmp.path / "merged", batch), attached);
    std::printf("  %-48s max |diff| %.3g\n", (name + ": DoRA export vs attached").c_str(), d);
    EXPECT_LE(d, kTransformersTol);
  }
}

// Nothing of a refused export is left: no output folder, no staging sibling.
void expect_nothing_written(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  EXPECT_TRUE(names.empty()) << "left behind: " << (names.empty() ? "" : names.front());
}

TEST(Export, MethodsWithoutAWeightDeltaAreRefusedNamingWhy) {
  Backbone& b = *tiny_bert().model;
  const auto before = snapshot(b);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"prefix_tuning", "key/value rows"}, {"prompt_tuning", "virtual token embeddings"}, {"houlsby", "bottleneck"}};
  for (const auto& [method, why] : cases) {
    SCOPED_TRACE(method);
    auto set = attach(b, method, "");
    TempFolder tmp("export_refused");
    const std::string e = error_of<ConfigError>([&] { export_merged(tmp.path / "merged", *set, "task", b); });
    EXPECT_HAS(e, "method '" + method + "'");
    EXPECT_HAS(e, "cannot be folded");
    EXPECT_HAS(e, why);
    EXPECT_HAS(e, "LoRA, DoRA, (IA)³");
    expect_nothing_written(tmp.path);
    EXPECT_FALSE(set->merged("task"));
  }
  // A bottleneck adapter in parallel placement is no more foldable.
  auto parallel = attach(b, "houlsby", R"({"is_parallel": true})");
  TempFolder tmp("export_refused");
  EXPECT_HAS(error_of<ConfigError>([&] { export_merged(tmp.path / "merged", *parallel, "task", b); }), "bottleneck");
  EXPECT_TRUE(bit_identical(b, before));
}

TEST(Export, OutputFoldersThatExistOrLieInsideTheBackboneAreRefused) {
  Backbone& b = *tiny_bert().model;
  auto set = attach(b, "lora", R"({"r": 2})");
  TempFolder tmp("export_output");
  fs::create_directories(tmp.path / "taken");
  write_file(tmp.path / "taken" / "notes.txt", "mine");
  EXPECT_HAS(error_of<IoError>([&] { export_merged(tmp.path / "taken", *set, "task", b); }), "already exists");
  EXPECT_EQ(read_file(tmp.path / "taken" / "notes.txt"), "mine");
  fs::create_directories(tmp.path / "empty");
  EXPECT_HAS(error_of<IoError>([&] { export_merged(tmp.path / "empty", *set, "task", b); }), "already exists");
  write_file(tmp.path / "file", "x");
  EXPECT_HAS(error_of<IoError>([&] { export_merged(tmp.path / "file", *set, "task", b); }), "already exists");

  // Inside the backbone's folder (a copy of it, so the source tree is never at risk).
  fs::copy(kGolden / "backbones" / "tiny_bert", tmp.path / "bert", fs::copy_options::recursive);
  model::LoadedBackbone copy = model::load_backbone(tmp.path / "bert");
  auto on_copy = attach(*copy.model, "lora", R"({"r": 2})");
  for (const fs::path inner : {tmp.path / "bert" / "merged", tmp.path / "bert" / "a" / ".." / "merged2"}) {
    const std::string e = error_of<ConfigError>([&] { export_merged(inner, *on_copy, "task", *copy.model); });
    EXPECT_HAS(e, "inside the backbone's folder");
  }
  EXPECT_FALSE(fs::exists(tmp.path / "bert" / "merged"));
  EXPECT_FALSE(fs::exists(tmp.path / "bert" / "a"));
  EXPECT_FALSE(fs::exists(tmp.path / "bert" / "merged2"));
}

TEST(Export, BackbonesThatAreNotOneHuggingFaceCheckpointInF32AreRefused) {
  TempFolder tmp("export_backbones");
  // A llama2.c checkpoint has no Hugging Face folder to copy.
  {
    Backbone& s = *stories260k().model;
    auto set = attach(s, "lora", R"({"r": 2})");
    const std::string e = error_of<ConfigError>([&] { export_merged(tmp.path / "merged", *set, "task", s); });
    EXPECT_HAS(e, "not a Hugging Face model folder");
    EXPECT_HAS(e, "llama2.c");
    expect_nothing_written(tmp.path);
  }
  // Held in bf16: folding is done in f32.
  {
    model::LoadedBackbone bf16 = model::load_backbone(kGolden / "backbones" / "tiny_bert", DType::bf16);
    auto set = attach(*bf16.model, "lora", R"({"r": 2})");
    const std::string e = error_of<ConfigError>([&] { export_merged(tmp.path / "merged", *set, "task", *bf16.model); });
    EXPECT_HAS(e, "held in bf16");
    expect_nothing_written(tmp.path);
  }
  // A sharded checkpoint (its weights split over files an index names).
  {
    TempFolder bert("export_sharded");
    fs::copy(kGolden / "backbones" / "tiny_bert", bert.path / "bert", fs::copy_options::recursive);
    model::LoadedBackbone loaded = model::load_backbone(bert.path / "bert");
    fs::rename(bert.path / "bert" / "model.safetensors", bert.path / "bert" / "model-00001-of-00001.safetensors");
    write_file(bert.path / "bert" / "model.safetensors.index.json", R"({"metadata": {}, "weight_map": {}})");
    auto set = attach(*loaded.model, "lora", R"({"r": 2})");
    const std::string e = error_of<ConfigError>([&] { export_merged(tmp.path / "merged", *set, "task", *loaded.model); });
    EXPECT_HAS(e, "sharded");
    expect_nothing_written(tmp.path);
  }
}

// Full fine-tuning has no delta: its trained weights are the backbone's, written as they are.
TEST(Export, FullFineTuningExportsItsWeights) {
  model::LoadedBackbone own = model::load_backbone(kGolden / "backbones" / "tiny_bert");  // not the shared one
  Backbone& b = *own.model;
  auto set = attach(b, "full", "");
  const auto params = set->method("task").parameters();
  ASSERT_FALSE(params.empty());
  std::string trained;
  for (const auto& p : b.parameters())
    if (p.name.ends_with("layer.1.attention.self.query.weight")) {
      p.tensor.data<float>()[3] += 0.5f;  // a "trained" weight (the full method's parameters are these)
      trained = p.name;
    }
  ASSERT_FALSE(trained.empty());
  TempFolder tmp("export_full");
  const MergedExport r = export_merged(tmp.path / "merged", *set, "task", b);
  EXPECT_EQ(r.changed, std::vector<std::string>{trained});
  expect_same_layout(b.info().source, tmp.path / "merged", {trained});
}

// The session's door: the head is named in a note and left out; the backbone is unchanged.
TEST(Export, SessionExportsAndNotesTheHeadItLeavesOut) {
  TempFolder tmp("export_session");
  Session session((kGolden / "backbones" / "tiny_bert").string());
  session.load_adapter("lora", kGolden / "peft_lora" / "tiny_bert_lora");
  const std::vector<std::string> texts = {"hello world", "a b"};
  const Tensor attached = session.forward(texts, Selection::one("lora"));
  const ExportSummary s = session.export_merged("lora", tmp.path / "merged");
  EXPECT_EQ(s.method, "lora");
  EXPECT_EQ(s.changed.size(), 10u);
  EXPECT_EQ(s.tensors, 39u);  // tiny_bert's pooler included
  EXPECT_TRUE(std::find(s.files.begin(), s.files.end(), "vocab.txt") != s.files.end());
  EXPECT_TRUE(s.notes.empty());  // a PEFT adapter without a head
  Session exported((tmp.path / "merged").string());
  EXPECT_LE(max_abs_diff(exported.forward(texts), attached), kTransformersTol);
  EXPECT_LE(max_abs_diff(session.forward(texts, Selection::one("lora")), attached), 0.0);
  EXPECT_HAS(error_of<ConfigError>([&] { session.export_merged("nope", tmp.path / "other"); }), "no adapter named 'nope'");
  // A trailing separator names the same folder.
  session.export_merged("lora", (tmp.path / "slash").string() + "/");
  EXPECT_TRUE(fs::exists(tmp.path / "slash" / "model.safetensors"));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"merged", "slash"}));
}

TEST(Export, TheTaskHeadIsLeftOutWithANote) {
  TempFolder tmp("export_head");
  Session session((kGolden / "backbones" / "tiny_bert").string());
  session.add_adapter("lora", "lora", R"({"r": 2})");
  data::Dataset labels;
  labels.kind = TaskKind::classification;
  labels.label_names = {"negative", "positive"};
  session.add_head("lora", labels);
  const ExportSummary s = session.export_merged("lora", tmp.path / "merged");
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_HAS(s.notes[0], "task head (classification, 2 outputs) is not written");
  EXPECT_TRUE(s.changed.empty()) << "a fresh LoRA (B = 0) changes no weight";
  const auto files = io::SafetensorsFile::open(tmp.path / "merged" / "model.safetensors");
  for (const auto& t : files.tensors()) EXPECT_EQ(t.name.find("head"), std::string::npos) << t.name;
}

// An F16 or BF16 checkpoint keeps its dtype: the merged weights are graft's f32 merge
// rounded to nearest even, every other tensor is the file's own bytes.
std::vector<std::uint16_t> to_half(const std::vector<float>& values, const std::string& dtype) {
  std::vector<std::uint16_t> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = dtype == "F16" ? io::f32_to_f16(values[i]) : f32_to_bf16(values[i]);
  return out;
}

TEST(Export, HalfPrecisionCheckpointsKeepTheirDtype) {
  const fs::path source = kGolden / "backbones" / "tiny_bert";
  const Batch batch = fixture_batch("tiny_bert");
  for (const std::string dtype : {"F16", "BF16"}) {
    SCOPED_TRACE(dtype);
    TempFolder tmp("export_half");
    const fs::path half = tmp.path / "bert";
    fs::create_directories(half);
    for (const char* f : {"config.json", "vocab.txt"}) fs::copy_file(source / f, half / f);
    {
      const auto src = io::SafetensorsFile::open(source / "model.safetensors");
      std::deque<std::vector<std::uint16_t>> buffers;
      std::vector<io::StoredTensor> stored;
      for (const auto& t : src.tensors()) {
        const auto& bytes = buffers.emplace_back(to_half(src.get(t.name).to_floats(), dtype));
        stored.push_back({t.name, dtype, t.shape, bytes.data(), bytes.size() * 2});
      }
      io::save_safetensors_bytes(half / "model.safetensors", stored, {{"format", "pt"}});
    }
    model::LoadedBackbone loaded = model::load_backbone(half);  // widened to f32
    Backbone& b = *loaded.model;
    AdapterSet set(b);
    load_adapter(kGolden / "peft_lora" / "tiny_bert_lora", set, "lora", plugins(), b, nullptr);
    const Tensor attached = outputs_of(b, &set, batch);
    const MergedExport r = export_merged(tmp.path / "merged", set, "lora", b);
    EXPECT_EQ(r.weights_dtype, dtype);
    const std::set<std::string> changed = delta_weights(b, set, "lora");
    expect_same_layout(half, tmp.path / "merged", changed);
    // The merged weights as graft merges them in f32, rounded to the file's dtype.
    const auto out = io::SafetensorsFile::open(tmp.path / "merged" / "model.safetensors");
    set.merge("lora");
    for (const auto& p : b.parameters()) {
      if (!changed.count(p.name)) continue;
      const auto want = to_half(p.tensor.to_floats(), dtype);
      EXPECT_EQ(std::memcmp(out.bytes(p.name), want.data(), want.size() * 2), 0) << p.name;
    }
    set.unmerge("lora");
    // Rounding the merged weights to 8 (BF16) or 11 (F16) significant bits is all that
    // separates the export from the adapter.
    const double d = max_abs_diff(plain_outputs(tmp.path / "merged", batch), attached);
    std::printf("  %-48s max |diff| %.3g\n", ("tiny_bert " + dtype + ": export vs attached").c_str(), d);
    EXPECT_LE(d, dtype == "F16" ? 5e-3 : 5e-2);
    if (dtype != "F16") continue;
    // Deltas beyond F16's range are refused once the folder is staged: the staging and
    // the folders made on the way to the output go again.
    randomize_b(set, "lora", 3, 1e6f);
    const std::string e = error_of<ConfigError>([&] { export_merged(tmp.path / "x" / "y" / "merged", set, "lora", b); });
    EXPECT_HAS(e, "F16 cannot hold");
    EXPECT_FALSE(fs::exists(tmp.path / "x"));
  }
}

std::vector<double> numbers(const std::string& text) {
  std::vector<double> out;
  std::string t = text;
  for (char& c : t)
    if (c == '[' || c == ']' || c == ',') c = ' ';
  std::istringstream in(t);
  for (double v; in >> v;) out.push_back(v);
  return out;
}

// The command line on the real all-MiniLM-L6-v2 (its sentence-transformers files come
// along): embedding with the export equals embedding with the adapter.
TEST(Export, CliExportOfMiniLmEmbedsAsTheAdapterDoes) {
  TempFolder tmp("export_cli");
  {
    Backbone& b = *minilm().model;
    auto set = attach(b, "lora", R"({"r": 4, "target_modules": ["query", "value", "ffn.up"]})", 5);
    randomize_b(*set, "task", 11, 0.05f);
    save_adapter(tmp.path / "adapter", *set, "task", b, nullptr);
  }
  const std::string backbone = minilm_path().string(), log = (tmp.path / "cli.log").string();
  const std::string out = (tmp.path / "merged").string();
  ShellRun r = run_graft(fmt::format("export --backbone {} --adapter {} --merged --output {}", backbone,
                                     (tmp.path / "adapter").string(), out), log);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_HAS(r.output, "folded into 18 of");
  for (const char* f : {"config.json", "tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  const std::string texts = "'a gripping, beautifully acted film' 'dull and far too long'";
  const ShellRun with_adapter = run_graft(fmt::format("embed --backbone {} --adapter {} {}", backbone, (tmp.path / "adapter").string(), texts), log);
  const ShellRun with_export = run_graft(fmt::format("embed --backbone {} {}", out, texts), log);
  const ShellRun bare = run_graft(fmt::format("embed --backbone {} {}", backbone, texts), log);
  ASSERT_EQ(with_adapter.status, 0) << with_adapter.output;
  ASSERT_EQ(with_export.status, 0) << with_export.output;
  const auto a = numbers(with_adapter.output), e = numbers(with_export.output), n = numbers(bare.output);
  ASSERT_EQ(a.size(), 2u * 384u);
  ASSERT_EQ(e.size(), a.size());
  double d = 0, moved = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - e[i]));
    moved = std::max(moved, std::fabs(a[i] - n[i]));
  }
  std::printf("  MiniLM embeddings, export vs adapter: max |diff| %.3g (the adapter moves them by %.3g)\n", d, moved);
  EXPECT_LE(d, kTransformersTol);
  EXPECT_GT(moved, 1e-2);

  // Refusals on the command line: no --merged; the output exists; a method that does not fold.
  r = run_graft(fmt::format("export --backbone {} --adapter {} --output {}/other", backbone, (tmp.path / "adapter").string(),
                            tmp.path.string()), log);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "pass --merged");
  EXPECT_FALSE(fs::exists(tmp.path / "other"));
  r = run_graft(fmt::format("export --backbone {} --adapter {} --merged --output {}", backbone, (tmp.path / "adapter").string(), out), log);
  EXPECT_NE(r.status, 0);
  EXPECT_HAS(r.output, "already exists");
  r = run_graft(fmt::format("export --backbone {} --adapter a={} --adapter b={} --merged --output {}/two", backbone,
                            (tmp.path / "adapter").string(), (tmp.path / "adapter").string(), tmp.path.string()), log);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "export folds one adapter, not 2");
  EXPECT_FALSE(fs::exists(tmp.path / "two"));
  {
    Backbone& b = *minilm().model;
    auto set = attach(b, "prefix_tuning", "");
    save_adapter(tmp.path / "prefix", *set, "task", b, nullptr);
  }
  r = run_graft(fmt::format("export --backbone {} --adapter {} --merged --output {}/p", backbone, (tmp.path / "prefix").string(),
                            tmp.path.string()), log);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "method 'prefix_tuning'");
  EXPECT_HAS(r.output, "cannot be folded");
  EXPECT_FALSE(fs::exists(tmp.path / "p"));
}

}  // namespace
}  // namespace graft::testing
