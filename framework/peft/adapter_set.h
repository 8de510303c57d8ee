// The host side of PEFT: adapters attached to one frozen backbone under their names.
// A forward pass runs with an ActiveAdapters view bound from a Selection for that call
// (none, one, a stack in order, one adapter per row); the set itself keeps no
// selection, so concurrent calls with different selections share it safely.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/peft.h"
#include "graft/selection.h"

namespace graft {

class ActiveAdapters;

class AdapterSet {
 public:
  explicit AdapterSet(const Backbone& backbone) : backbone_(backbone) {}

  // How attach() tokenises text for a method (prompt tuning's TEXT init): the backbone's
  // tokenizer, special tokens included. Unset: methods that ask get a ConfigError.
  using Tokenize = std::function<std::vector<std::int64_t>(const std::string&)>;
  void set_tokenizer(Tokenize tokenize) { tokenize_ = std::move(tokenize); }

  // Attaches `method` under `name`. If attach throws, nothing of it stays registered
  // and the error names the adapter and the method.
  // `config_json` is the validated config the method was created with (it is saved
  // with the adapter).
  void add(const std::string& name, const std::string& method_name, std::shared_ptr<PeftMethod> method,
           const std::string& config_json, std::uint64_t seed);
  void remove(const std::string& name);
  bool contains(const std::string& name) const { return adapters_.count(name) > 0; }
  PeftMethod& method(const std::string& name) const;
  // method(name).describe(), with what the plugin throws reported as a graft::Error.
  std::string describe(const std::string& name) const;
  const std::string& method_name(const std::string& name) const;
  const std::string& method_config_json(const std::string& name) const;
  std::vector<std::string> names() const;

  // The hooks of `selection` for one forward pass. Every name must be attached; a
  // per-row selection must have one entry per batch row. The view refers to this set:
  // it must not outlive it, and adapters must not be removed while it is in use.
  ActiveAdapters bind(const Selection& selection) const;
  // The trainable parameters of the adapters `selection` names, as "<adapter>.<name>".
  std::vector<nn::NamedParameter> parameters(const Selection& selection) const;

 private:
  friend class ActiveAdapters;
  struct Attached {
    std::string method_name;
    std::string config_json;
    // Declared before `hooks`, so destroyed after them: hooks are objects of the
    // plugin's code, which the method's deleter keeps loaded.
    std::shared_ptr<PeftMethod> method;
    std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>> hooks;
  };
  const Attached& get(const std::string& name) const;
  // Inside a catch (...) around a hook: the host-made error naming the plugin and hook.
  [[noreturn]] static void hook_failed(const Attached& adapter, const char* hook, const Site& site);

  const Backbone& backbone_;
  Tokenize tokenize_;
  std::map<std::string, Attached> adapters_;
};

// One call's adapters: SiteHooks that dispatch, at each site, to the hooks of the
// selected adapters in order, each on the rows it owns. Cheap to build; read-only on
// the set, so one per concurrent call.
class ActiveAdapters : public SiteHooks {
 public:
  Tensor linear(const Site& site, const Tensor& x, const Tensor& y) override;
  Tensor sublayer_output(const Site& site, const Tensor& h) override;
  void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask) override;
  void input_embeddings(const Site& site, Tensor& x, Tensor& mask) override;
  std::vector<std::int64_t> prefix_positions(std::int64_t batch) override;
  bool empty() const { return active_.empty(); }

 private:
  friend class AdapterSet;
  struct Active {
    const AdapterSet::Attached* adapter;
    Rows rows;
  };
  ActiveAdapters(const AdapterSet& set) : set_(&set) {}
  std::vector<const Active*> at(const Site& site) const;
  const AdapterSet* set_;
  std::vector<Active> active_;  // in application order
};

}  // namespace graft
