#include "peft/site_select.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string_view>

#include "graft/error.h"

namespace graft {
namespace {

bool ends_with_part(const std::string& name, const std::string& tail) {
  return name == tail || (name.size() > tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
                          name[name.size() - tail.size() - 1] == '.');
}

// A glob, token by token: '*' matches any characters (dots included), a whole dotted
// part "A-B" matches a whole part of the name that is a number in [A, B] written without
// leading zeros, any other character itself. Matched in O(pattern x name) steps, without
// std::regex: a range used to become an alternation of every number in it ("0-99999999"
// built a hundred million strings; "0-99999999999" threw std::out_of_range from stoi),
// and backtracking over many '*' took exponential time.
struct GlobToken {
  enum Kind { literal, star, range } kind;
  char c = 0;
  std::uint64_t lo = 0, hi = 0;
};

std::uint64_t saturating_number(std::string_view digits) {
  std::uint64_t v = 0;
  for (char d : digits) {
    const auto digit = static_cast<std::uint64_t>(d - '0');
    if (v > (UINT64_MAX - digit) / 10) return UINT64_MAX;
    v = v * 10 + digit;
  }
  return v;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<GlobToken> glob_tokens(const std::string& pattern) {
  std::vector<GlobToken> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = pattern.find('.', start);
    if (end == std::string::npos) end = pattern.size();
    const std::string_view part(pattern.data() + start, end - start);
    const std::size_t dash = part.find('-');
    if (dash != std::string_view::npos && all_digits(part.substr(0, dash)) && all_digits(part.substr(dash + 1))) {
      out.push_back({GlobToken::range, 0, saturating_number(part.substr(0, dash)), saturating_number(part.substr(dash + 1))});
    } else {
      for (char c : part) out.push_back(c == '*' ? GlobToken{GlobToken::star} : GlobToken{GlobToken::literal, c});
    }
    if (end == pattern.size()) break;
    out.push_back({GlobToken::literal, '.'});
    start = end + 1;
  }
  return out;
}

bool is_glob(const std::vector<GlobToken>& tokens) {
  return std::any_of(tokens.begin(), tokens.end(), [](const GlobToken& t) { return t.kind != GlobToken::literal; });
}

bool glob_matches(const std::vector<GlobToken>& tokens, const std::string& name) {
  const std::size_t n = name.size();
  std::vector<char> reach(n + 1, 0), next(n + 1);  // reach[j]: tokens so far match name[0, j)
  reach[0] = 1;
  for (const GlobToken& t : tokens) {
    std::fill(next.begin(), next.end(), 0);
    for (std::size_t j = 0; j <= n; ++j) {
      if (!reach[j]) continue;
      if (t.kind == GlobToken::star) {
        std::fill(next.begin() + static_cast<std::ptrdiff_t>(j), next.end(), 1);
        break;
      }
      if (t.kind == GlobToken::literal) {
        if (j < n && name[j] == t.c) next[j + 1] = 1;
        continue;
      }
      std::size_t k = j;
      while (k < n && name[k] >= '0' && name[k] <= '9') ++k;
      const std::string_view number(name.data() + j, k - j);
      if (k == j || (number.size() > 1 && number[0] == '0') || (j > 0 && name[j - 1] != '.') || (k < n && name[k] != '.'))
        continue;
      const std::uint64_t v = saturating_number(number);
      if (v >= t.lo && v <= t.hi) next[k] = 1;
    }
    std::swap(reach, next);
  }
  return reach[n] != 0;
}

}  // namespace

bool site_matches(const std::string& pattern, const Site& site) {
  if (pattern.empty()) return false;
  if (pattern == site.name || ends_with_part(site.module, pattern)) return true;
  if (!site.checkpoint_module.empty() && ends_with_part(site.checkpoint_module, pattern)) return true;
  const auto tokens = glob_tokens(pattern);
  return is_glob(tokens) && glob_matches(tokens, site.name);
}

std::vector<const Site*> select_sites(const std::vector<Site>& sites, SiteKind kind, const std::vector<std::string>& patterns,
                                      const std::vector<std::int64_t>& layers, const std::string& who) {
  std::vector<const Site*> of_kind;
  for (const Site& s : sites)
    if (s.kind == kind) of_kind.push_back(&s);
  auto offered = [&] {
    std::set<std::string> modules;
    for (const Site* s : of_kind) modules.insert(s->module);
    return fmt::format("{} sites of this backbone: modules {} in layers 0-{} (e.g. '{}'); see `graft info --backbone B`",
                       site_kind_name(kind), fmt::join(modules, ", "),
                       of_kind.empty() ? 0 : std::max_element(of_kind.begin(), of_kind.end(), [](auto a, auto b) { return a->layer < b->layer; })[0]->layer,
                       of_kind.empty() ? std::string("-") : of_kind.front()->name);
  };
  for (const auto& p : patterns) {
    const bool any = std::any_of(of_kind.begin(), of_kind.end(), [&](const Site* s) { return site_matches(p, *s); });
    if (!any) throw ConfigError(who, fmt::format("'{}' matches no {} site of this backbone", p, site_kind_name(kind)), offered());
  }
  std::vector<const Site*> out;
  for (const Site* s : of_kind) {
    const bool named = patterns.empty() || std::any_of(patterns.begin(), patterns.end(), [&](const auto& p) { return site_matches(p, *s); });
    const bool in_layers = layers.empty() || std::find(layers.begin(), layers.end(), s->layer) != layers.end();
    if (named && in_layers) out.push_back(s);
  }
  if (!layers.empty()) {
    for (auto l : layers)
      if (std::none_of(of_kind.begin(), of_kind.end(), [&](const Site* s) { return s->layer == l; }))
        throw ConfigError(who, fmt::format("layer {} does not exist in this backbone", l), offered());
  }
  return out;
}

const char* site_kind_name(SiteKind kind) {
  switch (kind) {
    case SiteKind::linear: return "linear";
    case SiteKind::sublayer_output: return "sublayer_output";
    case SiteKind::attention_kv: return "attention_kv";
    case SiteKind::input_embeddings: return "input_embeddings";
    case SiteKind::head: return "head";
    case SiteKind::norm: return "norm";
  }
  return "?";
}

}  // namespace graft
