#include "peft_targets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include "graft/text.h"

namespace graft::lora {

using graft::json_string;
using graft::thousands;
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = s.find('.', start)) != std::string::npos; start = dot + 1) parts.push_back(s.substr(start, dot - start));
  parts.push_back(s.substr(start));
  return parts;
}

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// PEFT's list matching: the module's name equals the target or ends with "." + target.
bool peft_suffix_match(const std::string& module, const std::string& target) {
  return module == target || (module.size() > target.size() && module.ends_with(target) &&
                              module[module.size() - target.size() - 1] == '.');
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::vector<const Site*> regex_select(const std::string& pattern, const std::vector<const Site*>& candidates) {
  std::vector<const Site*> out;
  try {
    const std::regex rx(pattern);
    for (const Site* s : candidates)
      if (std::regex_match(s->checkpoint_module, rx)) out.push_back(s);
  } catch (const std::regex_error&) {
    return {};
  }
  return out;
}

PeftTargets peft_targets(const std::vector<Site>& sites, const std::vector<const Site*>& selected) {
  std::vector<const Site*> linear;
  for (const Site& s : sites)
    if (s.kind == SiteKind::linear) linear.push_back(&s);
  std::vector<std::string> modules, suffixes;
  for (const Site* s : selected)
    if (std::find(modules.begin(), modules.end(), s->module) == modules.end()) modules.push_back(s->module);

  // The shortest layer-independent suffix of each module's checkpoint name that PEFT
  // would match against that module only ("dense" in BERT names three modules).
  bool listable = true;
  for (const std::string& m : modules) {
    const Site* rep = *std::find_if(linear.begin(), linear.end(), [&](const Site* s) { return s->module == m; });
    const auto parts = split(rep->checkpoint_module);
    std::string found;
    for (std::size_t k = 1; k <= parts.size() && found.empty(); ++k) {
      if (is_number(parts[parts.size() - k])) break;
      std::string suffix = parts[parts.size() - k];
      for (std::size_t j = parts.size() - k + 1; j < parts.size(); ++j) suffix += "." + parts[j];
      const bool exact = std::all_of(linear.begin(), linear.end(), [&](const Site* s) {
        return peft_suffix_match(s->checkpoint_module, suffix) == (s->module == m);
      });
      if (exact) found = suffix;
    }
    if (found.empty()) listable = false;
    suffixes.push_back(found);
  }
  std::set<int> layers, all_layers;
  for (const Site* s : selected) layers.insert(s->layer);
  for (const Site* s : linear) all_layers.insert(s->layer);
  // The selection must be exactly (those modules) x (those layers).
  std::size_t product = 0;
  for (const Site* s : linear)
    product += std::count(modules.begin(), modules.end(), s->module) && layers.count(s->layer);
  const bool is_product = product == selected.size();
  listable = listable && is_product;

  PeftTargets out;
  if (listable) {
    std::sort(suffixes.begin(), suffixes.end());
    std::vector<std::string> quoted;
    for (const auto& s : suffixes) quoted.push_back(json_string(s));
    out.target_modules = fmt::format("[{}]", fmt::join(quoted, ", "));
    out.layers_to_transform = layers == all_layers ? "null" : fmt::format("[{}]", fmt::join(layers, ", "));
  } else {
    // A regex: per module, its name with the layer number as an alternation
    // (encoder\.layer\.\d+\.output\.dense); every site's full name where that fails.
    const std::string layer_rx = layers == all_layers ? std::string("\\d+") : fmt::format("({})", fmt::join(layers, "|"));
    std::vector<std::string> names;
    for (const std::string& m : modules) {
      if (!is_product) break;
      const Site* rep = *std::find_if(selected.begin(), selected.end(), [&](const Site* s) { return s->module == m; });
      auto parts = split(rep->checkpoint_module);
      auto at = std::find(parts.begin(), parts.end(), std::to_string(rep->layer));
      if (at == parts.end()) break;
      std::vector<std::string> escaped;
      for (auto it = parts.begin(); it != parts.end(); ++it) escaped.push_back(it == at ? layer_rx : regex_escape(*it));
      names.push_back(fmt::format("{}", fmt::join(escaped, "\\.")));
    }
    if (names.size() != modules.size()) {
      names.clear();
      for (const Site* s : selected) names.push_back(regex_escape(s->checkpoint_module));
    }
    out.target_modules = json_string(fmt::format("({})", fmt::join(names, "|")));
    out.layers_to_transform = "null";
  }
  return out;
}

std::string layer_ranges(const std::vector<const Site*>& selected) {
  std::set<int> layers;
  for (const Site* s : selected) layers.insert(s->layer);
  std::vector<std::string> parts;
  for (auto it = layers.begin(); it != layers.end();) {
    const int first = *it;
    int last = first;
    while (++it != layers.end() && *it == last + 1) last = *it;
    parts.push_back(first == last ? std::to_string(first) : fmt::format("{}-{}", first, last));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace graft::lora
