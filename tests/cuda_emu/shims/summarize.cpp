// ctypes entry point of csrc/cuda/summarize.cu (see shim.h).
#include "cuda/cuda_api.h"
#include "shims/shim.h"

extern "C" const char* emu_summarize(const float* x, int64_t n, uint32_t* out) {
  return emu::guard([&] { ebm::cuda::summarize(x, n, out, 0); });
}
