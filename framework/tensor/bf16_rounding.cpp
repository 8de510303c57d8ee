#include "tensor/bf16_rounding.h"

#include "tensor/simd_clones.h"

namespace graft {

// oneDNN 2.6's f32<->bf16 reorder is its scalar reference kernel: these replace it.
GRAFT_SIMD_CLONES void narrow_to_bf16(const float* src, std::uint16_t* dst, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (std::int64_t i = 0; i < n; ++i) dst[i] = round_to_bf16(src[i]);
}

GRAFT_SIMD_CLONES void widen_bf16(const std::uint16_t* src, std::uint32_t* dst, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<std::uint32_t>(src[i]) << 16;
}

}  // namespace graft
