#include "tensor/block_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "graft/tensor.h"

namespace graft::block_cache {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr std::size_t kLarge = 256 << 10;  // below: aligned_alloc (the heap serves small blocks well)
constexpr std::size_t kPage = 4096;

// The size class of a large request: the next of 2^k·(1 + j/8), rounded to pages
// (at most 12.5% more than asked).
std::size_t class_of(std::size_t bytes) {
  std::size_t top = kLarge;
  while (top < bytes) top <<= 1;
  const std::size_t step = top / 16;  // top/2 .. top in 8 steps
  const std::size_t size = (bytes + step - 1) / step * step;
  return (size + kPage - 1) / kPage * kPage;
}

struct Cache {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free;  // by class
  MemoryStats stats;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destruction
  return *c;
}

void unmap(void* block, std::size_t capacity) { ::munmap(block, capacity); }

// A block handed out; the caller holds c.mutex.
void count_live(Cache& c, std::size_t capacity) {
  c.stats.live_bytes += capacity;
  c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
}

}  // namespace

bool caching() { return !kSanitized; }

void* acquire(std::size_t bytes, std::size_t& capacity) {
  if (bytes > (std::size_t{1} << 48)) return nullptr;  // no machine has it (and class_of would overflow)
  Cache& c = cache();
  if (bytes < kLarge || kSanitized) {
    capacity = std::max<std::size_t>(64, (bytes + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, capacity);
    if (p) {
      std::lock_guard lock(c.mutex);
      count_live(c, capacity);
    }
    return p;
  }
  capacity = class_of(bytes);
  {
    std::lock_guard lock(c.mutex);
    auto it = c.free.find(capacity);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.cached_bytes -= capacity;
      count_live(c, capacity);
      return p;
    }
  }
  void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    release_cached_memory();  // give the cached blocks back and try once more
    p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
  }
  std::lock_guard lock(c.mutex);
  count_live(c, capacity);
  return p;
}

void release(void* block, std::size_t capacity) {
  Cache& c = cache();
  if (capacity < kLarge || kSanitized) {
    std::free(block);
    std::lock_guard lock(c.mutex);
    c.stats.live_bytes -= capacity;
    return;
  }
  {
    std::lock_guard lock(c.mutex);
    c.stats.live_bytes -= capacity;
    // Keep it unless the cache would hold more than the live peak (then it would only
    // be serving sizes no longer asked for).
    if (c.stats.cached_bytes + capacity <= c.stats.peak_live_bytes) {
      c.free[capacity].push_back(block);
      c.stats.cached_bytes += capacity;
      return;
    }
  }
  unmap(block, capacity);
}

}  // namespace graft::block_cache

namespace graft {

MemoryStats memory_stats() {
  auto& c = block_cache::cache();
  std::lock_guard lock(c.mutex);
  return c.stats;
}

void release_cached_memory() {
  auto& c = block_cache::cache();
  std::vector<std::pair<void*, std::size_t>> drop;
  {
    std::lock_guard lock(c.mutex);
    for (auto& [size, blocks] : c.free)
      for (void* b : blocks) drop.emplace_back(b, size);
    c.free.clear();
    c.stats.cached_bytes = 0;
  }
  for (auto [b, size] : drop) block_cache::unmap(b, size);
}

}  // namespace graft
