#include "peft/site_select.h"

#include <fmt/format.h>

#include <algorithm>
#include <regex>
#include <set>

#include "graft/error.h"

namespace graft {
namespace {

bool ends_with_part(const std::string& name, const std::string& tail) {
  return name == tail || (name.size() > tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
                          name[name.size() - tail.size() - 1] == '.');
}

// Glob → regex: '.' literal, '*' anything, a whole "A-B" part a number in range.
bool glob_matches(const std::string& pattern, const std::string& name) {
  std::string rx;
  std::size_t start = 0;
  while (start <= pattern.size()) {
    std::size_t end = pattern.find('.', start);
    if (end == std::string::npos) end = pattern.size();
    const std::string part = pattern.substr(start, end - start);
    std::smatch range;
    static const std::regex kRange(R"((\d+)-(\d+))");
    if (std::regex_match(part, range, kRange)) {
      const int lo = std::stoi(range[1]), hi = std::stoi(range[2]);
      std::vector<std::string> numbers;
      for (int i = lo; i <= hi; ++i) numbers.push_back(std::to_string(i));
      rx += fmt::format("({})", fmt::join(numbers, "|"));
    } else {
      for (char c : part) {
        if (c == '*') rx += ".*";
        else if (std::string_view("^$|()[]{}+?\\").find(c) != std::string_view::npos) rx += std::string("\\") + c;
        else rx += c;
      }
    }
    if (end == pattern.size()) break;
    rx += "\\.";
    start = end + 1;
  }
  return std::regex_match(name, std::regex(rx));
}

}  // namespace

bool site_matches(const std::string& pattern, const Site& site) {
  if (pattern.empty()) return false;
  if (pattern == site.name || ends_with_part(site.module, pattern)) return true;
  if (!site.checkpoint_module.empty() && ends_with_part(site.checkpoint_module, pattern)) return true;
  const bool glob = pattern.find('*') != std::string::npos || std::regex_search(pattern, std::regex(R"((^|\.)\d+-\d+(\.|$))"));
  return glob && glob_matches(pattern, site.name);
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
  }
  return "?";
}

}  // namespace graft
