// Internal: primitives and their descriptors, built once per (role, shapes, dtypes)
// and reused for every later call. No primitive is created per step.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace graft::ops {

struct CachedPrimitive {
  dnnl::primitive primitive;
  std::shared_ptr<void> descriptor;  // the typed primitive_desc, kept as a hint
  dnnl::memory::desc scratchpad;     // what one execution needs (user-managed scratchpad)
  template <class PD> const PD& pd() const { return *static_cast<const PD*>(descriptor.get()); }
  // Runs on this thread's stream with this thread's scratchpad. oneDNN's own (library)
  // scratchpad is one global buffer unless built with concurrent execution, so two
  // threads running primitives at once would share it: every primitive is made with
  // scratchpad_mode::user (primitive_attr() below) and given a thread-local one here.
  void execute(std::unordered_map<int, dnnl::memory> args) const;
};

// The attributes every cached primitive is made with: a user-managed scratchpad.
dnnl::primitive_attr primitive_attr();

// Returns the primitive cached under `key`, building it with `make` the first time.
// Keys start with the role ("linear.bwd_weights|..."), which is what creation
// statistics count by.
const CachedPrimitive& cached_primitive(const std::string& key,
                                        const std::function<CachedPrimitive()>& make);

template <class Primitive, class PD>
CachedPrimitive make_cached(PD pd) {
  CachedPrimitive entry;
  entry.primitive = Primitive(pd);
  entry.scratchpad = pd.scratchpad_desc();
  entry.descriptor = std::make_shared<PD>(std::move(pd));
  return entry;
}

// How many primitives whose key starts with `role` have been created so far.
std::size_t primitives_created(std::string_view role);
std::size_t primitive_cache_size();

}  // namespace graft::ops
