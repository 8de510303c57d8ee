// Tensor memory (framework/tensor/block_cache): freed large blocks serve the next request
// of their size class, the cache never holds more than the live peak, and the counts add up.
#include <gtest/gtest.h>

#include <vector>

#include "graft/tensor.h"
#include "tensor/block_cache.h"

namespace graft {
namespace {

TEST(Memory, FreedLargeBlocksAreReusedAndCountsAddUp) {
  if (!block_cache::caching()) GTEST_SKIP() << "AddressSanitizer build: every block is aligned_alloc'd and freed";
  release_cached_memory();
  const MemoryStats before = memory_stats();
  const void* first = nullptr;
  {
    Tensor a = Tensor::empty({1000, 1000});  // 4 MB: a large block
    first = a.data<float>();
    const MemoryStats with = memory_stats();
    EXPECT_GE(with.live_bytes - before.live_bytes, 4000000u);
    EXPECT_LE(with.live_bytes - before.live_bytes, 4000000u * 9 / 8 + 4096) << "the size class wastes at most 1/8";
    EXPECT_GE(with.peak_live_bytes, with.live_bytes);
  }
  const MemoryStats freed = memory_stats();
  EXPECT_EQ(freed.live_bytes, before.live_bytes);
  EXPECT_GE(freed.cached_bytes, 4000000u) << "the freed block is kept for the next step";
  // A slightly different size of the same class (a batch a token shorter) gets it back.
  Tensor b = Tensor::empty({999, 1000});
  EXPECT_EQ(b.data<float>(), first);
  EXPECT_EQ(memory_stats().cached_bytes, freed.cached_bytes - (memory_stats().live_bytes - before.live_bytes));
}

TEST(Memory, TheCacheNeverHoldsMoreThanTheLivePeak) {
  release_cached_memory();
  for (int round = 0; round < 3; ++round) {
    std::vector<Tensor> held;
    // Ever larger sizes: earlier classes are no longer asked for.
    for (int i = 1; i <= 12; ++i) held.push_back(Tensor::empty({(round * 12 + i) * 65536}));
    held.clear();
    const MemoryStats s = memory_stats();
    EXPECT_LE(s.cached_bytes, s.peak_live_bytes);
  }
  release_cached_memory();
  EXPECT_EQ(memory_stats().cached_bytes, 0u);
}

TEST(Memory, SmallTensorsAreCountedToo) {
  const MemoryStats before = memory_stats();
  {
    Tensor t = Tensor::empty({3, 5});
    EXPECT_EQ(memory_stats().live_bytes - before.live_bytes, 64u);
  }
  EXPECT_EQ(memory_stats().live_bytes, before.live_bytes);
}

}  // namespace
}  // namespace graft
