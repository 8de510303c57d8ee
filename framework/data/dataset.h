// What the data readers share: the in-memory task data (graft/dataset.h) and the
// checks every reader makes on a row.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "graft/dataset.h"

namespace graft::data {

// Throws FormatError naming `file` and `line` when `text` is not valid UTF-8.
void require_utf8(const std::string& text, const std::filesystem::path& file, std::size_t line);
// A regression target: a finite decimal number, else FormatError naming `file` and `line`
// ("nan" and "inf" parse as numbers but would poison every loss and metric).
double parse_number_label(const std::string& text, const std::filesystem::path& file, std::size_t line, const std::string& hint);

}  // namespace graft::data
