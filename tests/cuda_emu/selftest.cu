// Kernels that test the host emulator itself (tests/test_cuda_emulated.py): collectives,
// shared memory, atomics and wmma give known answers; the broken kernels must be reported
// (deadlock, divergent barrier, partial warp mask, timeout), never hang. Emulator-only:
// launched through the extern "C" entry points at the bottom.
#include <cuda_runtime.h>
#include <mma.h>
#include <cstdint>
#include "shims/shim.h"

namespace {

// Sum of x[0 .. n) into *out: shared-memory tree down to one warp, then shuffles, then
// one atomicAdd per block (float and double).
__global__ void block_sum(const float* x, int n, float* out, double* out_d) {
  __shared__ float buf[256];
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  buf[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s >= 32; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t < 32) {
    float v = buf[t];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (t == 0) {
      atomicAdd(out, v);
      atomicAdd(out_d, static_cast<double>(v));
    }
  }
}

// Per thread, 8 ints: ballot(pred), any, all, shfl(v, 3), shfl_xor(v, 5), shfl_up(v, 2),
// shfl_down(v, 7, width 16), ffs(ballot)/popc(ballot) packed; pred = v odd, v = input.
__global__ void warp_ops(const int* in, int* out) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = in[t];
  const unsigned full = 0xffffffffu;
  const unsigned b = __ballot_sync(full, v & 1);
  int* o = out + 8 * t;
  o[0] = static_cast<int>(b);
  o[1] = __any_sync(full, v > 1000);
  o[2] = __all_sync(full, v >= 0);
  o[3] = __shfl_sync(full, v, 3);
  o[4] = __shfl_xor_sync(full, v, 5);
  o[5] = __shfl_up_sync(full, v, 2);
  o[6] = __shfl_down_sync(full, v, 7, 16);
  o[7] = __ffs(static_cast<int>(b)) * 100 + __popc(b);
  atomicAdd(reinterpret_cast<unsigned long long*>(out + 8 * blockDim.x * gridDim.x), 1ull);
}

// Bug: a thread returns before a barrier the others wait at.
__global__ void early_return(int* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Bug: the two halves of the block wait at different barriers.
__global__ void divergent(int* out) {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

// Bug: a full mask in a block of 48 threads (the second warp has 16 lanes).
__global__ void partial_warp(int* out) {
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
}

// Bug: warp 0 waits at __syncthreads for warp 1, which spins on a flag only warp 0 sets.
__global__ void hang(int* out) {
  __shared__ int flag;
  if (threadIdx.x == 0) flag = 0;
  if (threadIdx.x < 32) {
    __syncthreads();
    flag = 1;
  } else {
    while (std::atomic_ref<int>(flag).load() == 0) __syncwarp();
  }
  out[threadIdx.x] = 1;
}

// D = A B + C for 16 x 8 A, 8 x 16 B, 16 x 16 C (leading dimensions lda, ldb, ldc), one
// warp per problem (blockIdx.x), TF32 inputs converted in the fragments.
template <class LayoutB>
__global__ void wmma_tf32(const float* A, int lda, const float* B, int ldb, const float* C,
                          int ldc, float* D, int convert) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LayoutB> b;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> c;
  const size_t off_a = blockIdx.x * 16 * static_cast<size_t>(lda);
  const size_t off_b = blockIdx.x * 8 * static_cast<size_t>(ldb);
  const size_t off_c = blockIdx.x * 16 * static_cast<size_t>(ldc);
  wmma::load_matrix_sync(a, A + off_a, lda);
  wmma::load_matrix_sync(b, B + off_b, ldb);
  if (C != nullptr) {
    wmma::load_matrix_sync(c, C + off_c, ldc, wmma::mem_row_major);
  } else {
    wmma::fill_fragment(c, 0.0f);
  }
  if (convert) {
    for (int i = 0; i < a.num_elements; ++i) a.x[i] = wmma::__float_to_tf32(a.x[i]);
    for (int i = 0; i < b.num_elements; ++i) b.x[i] = wmma::__float_to_tf32(b.x[i]);
  }
  wmma::mma_sync(c, a, b, c);
  wmma::store_matrix_sync(D + off_c, c, ldc, wmma::mem_row_major);
}

__global__ void to_tf32(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = nvcuda::wmma::__float_to_tf32(x[i]);
}

}  // namespace

extern "C" {

const char* emu_self_block_sum(const float* x, int n, int threads, float* out, double* out_d) {
  return emu::guard([&] {
    block_sum<<<(n + threads - 1) / threads, threads>>>(x, n, out, out_d);
    if (cudaGetLastError() != cudaSuccess) throw std::runtime_error("block_sum failed");
  });
}

const char* emu_self_warp_ops(const int* in, int blocks, int threads, int* out) {
  return emu::guard([&] { warp_ops<<<blocks, threads>>>(in, out); });
}

// which: 0 early_return, 1 divergent, 2 partial_warp, 3 hang, 4 empty grid. The kernel's
// error comes back through cudaGetLastError, as the project's launchers check it.
const char* emu_self_broken(int which, int* out) {
  return emu::guard([&] {
    switch (which) {
      case 0: early_return<<<1, 64>>>(out); break;
      case 1: divergent<<<1, 64>>>(out); break;
      case 2: partial_warp<<<1, 48>>>(out); break;
      case 3: hang<<<1, 64>>>(out); break;
      case 4: early_return<<<0, 64>>>(out); break;
    }
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(cudaGetErrorString(e));
  });
}

const char* emu_self_wmma(const float* A, int lda, const float* B, int ldb, int b_col_major,
                          const float* C, int ldc, float* D, int problems, int convert) {
  return emu::guard([&] {
    if (b_col_major)
      wmma_tf32<nvcuda::wmma::col_major><<<problems, 32>>>(A, lda, B, ldb, C, ldc, D, convert);
    else
      wmma_tf32<nvcuda::wmma::row_major><<<problems, 32>>>(A, lda, B, ldb, C, ldc, D, convert);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(cudaGetErrorString(e));
  });
}

const char* emu_self_to_tf32(const float* x, float* y, int n) {
  return emu::guard([&] {
    to_tf32<<<(n + 127) / 128, 128>>>(x, y, n);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(cudaGetErrorString(e));
  });
}

}  // extern "C"
