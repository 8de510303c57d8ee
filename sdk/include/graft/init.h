// Seeded initialisation streams: one seed per tensor, derived from the adapter's seed
// (AttachContext::seed()) with splitmix64, so the same run seed gives the same bits
// everywhere. Header-only and fixed: changing these changes every adapter's initial values.
#pragma once
#include <cstdint>

namespace graft {

// One step of splitmix64 (Steele et al. 2014) from state `x`: x + φ·2⁶⁴, then its finaliser.
constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The seed of stream `stream` (0, 1, … per tensor) of an adapter seeded `seed`:
// splitmix64's (stream + 1)-th output from state `seed`.
constexpr std::uint64_t init_stream(std::uint64_t seed, std::uint64_t stream) {
  return splitmix64(seed + 0x9E3779B97F4A7C15ull * stream);
}

}  // namespace graft
