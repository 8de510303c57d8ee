// The per-call dispatch of AdapterSet (peft/adapter_set.h): a Selection resolved into
// groups of rows, each with a tree of composition blocks, run at every site.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "graft/config.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "peft/adapter_set.h"
#include "plugin/fusion.h"

namespace graft {
namespace {

// Several adapters' results for their own rows (disjoint), written into `base` with
// one copy of it.
using RowParts = std::vector<std::pair<const std::vector<std::int64_t>*, Tensor>>;
Tensor scatter_parts(const Tensor& base, const RowParts& parts) {
  if (parts.empty()) return base;
  std::vector<std::int64_t> rows;
  std::vector<Tensor> values;
  for (const auto& [own, value] : parts) {
    rows.insert(rows.end(), own->begin(), own->end());
    values.push_back(value);
  }
  return ops::scatter_rows(base, rows, values.size() == 1 ? values.front() : ops::concat(values, 0));
}

// `t` with `n` columns of `value` put in front along `axis`.
Tensor pad_front(const Tensor& t, int axis, std::int64_t n, float value) {
  if (n == 0) return t;
  Shape shape = t.shape();
  shape[axis] = n;
  return ops::concat({Tensor::full(shape, value, t.dtype()), t}, axis);
}

// The rows of a mask that may broadcast over the batch (leading size 1).
Tensor mask_rows(const Tensor& mask, const std::vector<std::int64_t>& rows) {
  return ops::gather_rows(mask, mask.dim(0) == 1 ? std::vector<std::int64_t>(rows.size(), 0) : rows);
}

std::vector<std::int64_t> every_row(std::int64_t batch) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b) rows[b] = b;
  return rows;
}


// What a method does, by the kinds of site it hooks: block rules are about that.
std::set<SiteKind> hooked_kinds(const std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>>& hooks) {
  std::set<SiteKind> out;
  for (const auto& [site, list] : hooks) out.insert(site->kind);
  return out;
}

}  // namespace

ActiveAdapters AdapterSet::bind(const Selection& selection, std::int64_t rows) const {
  ActiveAdapters view(*this);
  if (selection.kind() == Selection::Kind::per_row) {
    const auto& names = selection.names();
    view.batch_ = static_cast<std::int64_t>(names.size());
    std::map<std::string, std::vector<std::int64_t>> groups;  // by name: a stable order across calls
    for (std::size_t b = 0; b < names.size(); ++b)
      if (!names[b].empty()) groups[names[b]].push_back(static_cast<std::int64_t>(b));
    for (auto& [name, own] : groups) {
      if (own.size() == names.size()) own.clear();  // one adapter for the whole batch: no gather
      view.groups_.push_back({view.resolve(Selection::one(name)), std::move(own)});
    }
  } else if (selection.has_parallel()) {
    // Branch i runs on copy i of the batch: rows [i·rows, (i+1)·rows).
    const std::vector<Selection> branches = selection.branches();
    view.batch_ = rows * static_cast<std::int64_t>(branches.size());
    for (std::size_t i = 0; i < branches.size(); ++i) {
      std::vector<std::int64_t> own(static_cast<std::size_t>(rows));
      for (std::int64_t r = 0; r < rows; ++r) own[r] = static_cast<std::int64_t>(i) * rows + r;
      view.groups_.push_back({view.resolve(branches[i]), std::move(own)});
    }
  } else if (!selection.empty()) {
    view.groups_.push_back({view.resolve(selection), {}});
  }
  view.offset_prefixes();
  return view;
}

