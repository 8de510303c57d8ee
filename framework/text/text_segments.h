// What the tokenizers share around their models: added (special) tokens cut out of
// raw text, HF's "longest_first" truncation of a pair, plain string replacement.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace graft::text::text_segments {

// An entry of "added_tokens": matched verbatim in the raw text before anything else.
struct AddedToken {
  std::u32string content;
  std::int64_t id = -1;
  bool lstrip = false, rstrip = false, single_word = false, special = false;
};
// One run of text between added tokens, or one matched added token (`added` >= 0 is its
// index in the list given to split_on_added).
struct Segment {
  std::u32string text;
  int added = -1;
};
// Cuts the added tokens out of `text`, leftmost match first and the longest at a
// position (as HF); lstrip/rstrip tokens absorb the whitespace beside them.
std::vector<Segment> split_on_added(const std::u32string& text, const std::vector<AddedToken>& added);

// Shortens a (and b) to `budget` ids in all, as HF tokenizers' "longest_first": the
// shorter keeps what it can up to half the budget, the longer gets the rest; on a tie
// the odd id goes to the second.
void truncate_longest_first(std::vector<std::int64_t>& a, std::vector<std::int64_t>* b, std::size_t budget);


std::string replace_all(std::string text, std::string_view from, std::string_view to);

}  // namespace graft::text::text_segments
