// How a sentence-transformers folder says to embed: its pooling (1_Pooling/config.json)
// and its input length (sentence_bert_config.json); plain folders: mean, the model's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "graft/task.h"

namespace graft::api {

Pooling folder_pooling(const std::filesystem::path& folder);
std::size_t folder_max_length(const std::filesystem::path& folder, std::int64_t positions);

}  // namespace graft::api
