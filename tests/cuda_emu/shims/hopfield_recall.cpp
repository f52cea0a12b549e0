// ctypes entry point of csrc/cuda/hopfield_recall.cu (see shim.h).
#include "cuda/cuda_api.h"
#include "shims/shim.h"

extern "C" const char* emu_hopfield_recall(const float* W, const float* b, int8_t* St, float* F,
                                           int64_t n, int64_t cues, int max_sweeps,
                                           int random_order, uint64_t seed, uint32_t step,
                                           int32_t* sweeps, uint8_t* converged) {
  return emu::guard([&] {
    ebm::cuda::hopfield_recall(W, b, St, F, n, cues, max_sweeps, random_order != 0, seed, step,
                               sweeps, converged, 0);
  });
}
