#include "peft/adapter_set.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "graft/autograd.h"
#include "graft/error.h"
#include "graft/ops.h"
#include "peft/site_select.h"
#include "plugin/plugin_call.h"

namespace graft {
namespace {

class Context : public AttachContext {
 public:
  using Hooks = std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>>;
  using Prefixes = std::unordered_map<const Site*, std::int64_t>;
  Context(const std::string& name, const Backbone& backbone, std::uint64_t seed, Hooks& hooks, Prefixes& prefixes,
          const AdapterSet::Tokenize& tokenize)
      : name_(name), backbone_(backbone), seed_(seed), hooks_(hooks), prefixes_(prefixes), tokenize_(tokenize) {}
  const std::string& adapter_name() const override { return name_; }
  const Backbone& backbone() const override { return backbone_; }
  std::vector<const Site*> select(SiteKind kind, const std::vector<std::string>& patterns,
                                  const std::vector<std::int64_t>& layers) const override {
    return select_sites(backbone_.sites(), kind, patterns, layers, fmt::format("adapter '{}'", name_));
  }
  void register_hook(const Site& site, std::shared_ptr<AdapterHook> hook) override {
    check_site(site, "registered a hook on");
    hooks_[&site].push_back(std::move(hook));
  }
  void declare_prefix(const Site& site, std::int64_t length) override {
    check_site(site, "declared a prefix at");
    if (site.kind != SiteKind::attention_kv || length < 0)
      throw Error("peft", fmt::format("adapter '{}' declared a prefix of {} rows at {} site '{}'", name_, length,
                                      site_kind_name(site.kind), site.name),
                  "declare a length of 0 or more at attention_kv sites only");
    prefixes_[&site] = length;
  }
  std::uint64_t seed() const override { return seed_; }
  void check_site(const Site& site, const char* what) const {
    const auto& sites = backbone_.sites();
    if (&site < sites.data() || &site >= sites.data() + sites.size())
      throw Error("peft", fmt::format("adapter '{}' {} a site that is not this backbone's", name_, what),
                  "pass the Site references that select() returned");
  }
  std::vector<std::int64_t> tokenize(const std::string& text) const override {
    if (!tokenize_)
      throw ConfigError("peft", fmt::format("adapter '{}' needs to tokenise text, but no tokenizer was given for this backbone", name_),
                        "load the backbone from a folder with its tokenizer files");
    return tokenize_(text);
  }

 private:
  const std::string& name_;
  const Backbone& backbone_;
  std::uint64_t seed_;
  Hooks& hooks_;
  Prefixes& prefixes_;
  const AdapterSet::Tokenize& tokenize_;
};

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

}  // namespace

void AdapterSet::hook_failed(const Attached& adapter, const char* hook, const Site& site) {
  plugin::rethrow_from_plugin(adapter.method_name, fmt::format("its {} hook at site '{}'", hook, site.name));
}

void AdapterSet::add(const std::string& name, const std::string& method_name, std::shared_ptr<PeftMethod> method,
                     const std::string& config_json, std::uint64_t seed) {
  if (name.empty()) throw ConfigError("peft", "an adapter needs a name");
  if (contains(name))
    throw ConfigError("peft", fmt::format("an adapter named '{}' is already attached", name), "choose another --name");
  Attached attached{method_name, config_json, std::move(method), {}, {}, {}};
  Context context(name, backbone_, seed, attached.hooks, attached.prefixes, tokenize_);
  try {
    attached.method->attach(context);
  } catch (const ConfigError& e) {
    // A host-made copy: the plugin's exception object must not outlive its code.
    throw ConfigError(e.component(), e.message(), e.hint());
  } catch (const std::exception& e) {
    throw PluginError("peft", fmt::format("attaching adapter '{}' (method '{}') failed: {}", name, method_name, e.what()),
                      "the method's attach() threw; the backbone is unchanged");
  } catch (...) {
    throw PluginError("peft",
                      fmt::format("attaching adapter '{}' (method '{}') failed: plugin '{}' threw an exception that is not a "
                                  "std::exception in its attach()",
                                  name, method_name, method_name),
                      "a plugin must throw graft::Error or std::exception (docs/plugin-guide.md, ABI rules); the backbone "
                      "is unchanged");
  }
  adapters_.emplace(name, std::move(attached));
}

AdapterSet::~AdapterSet() {
  for (auto& [name, a] : adapters_) unmerge(name);
}

void AdapterSet::remove(const std::string& name) {
  unmerge(name);
  adapters_.erase(name);
}

const AdapterSet::Attached& AdapterSet::get(const std::string& name) const {
  auto it = adapters_.find(name);
  if (it == adapters_.end())
    throw ConfigError("peft", fmt::format("no adapter named '{}' is attached", name),
                      fmt::format("attached: {}", fmt::join(names(), ", ")));
  return it->second;
}

PeftMethod& AdapterSet::method(const std::string& name) const { return *get(name).method; }
std::string AdapterSet::describe(const std::string& name) const {
  const Attached& a = get(name);
  return plugin::call_plugin(a.method_name, "its describe()", [&] { return a.method->describe(); });
}
const std::string& AdapterSet::method_name(const std::string& name) const { return get(name).method_name; }
const std::string& AdapterSet::method_config_json(const std::string& name) const { return get(name).config_json; }

std::vector<std::string> AdapterSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, a] : adapters_) out.push_back(name);
  return out;
}

