// Reading a backbone's weights: every tensor is looked up by name and its shape checked
// against the config before use, with errors naming the file and the tensor.
#pragma once
#include <filesystem>
#include <string>

#include "graft/tensor.h"
#include "io/safetensors.h"

namespace graft::backbones {

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::filesystem::path& file);
  // The tensor `name` with exactly `shape`, converted to f32 if stored otherwise.
  Tensor require(const std::string& name, const Shape& shape) const;
  bool contains(const std::string& name) const { return file_.contains(name); }
  // The prefix ("", "bert.", "model.") under which `probe` exists, or FormatError.
  std::string find_prefix(const std::string& probe, const std::vector<std::string>& prefixes) const;
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  io::SafetensorsFile file_;
};

// The one weights file of a Hugging Face folder: model.safetensors, or a FormatError
// explaining how to convert pytorch_model.bin.
std::filesystem::path find_weights_file(const std::filesystem::path& folder);

}  // namespace graft::backbones
