// Loading a backbone (and its tokenizer) from what a user points at. framework/ knows
// no model: each backbone family (backbones/) registers its loaders here when libgraft
// loads — a Hugging Face folder's loader under the config.json model_type values it
// reads, a single-file checkpoint format (llama2.c .bin) with how to find its file.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/backbone.h"
#include "text/tokenizer.h"

namespace graft::model {

struct LoadedBackbone {
  std::unique_ptr<Backbone> model;
  std::unique_ptr<text::Tokenizer> tokenizer;  // null when the files hold none graft can read
};

using FolderLoader = std::function<std::unique_ptr<Backbone>(const std::filesystem::path& folder, DType dtype)>;
struct FileFormat {
  std::string name;  // "llama2.c"
  // The checkpoint file in a folder that has no config.json, or nullopt when none is.
  std::function<std::optional<std::filesystem::path>(const std::filesystem::path& folder)> find_in_folder;
  std::function<LoadedBackbone(const std::filesystem::path& file, DType dtype)> load;
};

// Called from static initialisers in backbones/; a second loader for a name is an Error.
void register_model_type(const std::string& model_type, FolderLoader loader);
void register_file_format(FileFormat format);
std::vector<std::string> registered_model_types();

LoadedBackbone load_backbone(const std::filesystem::path& path, DType dtype = DType::f32);
DType parse_dtype(const std::string& name);

}  // namespace graft::model
