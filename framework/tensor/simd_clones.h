// GRAFT_SIMD_CLONES before a function with a hot element-wise loop compiles it three
// times (x86-64-v4 = AVX-512, v3 = AVX2 + FMA, and the baseline), and the loader picks
// the widest the CPU runs. The build targets baseline x86-64 (SSE2) so that one binary
// runs everywhere; without this, loops over 64-bit hashes or bf16 rounding stay scalar.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(GRAFT_NO_SIMD_CLONES)
#define GRAFT_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GRAFT_SIMD_CLONES
#endif