ActiveAdapters::Node ActiveAdapters::resolve(const Selection& s) const {
  using K = Selection::Kind;
  Node node;
  if (s.kind() == K::fuse) return resolve_fuse(s);
  if (s.kind() == K::stack && s.blocks().empty() && s.names().size() == 1) {
    node.name = s.names().front();
    node.adapter = &set_->get(node.name);
    if (node.adapter->method_name == "fusion")
      throw ConfigError("peft", fmt::format("adapter '{}' is a fusion: it runs over the adapters it fuses", node.name),
                        fmt::format("select it as fuse({})",
                                    fmt::join(Config::parse(node.adapter->config_json).strings("adapters"), ",")));
    return node;
  }
  node.kind = s.kind() == K::average ? Node::Kind::average : Node::Kind::stack;
  if (s.blocks().empty())
    for (const auto& n : s.names()) node.children.push_back(resolve(Selection::one(n)));
  else
    for (const Selection& b : s.blocks()) node.children.push_back(resolve(b));
  if (node.kind == Node::Kind::average) {
    node.weights = s.weights();
    // An average is of outputs: prefixes and virtual tokens lengthen the sequence instead.
    std::vector<const Node*> todo{&node};
    while (!todo.empty()) {
      const Node* n = todo.back();
      todo.pop_back();
      for (const Node& c : n->children) todo.push_back(&c);
      if (n->kind != Node::Kind::adapter) continue;
      const auto kinds = hooked_kinds(n->adapter->hooks);
      if (kinds.count(SiteKind::attention_kv) || kinds.count(SiteKind::input_embeddings))
        throw ConfigError("peft",
                          fmt::format("{} does not accept adapter '{}' (method '{}'): it prepends {} instead of changing an "
                                      "output that can be averaged",
                                      s.to_string(), n->name, n->adapter->method_name,
                                      kinds.count(SiteKind::attention_kv) ? "keys and values" : "virtual tokens"),
                          "average takes bottleneck adapters, LoRA, DoRA and (IA)³ (and stacks of them); stack or "
                          "parallel take prefix and prompt tuning");
    }
  }
  return node;
}

// The fusion adapter over exactly s.names(), in order; every fused adapter a bottleneck
// adapter whose sites the fusion has weights at.
ActiveAdapters::Node ActiveAdapters::resolve_fuse(const Selection& s) const {
  Node node;
  node.kind = Node::Kind::fuse;
  for (const auto& [name, a] : set_->adapters_)
    if (a.method_name == "fusion" && Config::parse(a.config_json).strings("adapters") == s.names()) {
      node.adapter = &a;
      node.name = name;
    }
  for (const auto& member : s.names()) {
    Node leaf = resolve(Selection::one(member));
    const auto kinds = hooked_kinds(leaf.adapter->hooks);
    if (kinds.size() != 1 || !kinds.count(SiteKind::sublayer_output))
      throw ConfigError("peft",
                        fmt::format("{} does not accept adapter '{}' (method '{}'): AdapterFusion attends over what "
                                    "bottleneck adapters add at sublayer outputs{}",
                                    s.to_string(), member, leaf.adapter->method_name,
                                    kinds.count(SiteKind::norm) ? ", and this one also trains layer norms of its own" : ""),
                        "fuse Houlsby, Pfeiffer or parallel bottleneck adapters; combine LoRA adapters with average "
                        "or graft merge");
    if (node.adapter)
      for (const auto& [site, hooks] : leaf.adapter->hooks)
        if (!node.adapter->hooks.count(site))
          throw ConfigError("peft",
                            fmt::format("fusion '{}' has no weights at site '{}', where adapter '{}' acts", node.name,
                                        site->name, member),
                            "add the fusion after loading the adapters it fuses: it is put where they act");
    node.children.push_back(std::move(leaf));
  }
  if (!node.adapter)
    throw ConfigError("peft", fmt::format("no fusion over {} is attached", fmt::join(s.names(), ", ")),
                      fmt::format("add one (method \"fusion\", config {{\"adapters\": [\"{}\"]}}), load a trained one, "
                                  "or train one with --compose '{}'",
                                  fmt::join(s.names(), "\", \""), s.to_string()));
  return node;
}

bool ActiveAdapters::acts(const Node& node, const Site& site) const {
  if (node.kind == Node::Kind::adapter) return node.adapter->hooks.count(&site) > 0;
  return std::any_of(node.children.begin(), node.children.end(), [&](const Node& c) { return acts(c, site); });
}

