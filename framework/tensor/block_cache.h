// Memory for tensors. A training step allocates and frees the same activation sizes
// every step; glibc's heap kept about twice the live bytes resident (fragmentation), and
// fresh mmaps page-fault and zero every block every step. Large blocks therefore come
// from a cache of mmapped blocks in size classes (steps of 1/8 between powers of two, so
// a batch of another length still finds a block): a freed block waits for the next
// request of its class, and the cache keeps at most as many bytes as were ever live at
// once, so resident memory stays near the live peak. Small blocks use aligned_alloc.
#pragma once
#include <cstddef>

namespace graft::block_cache {

// False in AddressSanitizer builds: every block then comes from aligned_alloc and goes
// back to free, so ASan sees each tensor's bounds and every use after free.
bool caching();

// A block of at least `bytes`, 64-byte aligned, or nullptr when memory is exhausted.
// `capacity` receives what release() must be given back.
void* acquire(std::size_t bytes, std::size_t& capacity);
void release(void* block, std::size_t capacity);

}  // namespace graft::block_cache
