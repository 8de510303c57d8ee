// Composition blocks as Selection values (graft/selection.h): construction with
// AdapterHub's nesting rules, and the text form --compose reads.
#include "graft/selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "graft/error.h"

namespace graft {
namespace {

const char* block_name(Selection::Kind kind) {
  switch (kind) {
    case Selection::Kind::none: return "none";
    case Selection::Kind::stack: return "stack";
    case Selection::Kind::per_row: return "per-row";
    case Selection::Kind::parallel: return "parallel";
    case Selection::Kind::average: return "average";
    case Selection::Kind::fuse: return "fuse";
  }
  return "?";
}

bool is_adapter(const Selection& s) { return s.kind() == Selection::Kind::stack && s.blocks().empty() && s.names().size() == 1; }

// AdapterHub's table of what each block may hold (adapters always).
void check_nesting(Selection::Kind outer, const std::vector<Selection>& inner) {
  using K = Selection::Kind;
  for (const Selection& s : inner) {
    if (s.kind() == K::none || s.kind() == K::per_row || s.empty())
      throw ConfigError("selection", fmt::format("a {} block cannot hold {}", block_name(outer),
                                                 s.kind() == K::per_row ? "a per-row selection" : "an empty selection"),
                        "give it adapter names or blocks");
    if (is_adapter(s)) continue;
    bool ok = false;
    switch (outer) {
      case K::stack: ok = s.kind() == K::fuse || s.kind() == K::parallel || s.kind() == K::average; break;
      case K::parallel: ok = s.kind() == K::stack || s.kind() == K::average; break;
      case K::average: ok = s.kind() == K::stack; break;
      default: break;
    }
    if (!ok)
      throw ConfigError("selection", fmt::format("a {} block cannot hold a {} block ({})", block_name(outer),
                                                 block_name(s.kind()), s.to_string()),
                        "stack holds adapters, fuse, parallel and average; parallel holds adapters, stack and "
                        "average; average holds adapters and stack (AdapterHub's nesting rules)");
  }
}

std::vector<std::string> all_names(const std::vector<Selection>& blocks) {
  std::vector<std::string> out;
  for (const Selection& b : blocks) out.insert(out.end(), b.names().begin(), b.names().end());
  return out;
}

// Recursive descent over "block(arg, arg:weight, ...)".
class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Selection top() {
    std::vector<Selection> items;
    do items.push_back(expression(nullptr));
    while (take(','));
    skip();
    if (pos_ != text_.size()) fail("an unexpected character", "close every block with ')' and separate with ','");
    return items.size() == 1 ? items.front() : Selection::stack_of(std::move(items));
  }

