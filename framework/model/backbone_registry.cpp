#include "model/backbone_registry.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

#include "graft/error.h"
#include "io/json_config.h"
#include "text/tokenizer_files.h"

namespace graft::model {
namespace fs = std::filesystem;

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, FolderLoader> model_types;
  std::vector<FileFormat> file_formats;
};
Registry& registry() {
  static Registry r;  // function-local: registrars in other translation units may run first
  return r;
}

std::string format_names() {
  std::vector<std::string> names;
  for (const auto& f : registry().file_formats) names.push_back(f.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

LoadedBackbone load_file(const fs::path& file, DType dtype) {
  Registry& r = registry();
  if (r.file_formats.empty())
    throw ConfigError("backbone", fmt::format("'{}': no single-file checkpoint format is registered", file.string()));
  // One format today (llama2.c); with more, each would probe its own header.
  return r.file_formats.front().load(file, dtype);
}

LoadedBackbone load_folder_without_config(const fs::path& folder, DType dtype) {
  for (const auto& format : registry().file_formats)
    if (auto file = format.find_in_folder(folder)) return format.load(*file, dtype);
  throw IoError("backbone", fmt::format("'{}' has no config.json and no checkpoint file graft reads ({})", folder.string(), format_names()),
                "pass a Hugging Face model folder (config.json + model.safetensors) or one llama2.c .bin file");
}

}  // namespace

void register_model_type(const std::string& model_type, FolderLoader loader) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (!r.model_types.emplace(model_type, std::move(loader)).second)
    throw Error("backbone", fmt::format("two loaders registered for model_type '{}'", model_type));
}

void register_file_format(FileFormat format) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.file_formats.push_back(std::move(format));
}

std::vector<std::string> registered_model_types() {
  std::vector<std::string> out;
  for (const auto& [name, loader] : registry().model_types) out.push_back(name);
  return out;
}

DType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  throw ConfigError("backbone", fmt::format("unknown dtype '{}'", name), "use f32 or bf16");
}

LoadedBackbone load_backbone(const fs::path& path, DType dtype) {
  if (!fs::exists(path))
    throw IoError("backbone", fmt::format("'{}' does not exist", path.string()),
                  "pass a model folder or a llama2.c .bin file (make models fetches all-MiniLM-L6-v2)");
  if (fs::is_regular_file(path)) return load_file(path, dtype);
  if (!fs::exists(path / "config.json")) return load_folder_without_config(path, dtype);

  const auto config = io::load_json(path / "config.json");
  const auto type = io::optional_key<std::string>(config, "model_type", "", (path / "config.json").string());
  const auto& types = registry().model_types;
  const auto loader = types.find(type);
  if (loader == types.end())
    throw FormatError("backbone", fmt::format("'{}': unknown architecture (model_type '{}')", (path / "config.json").string(), type),
                      fmt::format("supported model_type values: {}; and {} checkpoints", fmt::join(registered_model_types(), ", "),
                                  format_names()));
  LoadedBackbone out;
  out.model = loader->second(path, dtype);
  out.tokenizer = text::load_folder_tokenizer(path, type);
  if (out.tokenizer && static_cast<std::int64_t>(out.tokenizer->vocab_size()) > out.model->info().vocab_size)
    throw FormatError("backbone",
                      fmt::format("{}: the tokenizer has {} tokens but the model embeds only {}", path.string(),
                                  out.tokenizer->vocab_size(), out.model->info().vocab_size),
                      "tokenizer.json and the weights come from different models");
  return out;
}

}  // namespace graft::model
