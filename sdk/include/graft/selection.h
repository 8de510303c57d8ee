// Which adapters one call runs with. A Selection is a value passed with each call,
// never state kept on a session, so concurrent calls with different selections are
// safe on one shared backbone.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace graft {

class Selection {
 public:
  enum class Kind { none, stack, per_row };

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

  Selection() = default;  // none
  Kind kind() const { return kind_; }
  // stack: the adapters in application order; per_row: one name (or "") per row.
  const std::vector<std::string>& names() const { return names_; }
  bool empty() const { return kind_ == Kind::none || names_.empty(); }

 private:
  Selection(Kind kind, std::vector<std::string> names) : kind_(kind), names_(std::move(names)) {}
  Kind kind_ = Kind::none;
  std::vector<std::string> names_;
};

}  // namespace graft
