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

std::vector<const Site*> AdapterSet::hook_sites(const std::string& name, SiteKind kind) const {
  const Attached& a = get(name);
  std::vector<const Site*> out;
  for (const Site& site : backbone_.sites())
    if (site.kind == kind && a.hooks.count(&site)) out.push_back(&site);
  return out;
}

namespace {

// Why a site of this kind folds into no weight, for the message refusing a complete merge.
const char* why_not_foldable(SiteKind kind) {
  switch (kind) {
    case SiteKind::attention_kv: return "it prepends learned key/value rows to attention (prefix tuning), which no weight can hold";
    case SiteKind::input_embeddings: return "it prepends virtual token embeddings to the input (prompt tuning), which no weight can hold";
    case SiteKind::sublayer_output:
      return "it transforms a sublayer's output with a module of its own (a bottleneck with its nonlinearity, or a fusion "
             "of adapters), which no weight can hold";
    case SiteKind::head: return "it changes the task head, which is not a backbone weight";
    case SiteKind::norm: return "it trains layer norms of its own, which merge does not fold into the backbone's";
    case SiteKind::linear: return "its method gives no weight delta (delta_weight) at a linear site";
  }
  return "";
}

std::string some_sites(const std::vector<const Site*>& sites) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < sites.size() && i < 3; ++i) names.push_back(sites[i]->name);
  return fmt::format("{}{}", fmt::join(names, ", "), sites.size() > 3 ? fmt::format(" and {} more", sites.size() - 3) : "");
}

}  // namespace

void AdapterSet::merge(const std::string& name, bool completely) {
  get(name);  // a ConfigError naming what is attached
  Attached& a = adapters_.at(name);
  if (!a.merged.empty()) return;
  std::map<std::string, Tensor> weights;
  for (const auto& p : backbone_.parameters()) weights[p.name] = p.tensor;
  struct Fold {
    const Site* site;
    Tensor delta, bias;  // bias: the folded bias, undefined when the site's stays as it is
  };
  std::vector<Fold> folds;
  std::vector<const Site*> unfolded;  // sites the adapter acts on that do not fold
  auto refuse_unfolded = [&] {
    const SiteKind kind = unfolded.front()->kind;
    throw ConfigError("peft",
                      fmt::format("adapter '{}' (method '{}') cannot be folded into the backbone's weights: at {} site{} {} {}",
                                  name, a.method_name, site_kind_name(kind), unfolded.size() > 1 ? "s" : "",
                                  some_sites(unfolded), why_not_foldable(kind)),
                      "only methods whose every change is a weight delta (LoRA, DoRA, (IA)³) fold; load the adapter "
                      "with the backbone instead (graft --adapter, or Hugging Face PEFT)");
  };
  for (const Site& site : backbone_.sites()) {  // the backbone's order: stable messages
    if (!a.hooks.count(&site)) continue;
    if (site.kind != SiteKind::linear) {
      unfolded.push_back(&site);
      continue;
    }
    Tensor delta = plugin::call_plugin(a.method_name, fmt::format("its delta_weight() at site '{}'", site.name), [&] {
      NoGradGuard no_grad;
      return a.method->delta_weight(site);
    });
    if (!delta.defined()) {
      unfolded.push_back(&site);
      continue;
    }
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
    Fold fold{&site, delta, {}};
    // The bias the hooks make at x = 0 (see merge's contract); kept only when it changed.
    if (auto bias = weights.find(site.checkpoint_module + ".bias"); bias != weights.end()) {
      const Tensor& b = bias->second;
      Tensor folded;
      {
        NoGradGuard no_grad;
        LinearCall call{Tensor::zeros({1, 1, site.in_features}), w, b, ops::reshape(b.clone(), {1, 1, site.out_features})};
        for (const auto& hook : a.hooks.at(&site)) {
          try {
            call.y = hook->linear(site, call, Rows{});
          } catch (...) {
            hook_failed(a, "linear", site);
          }
        }
        folded = ops::reshape(call.y, {site.out_features});
      }
      if (folded.dtype() != b.dtype() || folded.shape() != b.shape())
        throw ShapeError("peft", fmt::format("cannot merge adapter '{}' at {}: its hooks turned bias {} into {} {}", name,
                                             site.name, shape_str(b.shape()), dtype_name(folded.dtype()), shape_str(folded.shape())));
      if (std::memcmp(folded.raw(), b.raw(), b.nbytes()) != 0) fold.bias = folded.clone();
    }
    folds.push_back(std::move(fold));
  }
  if (folds.empty() && (unfolded.empty() || !completely))
    throw ConfigError("peft", fmt::format("adapter '{}' (method '{}') cannot be merged: its method gives no weight delta at "
                                          "any of its sites", name, a.method_name),
                      "run it unmerged; only methods with delta_weight (LoRA, DoRA, (IA)³) merge");
  if (completely && !unfolded.empty()) refuse_unfolded();
  for (auto& f : folds) {
    const Tensor& w = weights.at(f.site->checkpoint_module + ".weight");
    Attached::Merged m{w, w.clone(), {}, {}};
    float* dst = w.data<float>();
    const float* d = f.delta.data<float>();
    for (std::int64_t i = 0, n = w.numel(); i < n; ++i) dst[i] += d[i];
    if (f.bias.defined()) {
      const Tensor& b = weights.at(f.site->checkpoint_module + ".bias");
      m.bias = b;
      m.bias_original = b.clone();
      std::memcpy(b.raw(), f.bias.raw(), b.nbytes());
    }
    a.merged.emplace(f.site, std::move(m));
  }
}

void AdapterSet::unmerge(const std::string& name) {
  get(name);  // a ConfigError naming what is attached
  Attached& a = adapters_.at(name);
  // The saved bits, not W − Δ: unmerging must not drift the shared weights by rounding.
  for (auto& [site, m] : a.merged) {
    std::memcpy(m.weight.raw(), m.original.raw(), m.original.nbytes());
    if (m.bias.defined()) std::memcpy(m.bias.raw(), m.bias_original.raw(), m.bias_original.nbytes());
  }
  a.merged.clear();
}

}  // namespace graft
