// One pass over a float32 device array that tells what the input checks need: how many
// values are NaN or infinite, how many are neither 0 nor 1, and the smallest and largest
// finite values - the GPU twin of cpu::summarize (inspect.cpp). One launch and one
// readback replace the four reductions (and their launches) of checking with CuPy.
#include <cuda_runtime.h>
#include <algorithm>
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.cuh"
#include "cuda/warp_reduce.cuh"

namespace ebm::cuda {

namespace {

constexpr int kThreads = 256;

// Float bits -> an unsigned key with the same order as the floats (for atomicMax).
__device__ __forceinline__ uint32_t ordered(float x) {
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// out[0] += non-finite count, out[1] += non-binary count, out[2] = max ordered(x),
// out[3] = max ~ordered(x) (the minimum), over the finite values; out zeroed before.
__global__ void __launch_bounds__(kThreads) summarize_kernel(const float* __restrict__ x,
                                                             int64_t n, uint32_t* out) {
  uint32_t bad = 0, nonbinary = 0, hi = 0, lo = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    if (!(fabsf(v) <= 3.40282347e38f)) {  // NaN or +-inf
      ++bad;
      continue;
    }
    nonbinary += (v != 0.0f && v != 1.0f) ? 1u : 0u;
    const uint32_t k = ordered(v);
    hi = k > hi ? k : hi;
    lo = ~k > lo ? ~k : lo;
  }
  bad = warp_sum(bad);
  nonbinary = warp_sum(nonbinary);
  hi = warp_max(hi);
  lo = warp_max(lo);
  if ((threadIdx.x & 31) == 0) {
    if (bad) atomicAdd(out, bad);
    if (nonbinary) atomicAdd(out + 1, nonbinary);
    atomicMax(out + 2, hi);
    atomicMax(out + 3, lo);
  }
}

}  // namespace

void summarize(const float* x, int64_t n, uint32_t* out, uintptr_t stream) {
  const cudaStream_t st = as_stream(stream);
  check_cuda(cudaMemsetAsync(out, 0, 4 * sizeof(uint32_t), st), "summarize memset");
  if (n <= 0) return;
  // Enough blocks to fill a large GPU, then a grid-stride loop (counts stay < 2^32: the
  // caller limits n).
  const int64_t blocks = std::min<int64_t>(ceil_div(n, kThreads), 1024);
  summarize_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, st>>>(x, n, out);
  check_cuda(cudaGetLastError(), "summarize launch");
}

}  // namespace ebm::cuda