// The first layer's prefixes count, as Hugging Face reads the past length off layer 0.
// Only stacks hold prefix adapters (average and fuse refuse them).
void ActiveAdapters::offset_prefixes() {
  const Site* first = nullptr;
  for (const Site& s : set_->backbone_.sites())
    if (s.kind == SiteKind::attention_kv && (!first || s.layer < first->layer)) first = &s;
  if (!first) return;
  for (const Group& g : groups_) {
    std::int64_t length = 0;
    std::vector<const Node*> todo{&g.node};
    while (!todo.empty()) {
      const Node* n = todo.back();
      todo.pop_back();
      for (const Node& c : n->children) todo.push_back(&c);
      if (n->kind != Node::Kind::adapter) continue;
      auto it = n->adapter->prefixes.find(first);
      if (it != n->adapter->prefixes.end()) length += it->second;
    }
    if (length == 0) continue;
    if (g.rows.empty()) {
      prefix_all_ += length;
      continue;
    }
    for (std::int64_t b : g.rows) {
      if (static_cast<std::int64_t>(prefix_rows_.size()) <= b) prefix_rows_.resize(static_cast<std::size_t>(b) + 1, 0);
      prefix_rows_[b] += length;
    }
  }
  if (!prefix_rows_.empty()) prefix_rows_.resize(static_cast<std::size_t>(batch_), 0);
}

template <class Call>
void ActiveAdapters::each_hook(const AdapterSet::Attached& adapter, const Site& site, const char* kind, Call&& call) const {
  for (const auto& hook : adapter.hooks.at(&site)) {
    try {
      call(*hook);
    } catch (...) {
      AdapterSet::hook_failed(adapter, kind, site);
    }
  }
}

Tensor ActiveAdapters::run_linear(const Node& node, const Site& site, LinearCall call) const {
  switch (node.kind) {
    case Node::Kind::adapter:
      // Not acting here, or its delta is in the weight already.
      if (!node.adapter->hooks.count(&site) || node.adapter->merged.count(&site)) return call.y;
      each_hook(*node.adapter, site, "linear", [&](AdapterHook& hook) { call.y = hook.linear(site, call, Rows{}); });
      return call.y;
    case Node::Kind::stack:
      for (const Node& c : node.children) call.y = run_linear(c, site, call);
      return call.y;
    case Node::Kind::average: {
      Tensor sum;
      for (std::size_t i = 0; i < node.children.size(); ++i) {
        const Tensor part = ops::scale(run_linear(node.children[i], site, call), node.weights[i]);
        sum = sum.defined() ? ops::add(sum, part) : part;
      }
      return sum;
    }
    case Node::Kind::fuse: return call.y;  // bottleneck adapters only: nothing at linear sites
  }
  return call.y;
}

Tensor ActiveAdapters::run_sublayer(const Node& node, const Site& site, SublayerCall call) const {
  switch (node.kind) {
    case Node::Kind::adapter:
      if (!node.adapter->hooks.count(&site)) return call.h;
      each_hook(*node.adapter, site, "sublayer_output",
                [&](AdapterHook& hook) { call.h = hook.sublayer_output(site, call, Rows{}); });
      return call.h;
    case Node::Kind::stack:
      for (const Node& c : node.children) call.h = run_sublayer(c, site, call);
      return call.h;
    case Node::Kind::average: {
      Tensor sum;
      for (std::size_t i = 0; i < node.children.size(); ++i) {
        const Tensor part = ops::scale(run_sublayer(node.children[i], site, call), node.weights[i]);
        sum = sum.defined() ? ops::add(sum, part) : part;
      }
      return sum;
    }
    case Node::Kind::fuse: {
      std::vector<Tensor> deltas;
      for (const Node& c : node.children) deltas.push_back(ops::sub(run_sublayer(c, site, call), call.h));
      const auto& fusion = dynamic_cast<const plugin::FusionHook&>(*node.adapter->hooks.at(&site).front());
      return fusion.fuse(call.h, deltas);
    }
  }
  return call.h;
}

Tensor ActiveAdapters::run_norm(const Node& node, const Site& site, NormCall call) const {
  switch (node.kind) {
    case Node::Kind::adapter:
      if (!node.adapter->hooks.count(&site)) return call.y;
      each_hook(*node.adapter, site, "norm", [&](AdapterHook& hook) { call.y = hook.norm(site, call, Rows{}); });
      return call.y;
    case Node::Kind::stack:
      for (const Node& c : node.children) call.y = run_norm(c, site, call);
      return call.y;
    case Node::Kind::average: {
      Tensor sum;
      for (std::size_t i = 0; i < node.children.size(); ++i) {
        const Tensor part = ops::scale(run_norm(node.children[i], site, call), node.weights[i]);
        sum = sum.defined() ? ops::add(sum, part) : part;
      }
      return sum;
    }
    case Node::Kind::fuse: return call.y;  // bottleneck adapters only: nothing at norm sites
  }
  return call.y;
}

