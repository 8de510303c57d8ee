// The f32 -> bf16 rounding rule, inline so conversion loops vectorise (f32_to_bf16 in the
// SDK is its out-of-line form), and the two conversion loops every caller shares.
// Round to nearest even; NaN stays a (quiet) NaN.
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

// dst[i] = round_to_bf16(src[i]) for n values, as a vector loop (OpenMP above 64 Ki).
void narrow_to_bf16(const float* src, std::uint16_t* dst, std::int64_t n);
// The f32 bit patterns of n bf16 values (the shift that defines bf16), as a vector loop.
void widen_bf16(const std::uint16_t* src, std::uint32_t* dst, std::int64_t n);

}  // namespace graft
