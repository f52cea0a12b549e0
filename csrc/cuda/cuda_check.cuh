// Launch helpers shared by the CUDA kernels: every launch is followed by a check, and a
// failure becomes a C++ exception (a RuntimeError in Python), never a silent bad result.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ebm::cuda {

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// Grid of tile_rows x tile_cols output tiles (gemm_tile.cuh): rows on x (up to 2^31 - 1
// blocks), columns on y (up to 65535 blocks).
inline dim3 tile_grid(int64_t rows, int64_t cols, int tile_rows, int tile_cols, const char* what) {
  const int64_t gx = ceil_div(rows, tile_rows), gy = ceil_div(cols, tile_cols);
  if (gx > 2147483647LL || gy > 65535)
    throw std::runtime_error(std::string(what) + ": too many rows or columns for one launch");
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
}

}  // namespace ebm::cuda