void ActiveAdapters::run_attention_kv(const Node& node, const Site& site, Tensor& k, Tensor& v, Tensor& mask) const {
  if (node.kind == Node::Kind::stack)
    for (const Node& c : node.children) run_attention_kv(c, site, k, v, mask);
  if (node.kind != Node::Kind::adapter || !node.adapter->hooks.count(&site)) return;  // average, fuse: none here
  const AdapterSet::Attached& a = *node.adapter;
  auto it = a.prefixes.find(&site);
  const std::int64_t declared = it == a.prefixes.end() ? 0 : it->second;
  each_hook(a, site, "attention_kv", [&](AdapterHook& hook) {
    const std::int64_t keys = k.dim(2), values = v.dim(2), columns = mask.dim(3);
    hook.attention_kv(site, k, v, mask, Rows{});
    // Positions were numbered from the declarations: a hook that prepends another
    // number of rows would silently shift every token after them.
    if (k.dim(2) - keys != declared || v.dim(2) - values != declared || mask.dim(3) - columns != declared)
      throw PluginError("peft",
                        fmt::format("plugin '{}' prepended {} keys, {} values and {} mask columns at site '{}', but "
                                    "declared a prefix of {}",
                                    a.method_name, k.dim(2) - keys, v.dim(2) - values, mask.dim(3) - columns,
                                    site.name, declared),
                        "call AttachContext::declare_prefix(site, length) in attach() with what the hook prepends");
  });
}

void ActiveAdapters::run_input_embeddings(const Node& node, const Site& site, Tensor& x, Tensor& key_mask) const {
  if (node.kind == Node::Kind::stack)
    for (const Node& c : node.children) run_input_embeddings(c, site, x, key_mask);
  if (node.kind != Node::Kind::adapter || !node.adapter->hooks.count(&site)) return;
  each_hook(*node.adapter, site, "input_embeddings",
            [&](AdapterHook& hook) { hook.input_embeddings(site, x, key_mask, Rows{}); });
}

// A group with every row runs on the batch in place; groups with rows of their own
// (disjoint) run on their rows gathered and are written back in one scatter.
Tensor ActiveAdapters::linear(const Site& site, const LinearCall& call, const Rows&) {
  LinearCall step = call;
  RowParts parts;
  for (const Group& g : groups_) {
    if (!acts(g.node, site)) continue;
    if (g.rows.empty()) {
      step.y = run_linear(g.node, site, step);
      continue;
    }
    const LinearCall own{ops::gather_rows(call.x, g.rows), call.weight, call.bias, ops::gather_rows(call.y, g.rows)};
    parts.emplace_back(&g.rows, run_linear(g.node, site, own));
  }
  return scatter_parts(step.y, parts);
}

Tensor ActiveAdapters::sublayer_output(const Site& site, const SublayerCall& call, const Rows&) {
  SublayerCall step = call;
  RowParts parts;
  for (const Group& g : groups_) {
    if (!acts(g.node, site)) continue;
    if (g.rows.empty()) {
      step.h = run_sublayer(g.node, site, step);
      continue;
    }
    const SublayerCall own{ops::gather_rows(call.input, g.rows), ops::gather_rows(call.h, g.rows)};
    parts.emplace_back(&g.rows, run_sublayer(g.node, site, own));
  }
  return scatter_parts(step.h, parts);
}

Tensor ActiveAdapters::norm(const Site& site, const NormCall& call, const Rows&) {
  NormCall step = call;
  RowParts parts;
  for (const Group& g : groups_) {
    if (!acts(g.node, site)) continue;
    if (g.rows.empty()) {
      step.y = run_norm(g.node, site, step);
      continue;
    }
    const NormCall own{ops::gather_rows(call.x, g.rows), call.weight, call.bias, call.eps, ops::gather_rows(call.y, g.rows)};
    parts.emplace_back(&g.rows, run_norm(g.node, site, own));
  }
  return scatter_parts(step.y, parts);
}

