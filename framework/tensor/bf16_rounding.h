// The f32 <-> bf16 rules, inline so loops over them vectorise (f32_to_bf16 and bf16_to_f32
// in the SDK are their out-of-line forms), and the two conversion loops every caller shares.
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

// The f32 value of a bf16 bit pattern (exact: the shift that defines bf16).
inline float bf16_bits_to_f32(std::uint16_t value) {
  const std::uint32_t bits = static_cast<std::uint32_t>(value) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// dst[i] = round_to_bf16(src[i]) for n values, as a vector loop (OpenMP above 64 Ki).
void narrow_to_bf16(const float* src, std::uint16_t* dst, std::int64_t n);
// The f32 bit patterns of n bf16 values (the shift that defines bf16), as a vector loop.
void widen_bf16(const std::uint16_t* src, std::uint32_t* dst, std::int64_t n);

}  // namespace graft
