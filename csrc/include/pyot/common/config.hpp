// Build-wide macros of the core: host/device qualifiers, run-time ISA dispatch, index type.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define PYOT_HD __host__ __device__ __forceinline__
#else
#define PYOT_HD inline
#endif

// Function multiversioning: the hot kernels get AVX2+FMA and AVX-512 clones picked at load time
// by the dynamic loader (ifunc), while the module itself targets baseline x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && \
    defined(__linux__)
#define PYOT_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define PYOT_HAVE_MULTIVERSION 1
#else
#define PYOT_MULTIVERSION
#define PYOT_HAVE_MULTIVERSION 0
#endif

#if defined(__GNUC__)
#define PYOT_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define PYOT_ALWAYS_INLINE inline
#endif

namespace pyot {
using index_t = std::int64_t;
}  // namespace pyot
