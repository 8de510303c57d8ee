// Hugging Face PEFT's tensor names and target_modules (graft/peft_names.h).
#include "graft/peft_names.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <string_view>

#include "graft/error.h"
#include "graft/text.h"

namespace graft::peft {
namespace {

const std::string kHead = "base_model.model.";

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

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// libstdc++'s std::regex compiles by recursion (a stack frame per term of a branch, per
// group) and matches by backtracking: a target_modules string from a config file could
// overflow the stack ("a" 100000 times, "(){30000}"), take exponential time
// ("(.*)*(.*)*x" against a module name) or overflow an integer reading a count
// ("\\18446744073709551615"). Module-name patterns are small: refuse what is not, and
// match with the polynomial (breadth-first) executor. "" when `p` is acceptable.
std::string regex_problem(const std::string& p) {
  constexpr std::size_t kMaxTerms = 4000, kMaxGroups = 100, kMaxDigits = 6, kMaxRepeatedSize = 10000;
  std::vector<std::size_t> terms{0};  // per open group: terms so far in its current branch
  std::size_t in_branches = 0;        // sum of `terms`: the compiler's recursion depth, roughly
  double repeat = 1;                  // product of the counted repetitions' bounds
  auto term = [&] { ++terms.back(), ++in_branches; };
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t run = 0;
      while (i + run < p.size() && std::isdigit(static_cast<unsigned char>(p[i + run]))) ++run;
      if (run > kMaxDigits) return fmt::format("it holds a number of {} digits", run);
    }
    if (c == '\\') {
      if (i + 1 < p.size() && p[i + 1] >= '1' && p[i + 1] <= '9') return "back-references (\\1) are not supported";
      ++i;
      term();
    } else if (c == '[') {  // a bracket expression is one term: skip to its ']'
      std::size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') j += p[j] == '\\' ? 2 : 1;
      i = j;
      term();
    } else if (c == '(') {
      if (terms.size() > kMaxGroups) return fmt::format("it nests groups more than {} deep", kMaxGroups);
      terms.push_back(0);
    } else if (c == ')') {
      if (terms.size() > 1) in_branches -= terms.back(), terms.pop_back();
      term();
    } else if (c == '|') {
      in_branches -= terms.back();
      terms.back() = 0;
    } else if (c == '{') {  // {m}, {m,}, {m,n}: its largest number bounds the copies made
      std::size_t bound = 1, j = i + 1;
      while (j < p.size() && p[j] != '}') {
        std::size_t n = 0, run = 0;
        for (; j < p.size() && std::isdigit(static_cast<unsigned char>(p[j])); ++j, ++run)
          n = n * 10 + static_cast<std::size_t>(p[j] - '0');
        if (run > kMaxDigits) return fmt::format("it holds a number of {} digits", run);
        bound = std::max(bound, n + 1);
        if (run == 0) ++j;
      }
      repeat *= static_cast<double>(bound);
      i = j;
    } else {
      term();
    }
    if (in_branches > kMaxTerms) return fmt::format("a branch of it has more than {} terms", kMaxTerms);
  }
  if (repeat > 1 && repeat * static_cast<double>(p.size()) > kMaxRepeatedSize)
    return fmt::format("its counted repetitions (up to {} copies of a {}-character pattern) build too large an automaton",
                       repeat, p.size());
  return {};
}

}  // namespace

std::string base_model_name(const std::string& source) {
  std::string s = source;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s.substr(s.find_last_of('/') == std::string::npos ? 0 : s.find_last_of('/') + 1);
}

std::string tensor_name(const Site& site, const std::string& suffix) { return kHead + site.checkpoint_module + "." + suffix; }

std::string saved_name(const std::string& want, const std::map<std::string, Tensor>& tensors) {
  if (tensors.count(want)) return want;
  auto module_of = [](const std::string& n) { return n.starts_with(kHead) ? n.substr(kHead.size()) : std::string(); };
  const std::string w = module_of(want);
  std::string found;
  for (const auto& [name, t] : tensors) {
    const std::string m = module_of(name);
    if (m.empty() || m == w || !(w.ends_with("." + m) || m.ends_with("." + w))) continue;
    if (!found.empty()) return {};  // ambiguous: let the caller report the name missing
    found = name;
  }
  return found;
}

