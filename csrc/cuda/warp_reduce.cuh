// Butterfly reductions over the 32 lanes of a warp (every lane must call; every lane gets
// the result). Shared by the kernels that fold per-thread values into a few words.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>

namespace ebm::cuda {

constexpr unsigned kFullWarp = 0xffffffffu;

template <class T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(kFullWarp, x, off);
  return x;
}

__device__ __forceinline__ uint32_t warp_max(uint32_t x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const uint32_t y = __shfl_xor_sync(kFullWarp, x, off);
    x = y > x ? y : x;
  }
  return x;
}

}  // namespace ebm::cuda