// Per row, each adapter prepends its own prefix keys; every row then gets as many
// prefix columns as the longest, its own right before its keys and masked padding in
// front (attention does not depend on the order of keys, only on the mask).
void ActiveAdapters::attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask, const Rows&) {
  struct Part {
    const std::vector<std::int64_t>* rows;
    Tensor k, v, mask;
  };
  std::vector<Part> parts;
  std::int64_t widest = 0;
  const std::int64_t keys = k.dim(2);
  for (const Group& g : groups_) {
    if (!acts(g.node, site)) continue;
    if (g.rows.empty()) {
      run_attention_kv(g.node, site, k, v, mask);
      continue;
    }
    Part p{&g.rows, ops::gather_rows(k, g.rows), ops::gather_rows(v, g.rows), mask_rows(mask, g.rows)};
    run_attention_kv(g.node, site, p.k, p.v, p.mask);
    widest = std::max(widest, p.k.dim(2) - keys);
    parts.push_back(std::move(p));
  }
  if (parts.empty()) return;
  RowParts ks, vs, ms;
  for (Part& p : parts) {
    const std::int64_t pad = widest - (p.k.dim(2) - keys);
    ks.emplace_back(p.rows, pad_front(p.k, 2, pad, 0.f));
    vs.emplace_back(p.rows, pad_front(p.v, 2, pad, 0.f));
    ms.emplace_back(p.rows, pad_front(p.mask, 3, pad, kMaskedScore));
  }
  const Tensor whole_mask = mask.dim(0) == k.dim(0) ? mask : mask_rows(mask, every_row(k.dim(0)));
  k = scatter_parts(pad_front(k, 2, widest, 0.f), ks);
  v = scatter_parts(pad_front(v, 2, widest, 0.f), vs);
  mask = scatter_parts(pad_front(whole_mask, 3, widest, kMaskedScore), ms);
}

// Per row, each adapter prepends its own virtual tokens; every row then has as many
// columns before its real tokens as the longest prompt: its virtual tokens right before
// them and masked padding in front, which positions do not count (leading_padding), so
// the real tokens stay in the same columns and every row reads as it would alone.
void ActiveAdapters::input_embeddings(const Site& site, Tensor& x, Tensor& key_mask, const Rows&) {
  struct Part {
    const std::vector<std::int64_t>* rows;
    Tensor x, mask;
  };
  std::vector<Part> parts;
  std::int64_t widest = 0;
  const std::int64_t tokens = x.dim(1);
  for (const Group& g : groups_) {
    if (!acts(g.node, site)) continue;
    if (g.rows.empty()) {
      run_input_embeddings(g.node, site, x, key_mask);
      continue;
    }
    Part p{&g.rows, ops::gather_rows(x, g.rows), ops::gather_rows(key_mask, g.rows)};
    run_input_embeddings(g.node, site, p.x, p.mask);
    widest = std::max(widest, p.x.dim(1) - tokens);
    parts.push_back(std::move(p));
  }
  if (parts.empty()) return;
  const std::int64_t B = x.dim(0), width = widest + tokens;
  leading_pad_.assign(static_cast<std::size_t>(B), widest);
  std::vector<float> mask(static_cast<std::size_t>(B * width), 0.f);
  const std::vector<float> given = key_mask.to_floats();
  for (std::int64_t b = 0; b < B; ++b) std::copy_n(given.begin() + b * tokens, tokens, mask.begin() + b * width + widest);
  RowParts xs;
  for (Part& p : parts) {
    const std::int64_t pad = widest - (p.x.dim(1) - tokens), length = p.x.dim(1);
    const std::vector<float> own = p.mask.to_floats();
    for (std::size_t i = 0; i < p.rows->size(); ++i) {
      const std::int64_t b = (*p.rows)[i];
      leading_pad_[b] = pad;
      std::fill_n(mask.begin() + b * width, pad, 0.f);
      std::copy_n(own.begin() + static_cast<std::int64_t>(i) * length, length, mask.begin() + b * width + pad);
    }
    xs.emplace_back(p.rows, pad_front(p.x, 1, pad, 0.f));
  }
  x = scatter_parts(pad_front(x, 1, widest, 0.f), xs);
  key_mask = is_floating(key_mask.dtype())
                 ? Tensor::from_floats(mask, {B, width}, key_mask.dtype())
                 : Tensor::from_ints(std::vector<std::int64_t>(mask.begin(), mask.end()), {B, width}, key_mask.dtype());
}

}  // namespace graft