std::map<std::string, Tensor> resolve_names(const std::vector<nn::NamedParameter>& params,
                                            const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, Tensor> resolved;
  std::set<std::string> used;
  for (const auto& p : params) {
    const std::string found = saved_name(p.name, tensors);
    if (found.empty()) continue;  // reported missing by PeftMethod::load_state
    resolved[p.name] = tensors.at(found);
    used.insert(found);
  }
  for (const auto& [name, t] : tensors)
    if (!used.count(name)) resolved[name] = t;  // reported as extra
  return resolved;
}

bool suffix_match(const std::string& module, const std::string& target) {
  return module == target ||
         (module.size() > target.size() && module.ends_with(target) && module[module.size() - target.size() - 1] == '.');
}

std::vector<const Site*> regex_select(const std::string& pattern, const std::vector<const Site*>& candidates,
                                      const std::string& key) {
  if (const std::string problem = regex_problem(pattern); !problem.empty())
    throw ConfigError("peft",
                      fmt::format("{} '{}' names no site, and graft does not read it as a regex: {}", key,
                                  pattern.size() > 80 ? pattern.substr(0, 77) + "..." : pattern, problem),
                      "name the modules (a list such as [\"query\", \"value\"]) or write a simpler regex over full module names");
  std::vector<const Site*> out;
  try {
#ifdef __GLIBCXX__
    const std::regex rx(pattern, std::regex::ECMAScript | std::regex_constants::__polynomial);
#else
    const std::regex rx(pattern);
#endif
    for (const Site* s : candidates)
      if (std::regex_match(s->checkpoint_module, rx)) out.push_back(s);
  } catch (const std::regex_error&) {
    return {};
  }
  return out;
}

std::vector<const Site*> select_linear(const AttachContext& context, const std::string& target,
                                       const std::vector<std::int64_t>& layers, const std::string& key) {
  if (target == "all-linear") return context.select(SiteKind::linear, {}, layers);
  try {
    return context.select(SiteKind::linear, {target}, layers);
  } catch (const ConfigError&) {
    auto chosen = regex_select(target, context.select(SiteKind::linear, {}, layers), key);
    if (chosen.empty()) throw;  // neither a name nor a regex that matches: select's error
    return chosen;
  }
}

std::string module_suffix(const std::vector<const Site*>& linear, const std::string& module) {
  const Site* rep = *std::find_if(linear.begin(), linear.end(), [&](const Site* s) { return s->module == module; });
  const auto parts = split(rep->checkpoint_module);
  std::string suffix;
  for (std::size_t k = 1; k <= parts.size(); ++k) {
    const std::string& part = parts[parts.size() - k];
    if (is_number(part)) break;  // a layer index: not layer-independent
    suffix = k == 1 ? part : part + "." + suffix;
    const bool exact = std::all_of(linear.begin(), linear.end(),
                                   [&](const Site* s) { return suffix_match(s->checkpoint_module, suffix) == (s->module == module); });
    if (exact) return suffix;
  }
  return {};
}

std::string names_regex(const std::vector<const Site*>& sites) {
  std::vector<std::string> names;
  for (const Site* s : sites) names.push_back(regex_escape(s->checkpoint_module));
  return fmt::format("({})", fmt::join(names, "|"));
}

Targets targets(const std::vector<Site>& sites, const std::vector<const Site*>& selected) {
  std::vector<const Site*> linear;
  for (const Site& s : sites)
    if (s.kind == SiteKind::linear) linear.push_back(&s);
  std::vector<std::string> modules, suffixes;
  for (const Site* s : selected)
    if (std::find(modules.begin(), modules.end(), s->module) == modules.end()) modules.push_back(s->module);
  bool listable = true;
  for (const std::string& m : modules) {
    suffixes.push_back(module_suffix(linear, m));
    listable = listable && !suffixes.back().empty();
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

  Targets out;
  if (listable) {
    std::sort(suffixes.begin(), suffixes.end());
    std::vector<std::string> quoted;
    for (const auto& s : suffixes) quoted.push_back(json_string(s));
    out.target_modules = fmt::format("[{}]", fmt::join(quoted, ", "));
    out.layers_to_transform = layers == all_layers ? "null" : fmt::format("[{}]", fmt::join(layers, ", "));
    return out;
  }
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
  out.target_modules = json_string(names.size() == modules.size() ? fmt::format("({})", fmt::join(names, "|")) : names_regex(selected));
  out.layers_to_transform = "null";
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

}  // namespace graft::peft
