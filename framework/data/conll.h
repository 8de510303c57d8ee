// CoNLL-2003 NER files: one token per line (word, POS, chunk, NER tag in IOB1),
// -DOCSTART- lines, a blank line between sentences.
#pragma once
#include <filesystem>

#include "data/dataset.h"

namespace graft::data {

// The nine CoNLL-2003 tags, in the order they are numbered.
const std::vector<std::string>& conll_tags();
Dataset read_conll(const std::filesystem::path& file);

}  // namespace graft::data
