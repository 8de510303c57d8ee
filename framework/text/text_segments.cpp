#include "text/text_segments.h"

#include <algorithm>

#include "text/unicode.h"

namespace graft::text::text_segments {

std::vector<Segment> split_on_added(const std::u32string& text, const std::vector<AddedToken>& added) {
  auto word_char = [](char32_t c) { return unicode::is_letter(c) || unicode::is_number(c) || c == U'_'; };
  std::vector<Segment> out;
  std::size_t begin = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    int hit = -1;
    for (std::size_t i = 0; i < added.size(); ++i) {
      const std::u32string& token = added[i].content;
      if (token.empty() || text.compare(pos, token.size(), token) != 0) continue;
      if (added[i].single_word && ((pos > 0 && word_char(text[pos - 1])) ||
                                   (pos + token.size() < text.size() && word_char(text[pos + token.size()]))))
        continue;
      if (hit < 0 || token.size() > added[static_cast<std::size_t>(hit)].content.size()) hit = static_cast<int>(i);
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = added[static_cast<std::size_t>(hit)];
    std::size_t end = pos;  // of the text before the token
    if (token.lstrip)
      while (end > begin && unicode::is_whitespace(text[end - 1])) --end;
    if (end > begin) out.push_back({text.substr(begin, end - begin), -1});
    out.push_back({token.content, hit});
    pos += token.content.size();
    if (token.rstrip)
      while (pos < text.size() && unicode::is_whitespace(text[pos])) ++pos;
    begin = pos;
  }
  if (begin < text.size()) out.push_back({text.substr(begin), -1});
  return out;
}

void truncate_longest_first(std::vector<std::int64_t>& a, std::vector<std::int64_t>* b, std::size_t budget) {
  if (!b) {
    if (a.size() > budget) a.resize(budget);
    return;
  }
  if (a.size() + b->size() <= budget) return;
  std::size_t n1 = a.size(), n2 = b->size();
  const bool swapped = n1 > n2;
  if (swapped) std::swap(n1, n2);
  n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = budget / 2;
    n2 = n1 + budget % 2;
  }
  if (swapped) std::swap(n1, n2);
  a.resize(std::min(a.size(), n1));
  b->resize(std::min(b->size(), n2));
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
    text.replace(pos, from.size(), to);
  return text;
}

}  // namespace graft::text::text_segments
