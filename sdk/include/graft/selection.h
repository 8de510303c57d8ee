// Which adapters one call runs with. A Selection is a value passed with each call,
// never state kept on a session, so concurrent calls with different selections are
// safe on one shared backbone.
//
// Beside none, one, a stack and one adapter per row, a selection may compose adapters
// with AdapterHub's blocks (docs/composition.md), nested as AdapterHub allows:
//   stack(a, b)            a, then b on a's output, at every site (MAD-X)
//   parallel(a, b)         the batch once through each branch: one output row per input
//                          row and branch, branch-major
//   average(a:0.7, b:0.3)  the weighted average of the branches' outputs at every site
//   fuse(a, b)             AdapterFusion: a trained attention over the outputs of the
//                          bottleneck adapters a and b (a "fusion" adapter over them)
// Selection::parse reads that text; to_string writes it back.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace graft {

class Selection {
 public:
  enum class Kind { none, stack, per_row, parallel, average, fuse };

  // The bare frozen backbone.
  static Selection none() { return Selection(Kind::none, {}); }
  // One adapter for every row.
  static Selection one(std::string name) { return Selection(Kind::stack, {std::move(name)}); }
  // Several adapters for every row, applied in this order at each site.
  static Selection stack(std::vector<std::string> names) { return Selection(Kind::stack, std::move(names)); }
  // One adapter per batch row; "" leaves that row on the bare backbone.
  static Selection per_row(std::vector<std::string> row_adapters) {
    return Selection(Kind::per_row, std::move(row_adapters));
  }
  // A stack of blocks (adapters are one(name)) in order. A stack holds adapters, fuse,
  // parallel and average blocks, not another stack. A ConfigError names a block nested
  // where AdapterHub does not allow it.
  static Selection stack_of(std::vector<Selection> blocks);
  // Each branch (an adapter, a stack or an average) on its own copy of the batch.
  static Selection parallel(std::vector<Selection> branches);
  // Branches (adapters or stacks) averaged at each site with `weights`, normalised to
  // sum to 1 (AdapterHub's default); empty: equal weights.
  static Selection average(std::vector<Selection> branches, std::vector<float> weights = {});
  // The fusion adapter attached over exactly these bottleneck adapters, in this order.
  static Selection fuse(std::vector<std::string> adapters);
  // "a", "a,b" (a stack), "stack(a,b)", "parallel(a,stack(b,c))", "average(a:0.7,b:0.3)",
  // "fuse(a,b)"; block names are case-insensitive (AdapterHub's Stack, Parallel, ...).
  // A ConfigError points at the column of what it cannot read.
  static Selection parse(const std::string& text);

  Selection() = default;  // none
  Kind kind() const { return kind_; }
  // stack, parallel, average: every adapter it names, in application order; fuse: the
  // fused adapters; per_row: one name (or "") per row.
  const std::vector<std::string>& names() const { return names_; }
  // parallel and average: the branches; a stack of blocks: its blocks; otherwise empty
  // (a stack of adapters is names()).
  const std::vector<Selection>& blocks() const { return blocks_; }
  // average: one per branch, summing to 1.
  const std::vector<float>& weights() const { return weights_; }
  bool empty() const { return kind_ == Kind::none || names_.empty(); }
  // True when a parallel block appears anywhere.
  bool has_parallel() const;
  // What each copy of the batch runs: with a parallel block (one at most), one selection
  // per branch, the block replaced by that branch (stack(a, parallel(b, c)) gives
  // stack(a, b) and stack(a, c)); otherwise just this selection.
  std::vector<Selection> branches() const;
  // The text parse() reads back.
  std::string to_string() const;

 private:
  Selection(Kind kind, std::vector<std::string> names) : kind_(kind), names_(std::move(names)) {}
  Kind kind_ = Kind::none;
  std::vector<std::string> names_;
  std::vector<Selection> blocks_;
  std::vector<float> weights_;
};

}  // namespace graft
