// Loading a backbone (and its tokenizer) from what a user points at: a llama2.c
// checkpoint file (or a folder holding one), or a Hugging Face model folder whose
// config.json names a supported architecture.
#pragma once
#include <filesystem>
#include <memory>

#include "graft/backbone.h"
#include "tokenizers/tokenizer.h"

namespace graft::backbones {

struct LoadedBackbone {
  std::unique_ptr<Backbone> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the folder has none graft can read
};

LoadedBackbone load_backbone(const std::filesystem::path& path, DType dtype = DType::f32);
DType parse_dtype(const std::string& name);

}  // namespace graft::backbones
