// The f32 -> bf16 rounding rule, inline so conversion loops vectorise (f32_to_bf16 in the
// SDK is its out-of-line form). Round to nearest even; NaN stays a (quiet) NaN.
#pragma once
#include <cstdint>
#include <cstring>

namespace graft {

inline std::uint16_t round_to_bf16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const std::uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const std::uint32_t nan = (bits >> 16) | 0x40u;
  return static_cast<std::uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

}  // namespace graft
