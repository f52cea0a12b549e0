// Asynchronous Hopfield recall on the GPU: one thread per cue, the semantics of
// csrc/cpu/hopfield_recall.cpp and reference.hopfield_recall. Spins and fields are stored
// site-major (St [n][cues], F [n][cues]) so a warp's 32 cues read one segment per site and
// every thread reads the same weight (a broadcast). Before each sweep a cue that is a fixed
// point (no y_i z_i < 0) stops; a sweep visits 0..n-1, or n sites drawn from the Philox
// proposal stream (random order); a flip of y_i by d moves every field z_j by W[i][j] d.
#include <cuda_runtime.h>
#include "common/philox.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.cuh"

namespace ebm::cuda {

namespace {

constexpr int kThreads = 128;

template <bool kRandom>
__global__ void recall_kernel(const float* W, const float* b, int8_t* St, float* F, int64_t n,
                              int64_t cues, int max_sweeps, uint64_t seed, uint32_t step,
                              int32_t* sweeps, uint8_t* converged) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cues) return;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int64_t i = 0; i < n; ++i) {
    float z = b[i];
    for (int64_t j = 0; j < n; ++j) z += W[n * i + j] * St[j * cues + c];
    F[i * cues + c] = z;
  }
  for (int t = 0; t <= max_sweeps; ++t) {
    bool fixed = true;
    for (int64_t i = 0; i < n && fixed; ++i) fixed = St[i * cues + c] * F[i * cues + c] >= 0.0f;
    if (fixed) {
      sweeps[c] = t;
      converged[c] = 1;
      return;
    }
    if (t == max_sweeps) break;
    PhiloxBlock pick{};
    for (int64_t k = 0; k < n; ++k) {
      int64_t i = k;
      if (kRandom) {
        if ((k & 3) == 0)
          pick = philox4x32_10(static_cast<uint32_t>(k >> 2), static_cast<uint32_t>(c),
                               step + static_cast<uint32_t>(t), kStreamProposal, k0, k1);
        i = min(n - 1, static_cast<int64_t>(philox_word_to_uniform(pick.x[k & 3]) * static_cast<float>(n)));
      }
      const float y = St[i * cues + c];
      if (y * F[i * cues + c] >= 0.0f) continue;
      const float d = -2.0f * y;
      St[i * cues + c] = static_cast<int8_t>(-y);
      for (int64_t j = 0; j < n; ++j) F[j * cues + c] += W[n * i + j] * d;
    }
  }
  sweeps[c] = max_sweeps;
  converged[c] = 0;
}

}  // namespace

void hopfield_recall(const float* W, const float* b, int8_t* St, float* F, int64_t n, int64_t cues,
                     int max_sweeps, bool random_order, uint64_t seed, uint32_t step,
                     int32_t* sweeps, uint8_t* converged, uintptr_t stream) {
  if (cues <= 0) return;  // an empty grid is a launch error ("invalid configuration")
  const dim3 grid(static_cast<unsigned>(ceil_div(cues, kThreads)));
  const cudaStream_t st = as_stream(stream);
  if (random_order)
    recall_kernel<true><<<grid, kThreads, 0, st>>>(W, b, St, F, n, cues, max_sweeps, seed, step, sweeps, converged);
  else
    recall_kernel<false><<<grid, kThreads, 0, st>>>(W, b, St, F, n, cues, max_sweeps, seed, step, sweeps, converged);
  check_cuda(cudaGetLastError(), "hopfield_recall launch");
}

}  // namespace ebm::cuda
