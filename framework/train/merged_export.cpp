#include "train/merged_export.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <regex>

#include "graft/error.h"
#include "io/output_folder.h"
#include "io/safetensors.h"
#include "train/adapter_io.h"

namespace graft {
namespace fs = std::filesystem;

namespace {

constexpr const char* kComponent = "export";

// What transformers and sentence-transformers read beside the weights. A whitelist, not
// "everything but the weights": a model folder may also hold other exports of the
// unmerged model (onnx/, openvino/, pytorch_model.bin) that must not come along.
const std::vector<std::string> kFolderFiles = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
    "sentencepiece.bpe.model", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"};
// sentence-transformers module folders: 1_Pooling, 2_Normalize, 2_Dense, ...
const std::regex kModuleFolder(R"([0-9]+_[A-Za-z]+)");

bool inside(const fs::path& path, const fs::path& folder) {
  const fs::path p = fs::weakly_canonical(fs::absolute(path)), f = fs::weakly_canonical(fs::absolute(folder));
  auto a = p.begin(), b = f.begin();
  for (; b != f.end() && !b->empty(); ++a, ++b)
    if (a == p.end() || *a != *b) return false;
  return true;
}

void check_source(const Backbone& backbone) {
  const BackboneInfo& info = backbone.info();
  const fs::path source = info.source;
  std::error_code ec;
  if (!fs::is_directory(source, ec) || !fs::exists(source / "config.json", ec))
    throw ConfigError(kComponent,
                      fmt::format("the backbone '{}' is not a Hugging Face model folder (config.json + model.safetensors): a "
                                  "merged checkpoint is written as a copy of one",
                                  source.string()),
                      "export from a Hugging Face folder; a llama2.c checkpoint has no config.json or tokenizer files to "
                      "carry over (convert it to a Hugging Face LLaMA folder first)");
  if (!fs::exists(source / "model.safetensors", ec))
    throw ConfigError(kComponent,
                      fs::exists(source / "model.safetensors.index.json", ec)
                          ? fmt::format("'{}' is a sharded checkpoint (model.safetensors.index.json): export writes one "
                                        "model.safetensors and reads one", source.string())
                          : fmt::format("'{}' has no model.safetensors", source.string()),
                      "export from a folder with a single model.safetensors");
  if (info.dtype != DType::f32)
    throw ConfigError(kComponent,
                      fmt::format("the backbone is held in {}: adapters are folded into f32 weights", dtype_name(info.dtype)),
                      "open the backbone in f32 (the default; graft export always does); the export keeps the checkpoint's own dtype "
                      "(F32, F16 or BF16) either way");
}

void check_output(const fs::path& output, const Backbone& backbone) {
  if (output.empty()) throw ConfigError(kComponent, "no output folder given", "pass --output DIR (a new folder)");
  std::error_code ec;
  if (fs::exists(fs::symlink_status(output, ec)))
    throw IoError(kComponent,
                  fmt::format("'{}' already exists: export writes a new folder, never into or over an existing one", output.string()),
                  "remove it, or choose another --output");
  const fs::path source = backbone.info().source;
  if (inside(output, source))
    throw ConfigError(kComponent, fmt::format("'{}' is inside the backbone's folder '{}'", output.string(), source.string()),
                      "write the export beside the backbone: a model folder holding another model confuses both");
}

// The merged weight `t` (f32) in the file's dtype, into `out`; false when a value does
// not fit it (beyond F16's range, or NaN/inf from the merge).
bool encode(const Tensor& t, const std::string& dtype, std::vector<std::byte>& out) {
  const std::vector<float> values = t.to_floats();
  bool finite = true;
  if (dtype == "F32") {
    out.resize(values.size() * 4);
    std::memcpy(out.data(), values.data(), out.size());
    for (float v : values) finite = finite && std::isfinite(v);
    return finite;
  }
  out.resize(values.size() * 2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint16_t h = dtype == "BF16" ? f32_to_bf16(values[i]) : io::f32_to_f16(values[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
    const float back = dtype == "BF16" ? bf16_to_f32(h) : 0.f;
    finite = finite && (dtype == "BF16" ? std::isfinite(back) : (h & 0x7c00u) != 0x7c00u);
  }
  return finite;
}

void write_weights(const fs::path& file, const Backbone& backbone, MergedExport& result) {
  const io::SafetensorsFile src = io::SafetensorsFile::open(fs::path(backbone.info().source) / "model.safetensors");
  std::map<std::string, Tensor> params;
  for (const auto& p : backbone.parameters()) params[p.name] = p.tensor;
  std::deque<std::vector<std::byte>> buffers;
  std::vector<io::StoredTensor> stored;
  for (const io::TensorInfo& t : src.tensors()) {
    const std::byte* original = src.bytes(t.name);
    auto it = params.find(t.name);
    const bool floating = t.file_dtype == "F32" || t.file_dtype == "F16" || t.file_dtype == "BF16";
    if (it == params.end() || !floating) {  // not graft's: carried over as it is
      stored.push_back({t.name, t.file_dtype, t.shape, original, t.nbytes});
      continue;
    }
    const Tensor& p = it->second;
    if (p.shape() != t.shape)
      throw FormatError(kComponent, fmt::format("'{}': tensor '{}' is {} in the file but {} in the backbone", src.path().string(),
                                                t.name, shape_str(t.shape), shape_str(p.shape())));
    std::vector<std::byte>& bytes = buffers.emplace_back();
    const bool fits = encode(p, t.file_dtype, bytes);
    const bool changed = bytes.size() != t.nbytes || std::memcmp(bytes.data(), original, t.nbytes) != 0;
    if (changed && !fits)
      throw ConfigError(kComponent,
                        fmt::format("the merged '{}' holds values that {} cannot hold (NaN, inf{})", t.name, t.file_dtype,
                                    t.file_dtype == "F16" ? ", or beyond ±65504" : ""),
                        "the adapter's deltas are too large (or not finite) for this checkpoint; check the adapter");
    if (changed) result.changed.push_back(t.name);
    if (result.weights_dtype.empty() || changed) result.weights_dtype = t.file_dtype;
    stored.push_back({t.name, t.file_dtype, t.shape, bytes.data(), bytes.size()});
  }
  std::map<std::string, std::string> metadata = src.metadata();
  metadata.emplace("format", "pt");  // transformers refuses a file without it
  io::save_safetensors_bytes(file, stored, metadata);
  result.tensors = stored.size();
}

void copy_folder_files(const fs::path& source, const fs::path& staged, MergedExport& result) {
  for (const std::string& name : kFolderFiles)
    if (fs::is_regular_file(source / name)) {  // follows links, as Hugging Face's cache uses them
      fs::copy_file(source / name, staged / name);
      result.files.push_back(name);
    }
  std::vector<fs::path> modules;
  for (const auto& entry : fs::directory_iterator(source)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, kModuleFolder)) modules.push_back(entry.path());
  }
  std::sort(modules.begin(), modules.end());
  for (const fs::path& m : modules) {
    fs::copy(m, staged / m.filename(), fs::copy_options::recursive);
    result.files.push_back(m.filename().string() + "/");
  }
}

}  // namespace

MergedExport export_merged(const fs::path& requested, AdapterSet& set, const std::string& name, const Backbone& backbone) {
  // "runs/merged/" names the folder "runs/merged": its staging sibling must be beside it.
  fs::path output = requested.lexically_normal();
  while (!output.empty() && output.filename().empty()) output = output.parent_path();
  if (output == "." || output == "..") output = fs::absolute(output).lexically_normal();
  check_source(backbone);
  check_output(output, backbone);
  const bool full = set.method_name(name) == kFullFineTuning;  // its weights are the backbone's already
  if (!full) set.merge(name, /*completely=*/true);
  struct Unmerge {
    AdapterSet* set;
    const std::string& name;
    ~Unmerge() {
      if (set) set->unmerge(name);
    }
  } unmerge{full ? nullptr : &set, name};

  MergedExport result;
  result.folder = output;
  const fs::path parent = output.has_parent_path() ? output.parent_path() : fs::path(".");
  const fs::path staged = parent / fmt::format("{}.tmp.{}", output.filename().string(), ::getpid());
  // The outermost folder this export creates, removed again if it fails.
  fs::path created;
  for (fs::path p = fs::absolute(parent); !p.empty() && !fs::exists(p); p = p.parent_path()) created = p;
  try {
    fs::create_directories(parent);
    fs::remove_all(staged);
    fs::create_directories(staged);
    write_weights(staged / "model.safetensors", backbone, result);
    copy_folder_files(backbone.info().source, staged, result);
    io::publish_folder(staged, output);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    if (!created.empty()) fs::remove_all(created, ec);
    try {
      throw;
    } catch (const fs::filesystem_error& e) {
      throw IoError(kComponent, fmt::format("cannot write '{}': {}", output.string(), e.code().message()),
                    "check that the folder's parent is writable and its disk has space");
    }
  }
  return result;
}

}  // namespace graft
