#include "peft/adapter_set.h"

#include <fmt/format.h>

#include <algorithm>

#include "graft/error.h"
#include "peft/site_select.h"
#include "plugin/plugin_call.h"

namespace graft {
namespace {

class Context : public AttachContext {
 public:
  Context(const std::string& name, const Backbone& backbone, std::uint64_t seed,
          std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>>& hooks,
          const AdapterSet::Tokenize& tokenize)
      : name_(name), backbone_(backbone), seed_(seed), hooks_(hooks), tokenize_(tokenize) {}
  const std::string& adapter_name() const override { return name_; }
  const Backbone& backbone() const override { return backbone_; }
  std::vector<const Site*> select(SiteKind kind, const std::vector<std::string>& patterns,
                                  const std::vector<std::int64_t>& layers) const override {
    return select_sites(backbone_.sites(), kind, patterns, layers, fmt::format("adapter '{}'", name_));
  }
  void register_hook(const Site& site, std::shared_ptr<AdapterHook> hook) override {
    const auto& sites = backbone_.sites();
    if (&site < sites.data() || &site >= sites.data() + sites.size())
      throw Error("peft", fmt::format("adapter '{}' registered a hook on a site that is not this backbone's", name_),
                  "pass the Site references that select() returned");
    hooks_[&site].push_back(std::move(hook));
  }
  std::uint64_t seed() const override { return seed_; }
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
  std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>>& hooks_;
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
  Attached attached{method_name, config_json, std::move(method), {}};
  Context context(name, backbone_, seed, attached.hooks, tokenize_);
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

void AdapterSet::remove(const std::string& name) {
  get(name);
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
    for (const auto& name : selection.names()) view.active_.push_back({&get(name), Rows{}});
  } else if (selection.kind() == Selection::Kind::per_row) {
    const auto& rows = selection.names();
    std::map<std::string, std::vector<float>> masks;  // by name: a stable order across calls
    for (std::size_t b = 0; b < rows.size(); ++b) {
      if (rows[b].empty()) continue;
      get(rows[b]);
      auto& m = masks[rows[b]];
      m.resize(rows.size(), 0.f);
      m[b] = 1.f;
    }
    for (auto& [name, m] : masks)
      view.active_.push_back({&get(name), Rows{Tensor::from_floats(m, {static_cast<std::int64_t>(m.size())})}});
  }
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

Tensor ActiveAdapters::linear(const Site& site, const Tensor& x, const Tensor& y) {
  Tensor out = y;
  for (const Active* a : at(site))
    for (const auto& hook : a->adapter->hooks.at(&site)) {
      try {
        out = hook->linear(site, x, out, a->rows);
      } catch (...) {
        AdapterSet::hook_failed(*a->adapter, "linear", site);
      }
    }
  return out;
}

Tensor ActiveAdapters::sublayer_output(const Site& site, const Tensor& h) {
  Tensor out = h;
  for (const Active* a : at(site))
    for (const auto& hook : a->adapter->hooks.at(&site)) {
      try {
        out = hook->sublayer_output(site, out, a->rows);
      } catch (...) {
        AdapterSet::hook_failed(*a->adapter, "sublayer_output", site);
      }
    }
  return out;
}

void ActiveAdapters::attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask) {
  for (const Active* a : at(site))
    for (const auto& hook : a->adapter->hooks.at(&site)) {
      try {
        hook->attention_kv(site, k, v, mask, a->rows);
      } catch (...) {
        AdapterSet::hook_failed(*a->adapter, "attention_kv", site);
      }
    }
}

std::vector<std::int64_t> ActiveAdapters::prefix_positions(std::int64_t batch) {
  // The first layer's prefix counts, as Hugging Face reads the past length off layer 0.
  const Site* first = nullptr;
  for (const Site& s : set_->backbone_.sites())
    if (s.kind == SiteKind::attention_kv && (!first || s.layer < first->layer)) first = &s;
  std::vector<std::int64_t> offsets;
  if (!first) return offsets;
  for (const Active* a : at(*first))
    for (const auto& hook : a->adapter->hooks.at(first)) {
      std::int64_t n = 0;
      try {
        n = hook->prefix_length(*first);
      } catch (...) {
        AdapterSet::hook_failed(*a->adapter, "prefix_length", *first);
      }
      if (n == 0) continue;
      offsets.resize(static_cast<std::size_t>(batch), 0);
      const std::vector<float> owned = a->rows.all() ? std::vector<float>(batch, 1.f) : a->rows.mask.to_floats();
      for (std::int64_t b = 0; b < batch; ++b)
        if (owned[b] != 0.f) offsets[b] += n;
    }
  return offsets;
}

void ActiveAdapters::input_embeddings(const Site& site, Tensor& x, Tensor& mask) {
  for (const Active* a : at(site))
    for (const auto& hook : a->adapter->hooks.at(&site)) {
      try {
        hook->input_embeddings(site, x, mask, a->rows);
      } catch (...) {
        AdapterSet::hook_failed(*a->adapter, "input_embeddings", site);
      }
    }
}

}  // namespace graft