 private:
  Selection expression(float* weight) {
    skip();
    const std::size_t start = pos_;
    while (pos_ < text_.size() && !std::isspace(static_cast<unsigned char>(text_[pos_])) &&
           std::string_view(",():").find(text_[pos_]) == std::string_view::npos)
      ++pos_;
    std::string word = text_.substr(start, pos_ - start);
    if (word.empty()) fail("a missing adapter name or block", "write e.g. stack(a,b), average(a:0.7,b:0.3), fuse(a,b)");
    skip();
    Selection out;
    if (take('(')) {
      std::string block = word;
      std::transform(block.begin(), block.end(), block.begin(), [](unsigned char c) { return std::tolower(c); });
      std::vector<Selection> args;
      std::vector<float> weights;
      std::size_t weighted = 0;
      do {
        float w = std::nanf("");  // NaN: no weight written
        args.push_back(expression(&w));
        weighted += std::isnan(w) ? 0 : 1;
        weights.push_back(std::isnan(w) ? 1.f : w);
      } while (take(','));
      if (!take(')')) fail("a missing ')'", fmt::format("close the {} block", block));
      if (weighted && block != "average")
        fail("a weight outside an average block", "weights (name:0.3) belong in average(...)");
      if (weighted && weighted != args.size())
        fail("weights on some branches only", "give every branch of the average a weight, or none");
      if (block == "stack") out = Selection::stack_of(std::move(args));
      else if (block == "parallel") out = Selection::parallel(std::move(args));
      else if (block == "average") out = Selection::average(std::move(args), weighted > 0 ? weights : std::vector<float>{});
      else if (block == "fuse") {
        std::vector<std::string> names;
        for (const Selection& a : args) {
          if (!is_adapter(a)) throw ConfigError("selection", fmt::format("fuse takes adapter names, not {}", a.to_string()),
                                                "fuse(a,b,c) over bottleneck adapters");
          names.push_back(a.names().front());
        }
        out = Selection::fuse(std::move(names));
      } else {
        pos_ = start;
        fail(fmt::format("an unknown block '{}'", word), "blocks: stack, parallel, average, fuse");
      }
    } else {
      out = Selection::one(word);
    }
    skip();
    if (take(':')) {
      if (!weight) fail("a weight outside a block", "weights (name:0.3) belong in average(...)");
      skip();
      const char* begin = text_.c_str() + pos_;
      char* end = nullptr;
      const double w = std::strtod(begin, &end);
      if (end == begin || !std::isfinite(w)) fail("a weight that is not a number", "write name:0.3");
      pos_ += static_cast<std::size_t>(end - begin);
      *weight = static_cast<float>(w);
    }
    return out;
  }

  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool take(char c) {
    skip();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  [[noreturn]] void fail(const std::string& what, const std::string& hint) const {
    throw ConfigError("selection", fmt::format("cannot read the composition '{}': {} at column {}", text_, what, pos_ + 1), hint);
  }

  const std::string& text_;
  std::size_t pos_ = 0;
};

}  // namespace

Selection Selection::stack_of(std::vector<Selection> blocks) {
  check_nesting(Kind::stack, blocks);
  Selection out(Kind::stack, all_names(blocks));
  if (!std::all_of(blocks.begin(), blocks.end(), is_adapter)) out.blocks_ = std::move(blocks);
  return out;
}

Selection Selection::parallel(std::vector<Selection> branches) {
  check_nesting(Kind::parallel, branches);
  if (branches.size() < 2) throw ConfigError("selection", "a parallel block needs at least two branches", "parallel(a,b)");
  Selection out(Kind::parallel, all_names(branches));
  out.blocks_ = std::move(branches);
  return out;
}

Selection Selection::average(std::vector<Selection> branches, std::vector<float> weights) {
  check_nesting(Kind::average, branches);
  if (branches.size() < 2) throw ConfigError("selection", "an average block needs at least two branches", "average(a,b)");
  if (weights.empty()) weights.assign(branches.size(), 1.f);
  if (weights.size() != branches.size())
    throw ConfigError("selection", fmt::format("an average block has {} branches and {} weights", branches.size(), weights.size()),
                      "give one weight per branch");
  double total = 0;
  for (float w : weights) total += w;
  if (!std::isfinite(total) || std::abs(total) < 1e-12)
    throw ConfigError("selection", fmt::format("the average's weights sum to {}", total),
                      "weights are normalised to sum to 1: their sum must not be 0");
  Selection out(Kind::average, all_names(branches));
  for (float& w : weights) w = static_cast<float>(w / total);
  out.weights_ = std::move(weights);
  out.blocks_ = std::move(branches);
  return out;
}

Selection Selection::fuse(std::vector<std::string> adapters) {
  if (adapters.size() < 2) throw ConfigError("selection", "a fuse block needs at least two adapters", "fuse(a,b)");
  for (std::size_t i = 0; i < adapters.size(); ++i)
    if (std::find(adapters.begin(), adapters.begin() + static_cast<std::ptrdiff_t>(i), adapters[i]) !=
        adapters.begin() + static_cast<std::ptrdiff_t>(i))
      throw ConfigError("selection", fmt::format("fuse names adapter '{}' twice", adapters[i]), "fuse distinct adapters");
  return Selection(Kind::fuse, std::move(adapters));
}

Selection Selection::parse(const std::string& text) { return Parser(text).top(); }

bool Selection::has_parallel() const {
  if (kind_ == Kind::parallel) return true;
  return std::any_of(blocks_.begin(), blocks_.end(), [](const Selection& b) { return b.has_parallel(); });
}

std::vector<Selection> Selection::branches() const {
  if (!has_parallel()) return {*this};
  if (kind_ == Kind::parallel) return blocks_;
  // A stack holding the parallel block (parallel nests nowhere else).
  std::size_t at = blocks_.size();
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    if (!blocks_[i].has_parallel()) continue;
    if (at != blocks_.size())
      throw ConfigError("selection", fmt::format("{} has two parallel blocks", to_string()),
                        "one parallel block per selection: each copy of the batch runs one branch");
    at = i;
  }
  std::vector<Selection> out;
  for (const Selection& branch : blocks_[at].blocks_) {
    std::vector<Selection> blocks(blocks_.begin(), blocks_.begin() + static_cast<std::ptrdiff_t>(at));
    // A stack branch splices into the stack (a stack does not hold a stack).
    if (branch.kind_ == Kind::stack && !is_adapter(branch)) {
      if (branch.blocks_.empty())
        for (const auto& n : branch.names_) blocks.push_back(one(n));
      else
        blocks.insert(blocks.end(), branch.blocks_.begin(), branch.blocks_.end());
    } else {
      blocks.push_back(branch);
    }
    blocks.insert(blocks.end(), blocks_.begin() + static_cast<std::ptrdiff_t>(at) + 1, blocks_.end());
    out.push_back(stack_of(std::move(blocks)));
  }
  return out;
}

std::string Selection::to_string() const {
  switch (kind_) {
    case Kind::none: return "none";
    case Kind::per_row: return fmt::format("per-row({})", fmt::join(names_, ","));
    case Kind::fuse: return fmt::format("fuse({})", fmt::join(names_, ","));
    case Kind::stack:
      if (blocks_.empty()) return names_.size() == 1 ? names_.front() : fmt::format("stack({})", fmt::join(names_, ","));
      [[fallthrough]];
    default: {
      std::vector<std::string> parts;
      for (std::size_t i = 0; i < blocks_.size(); ++i)
        parts.push_back(kind_ == Kind::average ? fmt::format("{}:{:g}", blocks_[i].to_string(), weights_[i]) : blocks_[i].to_string());
      return fmt::format("{}({})", block_name(kind_), fmt::join(parts, ","));
    }
  }
}

}  // namespace graft