ActiveAdapters AdapterSet::bind(const Selection& selection) const {
  ActiveAdapters view(*this);
  if (selection.kind() == Selection::Kind::stack) {
    for (const auto& name : selection.names()) view.active_.push_back({&get(name), {}});
  } else if (selection.kind() == Selection::Kind::per_row) {
    const auto& rows = selection.names();
    view.batch_ = static_cast<std::int64_t>(rows.size());
    std::map<std::string, std::vector<std::int64_t>> groups;  // by name: a stable order across calls
    for (std::size_t b = 0; b < rows.size(); ++b)
      if (!rows[b].empty()) groups[rows[b]].push_back(static_cast<std::int64_t>(b));
    for (auto& [name, own] : groups) {
      if (own.size() == rows.size()) own.clear();  // one adapter for the whole batch: no gather
      view.active_.push_back({&get(name), std::move(own)});
    }
  }
  view.offset_prefixes();
  return view;
}

std::vector<nn::NamedParameter> AdapterSet::parameters(const Selection& selection) const {
  std::vector<nn::NamedParameter> out;
  std::vector<std::string> seen;
  for (const auto& name : selection.names()) {
    if (name.empty() || std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
    seen.push_back(name);
    const Attached& a = get(name);
    for (auto& p : plugin::call_plugin(a.method_name, "its parameters()", [&] { return a.method->parameters(); }))
      out.push_back({name + "." + p.name, p.tensor});
  }
  return out;
}

std::vector<const ActiveAdapters::Active*> ActiveAdapters::at(const Site& site) const {
  std::vector<const Active*> out;
  for (const Active& a : active_)
    if (a.adapter->hooks.count(&site)) out.push_back(&a);
  return out;
}

void AdapterSet::merge(const std::string& name) {
  get(name);  // a ConfigError naming what is attached
  Attached& a = adapters_.at(name);
  if (!a.merged.empty()) return;
  std::map<std::string, Tensor> weights;
  for (const auto& p : backbone_.parameters()) weights[p.name] = p.tensor;
  std::vector<std::pair<const Site*, Tensor>> deltas;
  for (const Site& site : backbone_.sites()) {  // the backbone's order: stable messages
    if (site.kind != SiteKind::linear || !a.hooks.count(&site)) continue;
    Tensor delta = plugin::call_plugin(a.method_name, fmt::format("its delta_weight() at site '{}'", site.name), [&] {
      NoGradGuard no_grad;
      return a.method->delta_weight(site);
    });
    if (!delta.defined()) continue;
    const std::string weight_name = site.checkpoint_module + ".weight";
    auto it = weights.find(weight_name);
    if (it == weights.end())
      throw ConfigError("peft", fmt::format("cannot merge adapter '{}': the backbone has no weight '{}' for site {}", name,
                                            weight_name, site.name),
                        "run the adapter unmerged");
    const Tensor& w = it->second;
    if (w.dtype() != DType::f32)
      throw ShapeError("peft", fmt::format("cannot merge adapter '{}' into {} weight '{}': merging is done in f32", name,
                                           dtype_name(w.dtype()), weight_name),
                       "load the backbone in f32 (--dtype f32) to merge, or run the adapter unmerged");
    const Shape shape{site.out_features, site.in_features};
    if (w.shape() != shape || delta.shape() != shape || delta.dtype() != DType::f32)
      throw ShapeError("peft", fmt::format("cannot merge adapter '{}' at {}: weight {} and delta {} ({}) must both be f32 {}",
                                           name, site.name, shape_str(w.shape()), shape_str(delta.shape()),
                                           dtype_name(delta.dtype()), shape_str(shape)));
    for (const auto& [other, b] : adapters_)
      if (&b != &a && b.merged.count(&site))
        throw ConfigError("peft", fmt::format("cannot merge adapter '{}': adapter '{}' is merged into {} already", name, other,
                                              weight_name),
                          fmt::format("unmerge '{}' first", other));
    deltas.emplace_back(&site, delta);
  }
  if (deltas.empty())
    throw ConfigError("peft", fmt::format("adapter '{}' (method '{}') cannot be merged: its method gives no weight delta at "
                                          "any of its sites", name, a.method_name),
                      "run it unmerged; only methods with delta_weight (LoRA, DoRA) merge");
  for (auto& [site, delta] : deltas) {
    const Tensor& w = weights.at(site->checkpoint_module + ".weight");
    Attached::Merged m{w, w.clone()};
    float* dst = w.data<float>();
    const float* d = delta.data<float>();
    for (std::int64_t i = 0, n = w.numel(); i < n; ++i) dst[i] += d[i];
    a.merged.emplace(site, std::move(m));
  }
}

void AdapterSet::unmerge(const std::string& name) {
  get(name);  // a ConfigError naming what is attached
  Attached& a = adapters_.at(name);
  // The saved bits, not W − Δ: unmerging must not drift the shared weights by rounding.
  for (auto& [site, m] : a.merged) std::memcpy(m.weight.raw(), m.original.raw(), m.original.nbytes());
  a.merged.clear();
}

// The first layer's prefixes count, as Hugging Face reads the past length off layer 0.
void ActiveAdapters::offset_prefixes() {
  const Site* first = nullptr;
  for (const Site& s : set_->backbone_.sites())
    if (s.kind == SiteKind::attention_kv && (!first || s.layer < first->layer)) first = &s;
  if (!first) return;
  for (const Active& a : active_) {
    auto it = a.adapter->prefixes.find(first);
    if (it == a.adapter->prefixes.end() || it->second == 0) continue;
    if (a.rows.empty()) {
      prefix_all_ += it->second;
      continue;
    }
    for (std::int64_t b : a.rows) {
      if (static_cast<std::int64_t>(prefix_rows_.size()) <= b) prefix_rows_.resize(static_cast<std::size_t>(b) + 1, 0);
      prefix_rows_[b] += it->second;
    }
  }
  if (!prefix_rows_.empty()) prefix_rows_.resize(static_cast<std::size_t>(batch_), 0);
}

template <class Call>
void ActiveAdapters::each_hook(const Active& a, const Site& site, const char* kind, Call&& call) const {
  for (const auto& hook : a.adapter->hooks.at(&site)) {
    try {
      call(*hook);
    } catch (...) {
      AdapterSet::hook_failed(*a.adapter, kind, site);
    }
  }
}

Tensor ActiveAdapters::run_linear(const Active& a, const Site& site, LinearCall call) const {
  each_hook(a, site, "linear", [&](AdapterHook& hook) { call.y = hook.linear(site, call, Rows{}); });
  return call.y;
}

Tensor ActiveAdapters::run_sublayer(const Active& a, const Site& site, SublayerCall call) const {
  each_hook(a, site, "sublayer_output", [&](AdapterHook& hook) { call.h = hook.sublayer_output(site, call, Rows{}); });
  return call.h;
}

void ActiveAdapters::run_attention_kv(const Active& a, const Site& site, Tensor& k, Tensor& v, Tensor& mask) const {
  auto it = a.adapter->prefixes.find(&site);
  const std::int64_t declared = it == a.adapter->prefixes.end() ? 0 : it->second;
  each_hook(a, site, "attention_kv", [&](AdapterHook& hook) {
    const std::int64_t keys = k.dim(2), values = v.dim(2), columns = mask.dim(3);
    hook.attention_kv(site, k, v, mask, Rows{});
    // Positions were numbered from the declarations: a hook that prepends another
    // number of rows would silently shift every token after them.
    if (k.dim(2) - keys != declared || v.dim(2) - values != declared || mask.dim(3) - columns != declared)
      throw PluginError("peft",
                        fmt::format("plugin '{}' prepended {} keys, {} values and {} mask columns at site '{}', but "
                                    "declared a prefix of {}",
                                    a.adapter->method_name, k.dim(2) - keys, v.dim(2) - values, mask.dim(3) - columns,
                                    site.name, declared),
                        "call AttachContext::declare_prefix(site, length) in attach() with what the hook prepends");
  });
}

void ActiveAdapters::run_input_embeddings(const Active& a, const Site& site, Tensor& x, Tensor& key_mask) const {
  each_hook(a, site, "input_embeddings", [&](AdapterHook& hook) { hook.input_embeddings(site, x, key_mask, Rows{}); });
}

// A stack has one adapter with every row at a time; a per-row selection has adapters
// with disjoint rows, each run on its rows gathered and written back in one scatter.
Tensor ActiveAdapters::linear(const Site& site, const LinearCall& call, const Rows&) {
  LinearCall step = call;
  RowParts parts;
  for (const Active* a : at(site)) {
    if (a->adapter->merged.count(&site)) continue;  // its delta is in the weight already
    if (a->rows.empty()) {
      step.y = run_linear(*a, site, step);
      continue;
    }
    const LinearCall own{ops::gather_rows(call.x, a->rows), call.weight, call.bias, ops::gather_rows(call.y, a->rows)};
    parts.emplace_back(&a->rows, run_linear(*a, site, own));
  }
  return scatter_parts(step.y, parts);
}

Tensor ActiveAdapters::sublayer_output(const Site& site, const SublayerCall& call, const Rows&) {
  SublayerCall step = call;
  RowParts parts;
  for (const Active* a : at(site)) {
    if (a->rows.empty()) {
      step.h = run_sublayer(*a, site, step);
      continue;
    }
    const SublayerCall own{ops::gather_rows(call.input, a->rows), ops::gather_rows(call.h, a->rows)};
    parts.emplace_back(&a->rows, run_sublayer(*a, site, own));
  }
  return scatter_parts(step.h, parts);
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
  for (const Active* a : at(site)) {
    if (a->rows.empty()) {
      run_attention_kv(*a, site, k, v, mask);
      continue;
    }
    Part p{&a->rows, ops::gather_rows(k, a->rows), ops::gather_rows(v, a->rows), mask_rows(mask, a->rows)};
    run_attention_kv(*a, site, p.k, p.v, p.mask);
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
  for (const Active* a : at(site)) {
    if (a->rows.empty()) {
      run_input_embeddings(*a, site, x, key_mask);
      continue;
    }
    Part p{&a->rows, ops::gather_rows(x, a->rows), ops::gather_rows(key_mask, a->rows)};
    run_input_embeddings(*a, site, p.x, p.mask);
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
