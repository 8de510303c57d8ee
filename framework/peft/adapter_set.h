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
#include <unordered_set>
#include <vector>

#include "graft/peft.h"
#include "graft/selection.h"

namespace graft {

class ActiveAdapters;

class AdapterSet {
 public:
  explicit AdapterSet(const Backbone& backbone) : backbone_(backbone) {}
  // Unmerges what is merged: the shared backbone outlives the set unchanged.
  ~AdapterSet();
  AdapterSet(const AdapterSet&) = delete;
  AdapterSet& operator=(const AdapterSet&) = delete;

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
  // Unmerges the adapter first if it is merged.
  void remove(const std::string& name);
  bool contains(const std::string& name) const { return adapters_.count(name) > 0; }
  PeftMethod& method(const std::string& name) const;
  // method(name).describe(), with what the plugin throws reported as a graft::Error.
  std::string describe(const std::string& name) const;
  const std::string& method_name(const std::string& name) const;
  const std::string& method_config_json(const std::string& name) const;
  std::vector<std::string> names() const;

  // The hooks of `selection` for one forward pass. Every name must be attached; a
  // per-row selection must have one entry per batch row; with a parallel block the
  // batch holds `rows` input rows once per branch, branch-major. A block given an
  // adapter it does not accept is a ConfigError naming both. The view refers to this
  // set: it must not outlive it, and adapters must not be removed while it is in use.
  ActiveAdapters bind(const Selection& selection, std::int64_t rows = 0) const;
  // The sites where adapter `name` has hooks of `kind`, in the backbone's order.
  std::vector<const Site*> hook_sites(const std::string& name, SiteKind kind) const;
  // The trainable parameters of the adapters `selection` names, as "<adapter>.<name>".
  std::vector<nn::NamedParameter> parameters(const Selection& selection) const;

  // Folds adapter `name` into the frozen weights for zero-overhead inference: at every
  // linear site where its method gives a delta_weight, W += Δ (in f32), and its hook
  // there stops running. Where the site has a bias, the bias becomes what the site's
  // hooks make of it at x = 0 (a merge promises (W + Δ) x + b' equals the hooks'
  // result, so b' is their value at x = 0: b itself for LoRA and DoRA, l ⊙ b for an
  // (IA)³ output scaling, as PEFT's IA3 merge scales the bias). Every forward pass then
  // carries it whatever the selection; merging is for serving one adapter. Checked
  // before any weight changes; a second merge is a no-op. Not while forward passes run:
  // it writes the shared backbone.
  // `completely`: refused (naming the method, the sites and why) unless every site the
  // adapter acts on folds, so that the merged weights alone compute what the adapter
  // does: what exporting a merged checkpoint needs. Without it, sites that do not fold
  // (no delta there, or not a linear site) keep running their hooks.
  void merge(const std::string& name, bool completely = false);
  // Restores the exact bits the merged weights (and biases) had; a no-op when not merged.
  void unmerge(const std::string& name);
  bool merged(const std::string& name) const { return !get(name).merged.empty(); }

 private:
  friend class ActiveAdapters;
  struct Attached {
    std::string method_name;
    std::string config_json;
    // Declared before `hooks`, so destroyed after them: hooks are objects of the
    // plugin's code, which the method's deleter keeps loaded.
    std::shared_ptr<PeftMethod> method;
    std::unordered_map<const Site*, std::vector<std::shared_ptr<AdapterHook>>> hooks;
    std::unordered_map<const Site*, std::int64_t> prefixes;  // declared attention_kv lengths
    // While merged: each merged site's weight and its bits before the merge, and its
    // bias with its bits when the merge changed it.
    struct Merged {
      Tensor weight, original;
      Tensor bias, bias_original;
    };
    std::unordered_map<const Site*, Merged> merged;
  };
  const Attached& get(const std::string& name) const;
  // Inside a catch (...) around a hook: the host-made error naming the plugin and hook.
  [[noreturn]] static void hook_failed(const Attached& adapter, const char* hook, const Site& site);

