// The host side of PEFT: adapters attached to one frozen backbone under their names,
// and the active selection a forward pass runs with — none (the bare backbone), one
// adapter for the whole batch, a stack applied in order, or one adapter per row.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "graft/peft.h"

namespace graft {

class AdapterSet : public SiteHooks {
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

  void select_none() { selection_ = {}; per_row_.clear(); }
  void select(const std::string& name) { select_stack({name}); }
  void select_stack(const std::vector<std::string>& names);
  // One adapter name per batch row; "" leaves that row on the bare backbone.
  void select_per_row(const std::vector<std::string>& row_adapters);
  const std::vector<std::string>& selection() const { return selection_; }

  // The trainable parameters of the selected adapters.
  std::vector<nn::NamedParameter> parameters() const;

  // SiteHooks: dispatch to the hooks of the selected adapters at each site.
  Tensor linear(const Site& site, const Tensor& x, const Tensor& y) override;
  Tensor sublayer_output(const Site& site, const Tensor& h) override;
  void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask) override;
  void input_embeddings(const Site& site, Tensor& x, Tensor& mask) override;
  std::vector<std::int64_t> prefix_positions(std::int64_t batch) override;

 private:
  struct Attached {
    std::string method_name;
    std::string config_json;
    // Declared before `hooks`, so destroyed after them: hooks are objects of the
    // plugin's code, which the method's deleter keeps loaded.
    std::shared_ptr<PeftMethod> method;
    std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>> hooks;
  };
  struct Active {
    const Attached* adapter;
    Rows rows;
  };
  std::vector<Active> active_at(const Site& site) const;
  const Attached& get(const std::string& name) const;
  // Inside a catch (...) around a hook: the host-made error naming the plugin and hook.
  [[noreturn]] static void hook_failed(const Attached& adapter, const char* hook, const Site& site);

  const Backbone& backbone_;
  Tokenize tokenize_;
  std::map<std::string, Attached> adapters_;
  std::vector<std::string> selection_;        // in application order
  std::map<std::string, Tensor> per_row_;     // adapter -> row mask, when selecting per row
};

}  // namespace graft
