#include "common/checkpoint.h"

#include <fmt/format.h>

#include "graft/error.h"
#include "graft/ops.h"

namespace graft::backbones {

CheckpointReader::CheckpointReader(const std::filesystem::path& file) : file_(io::SafetensorsFile::open(file)) {}

Tensor CheckpointReader::require(const std::string& name, const Shape& shape) const {
  if (!file_.contains(name))
    throw FormatError("checkpoint", fmt::format("'{}' has no tensor '{}'", file_.path().string(), name),
                      "the checkpoint does not match its config.json, or is of another architecture");
  const io::TensorInfo& info = file_.info(name);
  if (info.shape != shape)
    throw FormatError("checkpoint",
                      fmt::format("'{}': tensor '{}' has shape {}, but config.json implies {}", file_.path().string(), name,
                                  shape_str(info.shape), shape_str(shape)),
                      "config.json and the weights disagree: were they taken from different models?");
  Tensor t = file_.get(name);
  if (const std::int64_t bad = count_non_finite(t); bad > 0)
    throw FormatError("checkpoint",
                      fmt::format("'{}': tensor '{}' holds {} non-finite values (NaN or inf) of {}", file_.path().string(), name,
                                  bad, t.numel()),
                      "the checkpoint is corrupt (or was saved from a diverged run): fetch or export it again");
  return t.dtype() == DType::f32 ? t : ops::to_dtype(t, DType::f32);
}

std::string CheckpointReader::find_prefix(const std::string& probe, const std::vector<std::string>& prefixes) const {
  for (const auto& p : prefixes)
    if (file_.contains(p + probe)) return p;
  throw FormatError("checkpoint", fmt::format("'{}' has no tensor '{}' under any of the prefixes [{}]", file_.path().string(),
                                              probe, fmt::join(prefixes, ", ")),
                    "is this a checkpoint of the architecture named in config.json?");
}

std::filesystem::path find_weights_file(const std::filesystem::path& folder) {
  const auto st = folder / "model.safetensors";
  if (std::filesystem::exists(st)) return st;
  if (std::filesystem::exists(folder / "pytorch_model.bin"))
    throw FormatError("checkpoint", fmt::format("'{}' has only pytorch_model.bin", folder.string()),
                      "convert it once: python3 scripts/convert_to_safetensors.py MODEL_DIR");
  throw IoError("checkpoint", fmt::format("'{}' has no model.safetensors", folder.string()),
                "pass a Hugging Face model folder (config.json + model.safetensors)");
}

}  // namespace graft::backbones