  const Backbone& backbone_;
  Tokenize tokenize_;
  std::map<std::string, Attached> adapters_;
};

// One call's adapters: hooks that dispatch, at each site, to the hooks of the selected
// adapters as the selection composes them, and the prefix offsets that selection
// implies. A stack runs its blocks in order on the whole batch; an average weighs its
// branches' outputs; a fuse block runs the fused adapters and its fusion's attention
// over what they add (plugin/fusion.h). A per-row selection (and a parallel block, on
// the batch copied once per branch) runs the frozen computation once for the whole
// batch and each group of rows through its own adapters only: the rows are gathered
// into a smaller batch, passed through the hooks, and scattered back (as Punica and
// S-LoRA gather LoRA weights per row), so a batch mixing 64 adapters costs one pass of
// each adapter over its rows, not 64 passes over the batch. Rows that gain a different
// number of prefix keys or virtual tokens are aligned with masked padding in front, so
// every row's result is what it would be alone. Cheap to build; read-only on the set,
// so one per concurrent call. The backbone calls it with every row (Rows{}).
class ActiveAdapters : public ForwardHooks {
 public:
  Tensor linear(const Site& site, const LinearCall& call, const Rows& rows) override;
  Tensor sublayer_output(const Site& site, const SublayerCall& call, const Rows& rows) override;
  void attention_kv(const Site& site, Tensor& k, Tensor& v, Tensor& mask, const Rows& rows) override;
  void input_embeddings(const Site& site, Tensor& x, Tensor& key_mask, const Rows& rows) override;
  Tensor norm(const Site& site, const NormCall& call, const Rows& rows) override;
  bool empty() const { return groups_.empty(); }

 private:
  friend class AdapterSet;
  // One block of the selection, resolved against the set.
  struct Node {
    enum class Kind { adapter, stack, average, fuse } kind = Kind::adapter;
    const AdapterSet::Attached* adapter = nullptr;  // adapter: it; fuse: the fusion adapter
    std::string name;                               // adapter: its name; fuse: the fusion's
    std::vector<Node> children;                     // stack, average: the blocks; fuse: the fused adapters
    std::vector<float> weights;                     // average: one per child, summing to 1
  };
  // A node and the batch rows it runs on (ascending; empty: every row).
  struct Group {
    Node node;
    std::vector<std::int64_t> rows;
  };
  ActiveAdapters(const AdapterSet& set) : set_(&set) {}
  // `selection` (no per-row, no parallel) as a node, with each block's adapters checked
  // against what the block accepts.
  Node resolve(const Selection& selection) const;
  Node resolve_fuse(const Selection& selection) const;
  bool acts(const Node& node, const Site& site) const;
  // `call(hook)` for each of `adapter`'s hooks at `site` in order; what a hook throws is
  // reported naming the plugin, the hook `kind` and the site.
  template <class Call>
  void each_hook(const AdapterSet::Attached& adapter, const Site& site, const char* kind, Call&& call) const;
  // A node at `site` on one batch (the whole one, or its group's rows gathered).
  Tensor run_linear(const Node& node, const Site& site, LinearCall call) const;
  Tensor run_sublayer(const Node& node, const Site& site, SublayerCall call) const;
  Tensor run_norm(const Node& node, const Site& site, NormCall call) const;
  void run_attention_kv(const Node& node, const Site& site, Tensor& k, Tensor& v, Tensor& mask) const;
  void run_input_embeddings(const Node& node, const Site& site, Tensor& x, Tensor& key_mask) const;
  void offset_prefixes();
  const AdapterSet* set_;
  std::vector<Group> groups_;  // in application order, disjoint rows
  std::int64_t batch_ = 0;     // per-row and parallel: the batch the selection implies
};

}  // namespace graft
