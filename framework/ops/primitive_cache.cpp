#include "ops/primitive_cache.h"

#include <map>
#include <mutex>
#include <unordered_map>

namespace graft::ops {
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
