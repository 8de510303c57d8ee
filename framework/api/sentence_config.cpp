#include "api/sentence_config.h"

#include <algorithm>

#include "io/json_config.h"

namespace graft::api {
namespace fs = std::filesystem;

Pooling folder_pooling(const fs::path& folder) {
  const auto file = folder / "1_Pooling" / "config.json";
  if (!fs::is_directory(folder) || !fs::exists(file)) return Pooling::mean;
  const auto j = io::load_json(file);
  if (io::optional_key<bool>(j, "pooling_mode_cls_token", false, file.string())) return Pooling::cls;
  return Pooling::mean;
}

std::size_t folder_max_length(const fs::path& folder, std::int64_t positions) {
  const auto file = folder / "sentence_bert_config.json";
  std::int64_t length = positions;
  if (fs::is_directory(folder) && fs::exists(file))
    length = io::optional_key<std::int64_t>(io::load_json(file), "max_seq_length", positions, file.string());
  return static_cast<std::size_t>(std::clamp<std::int64_t>(length, 1, positions));
}

}  // namespace graft::api
