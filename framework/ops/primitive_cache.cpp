#include "ops/primitive_cache.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/dnnl_bridge.h"

namespace graft::ops {
namespace bridge = graft::dnnl_bridge;
namespace {

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::string, CachedPrimitive> entries;
  std::map<std::string, std::size_t, std::less<>> created_by_role;
};

Cache& cache() {
  static Cache c;
  return c;
}

std::string_view role_of(const std::string& key) {
  return std::string_view(key).substr(0, key.find('|'));
}

}  // namespace

const CachedPrimitive& cached_primitive(const std::string& key,
                                        const std::function<CachedPrimitive()>& make) {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  auto found = c.entries.find(key);
  if (found != c.entries.end()) return found->second;
  auto [it, inserted] = c.entries.emplace(key, make());
  ++c.created_by_role[std::string(role_of(key))];
  return it->second;
}

dnnl::primitive_attr primitive_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void CachedPrimitive::execute(std::unordered_map<int, dnnl::memory> args) const {
  if (const std::size_t bytes = scratchpad.get_size()) {
    // Grown, never shrunk: after the first steps no execution allocates.
    thread_local std::vector<std::uint8_t> buffer;
    if (buffer.size() < bytes) buffer.resize(bytes);
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, bridge::engine(), buffer.data()));
  }
  primitive.execute(bridge::stream(), args);
}

std::size_t primitives_created(std::string_view role) {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  auto found = c.created_by_role.find(role);
  return found == c.created_by_role.end() ? 0 : found->second;
}

std::size_t primitive_cache_size() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  return c.entries.size();
}

}  // namespace graft::ops
