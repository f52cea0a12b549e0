// The block tile of the hand-written GEMMs (layer_update.cu, rbm.cu): no cuBLAS.
//
// A 256-thread block owns a 64 x 64 tile of C = sum_k A[r][k] B[k][c] and walks the depth
// in 16-deep slices staged in shared memory. Either operand may be stored transposed (the
// RBM's h -> v pass reads W as W^T; its gradient reads V^T); the loaders hide that, so the
// compute step always sees A as As[k][row] and B as Bs[k][col].
//
// Two compute steps share those slices:
// - fp32: each thread keeps a 4 x 4 block of FFMA accumulators, rows ty + 16 i (a warp
//   reads As as a broadcast) and columns 4 tx + j (one float4 of Bs);
// - tf32: tensor cores through nvcuda::wmma (m16n16k8, fp32 accumulate), each warp two
//   16 x 16 fragments; the accumulators go through shared memory once at the end so the
//   epilogue sees the same per-thread 4 x 4 block as in fp32.
// Out-of-range rows, columns and depth are loaded as zeros, so the inner loops need no
// guards; the epilogue guards its stores.
#pragma once
#include <cuda_runtime.h>
#include <mma.h>
#include <cstdint>
#include <type_traits>

namespace ebm::cuda::tile {

constexpr int kRows = 64;     // output rows per block
constexpr int kCols = 64;     // output columns per block
constexpr int kDepth = 16;    // depth of one shared-memory slice
constexpr int kThreads = 256; // 16 x 16 threads, 4 x 4 outputs each
constexpr int kThreadsX = 16; // threads along the columns
// Row strides of 68 floats: 16-byte aligned rows for the float4 reads, wmma's ldm a
// multiple of 4, and fragment starts on 32-byte boundaries (68 * 4 * 8 = 2176 = 68 * 32).
constexpr int kStride = kCols + 4;

struct Slices {
  alignas(32) float A[kDepth][kStride];  // As[k][row]
  alignas(32) float B[kDepth][kStride];  // Bs[k][col]
};

// One operand: element (i, k) of A (or (k, j) of B) lives at p[i * ld + k] (p[k * ld + j])
// when stored as written, at p[k * ld + i] (p[j * ld + k]) when transposed.
struct Operand {
  const float* p = nullptr;
  int64_t ld = 0;
};

// Each thread moves kPerThread elements of each slice: global -> registers (fetch, issued
// before the current slice is computed, so the loads' latency hides behind the FFMAs /
// MMAs), then registers -> shared memory (store) once the slice before is consumed.
constexpr int kPerThread = kRows * kDepth / kThreads;  // 4 (the B slice has as many)
static_assert(kCols * kDepth / kThreads == kPerThread, "A and B slices of equal size");

// A[row0 .. +64][k0 .. +16], times `scale` (1 or -1: exact in tf32 too). The thread-to-
// element map follows the memory order of the stored operand, so a warp reads contiguous
// global memory either way.
template <bool kTrans>
__device__ __forceinline__ void a_index(int q, int& r, int& k) {
  const int e = static_cast<int>(threadIdx.x) + q * kThreads;
  r = kTrans ? e % kRows : e / kDepth;
  k = kTrans ? e / kRows : e % kDepth;
}

template <bool kTrans>
__device__ __forceinline__ void fetch_a(const Operand& A, float scale, int64_t rows, int64_t depth,
                                        int64_t row0, int64_t k0, float (&reg)[kPerThread]) {
#pragma unroll
  for (int q = 0; q < kPerThread; ++q) {
    int r, k;
    a_index<kTrans>(q, r, k);
    const int64_t gr = row0 + r, gk = k0 + k;
    reg[q] = (gr < rows && gk < depth)
                 ? scale * (kTrans ? A.p[gk * A.ld + gr] : A.p[gr * A.ld + gk])
                 : 0.0f;
  }
}

template <bool kTrans>
__device__ __forceinline__ void store_a(const float (&reg)[kPerThread], Slices& s) {
#pragma unroll
  for (int q = 0; q < kPerThread; ++q) {
    int r, k;
    a_index<kTrans>(q, r, k);
    s.A[k][r] = reg[q];  // As[k][row]
  }
}

// B[k0 .. +16][col0 .. +64] -> Bs[k][col].
template <bool kTrans>
__device__ __forceinline__ void b_index(int q, int& k, int& c) {
  const int e = static_cast<int>(threadIdx.x) + q * kThreads;
  c = kTrans ? e / kDepth : e % kCols;
  k = kTrans ? e % kDepth : e / kCols;
}

template <bool kTrans>
__device__ __forceinline__ void fetch_b(const Operand& B, int64_t cols, int64_t depth, int64_t col0,
                                        int64_t k0, float (&reg)[kPerThread]) {
#pragma unroll
  for (int q = 0; q < kPerThread; ++q) {
    int k, c;
    b_index<kTrans>(q, k, c);
    const int64_t gk = k0 + k, gc = col0 + c;
    reg[q] = (gk < depth && gc < cols) ? (kTrans ? B.p[gc * B.ld + gk] : B.p[gk * B.ld + gc]) : 0.0f;
  }
}

template <bool kTrans>
__device__ __forceinline__ void store_b(const float (&reg)[kPerThread], Slices& s) {
#pragma unroll
  for (int q = 0; q < kPerThread; ++q) {
    int k, c;
    b_index<kTrans>(q, k, c);
    s.B[k][c] = reg[q];
  }
}

// ------------------------------------------------------------------ accumulators

// fp32: the thread's 4 x 4 block in registers.
struct AccFp32 {
  float v[4][4] = {};

  __device__ __forceinline__ void slice(const Slices& s) {
    const int tx = threadIdx.x % kThreadsX, ty = threadIdx.x / kThreadsX;
#pragma unroll
    for (int k = 0; k < kDepth; ++k) {
      float a[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = s.A[k][ty + kThreadsX * i];
      const float4 b = *reinterpret_cast<const float4*>(&s.B[k][4 * tx]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        v[i][0] = fmaf(a[i], b.x, v[i][0]);
        v[i][1] = fmaf(a[i], b.y, v[i][1]);
        v[i][2] = fmaf(a[i], b.z, v[i][2]);
        v[i][3] = fmaf(a[i], b.w, v[i][3]);
      }
    }
  }
  __device__ __forceinline__ void scale(float f) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) v[i][j] *= f;
  }
  // The thread's block: out[i][j] = C[ty + 16 i][4 tx + j] of the tile.
  __device__ __forceinline__ void result(float (&out)[4][4], float*) const {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) out[i][j] = v[i][j];
  }
};

// tf32: warp w owns fragment row w / 2 and fragment columns 2 (w % 2) + {0, 1}.
struct AccTf32 {
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> f[2];

  __device__ __forceinline__ AccTf32() {
    nvcuda::wmma::fill_fragment(f[0], 0.0f);
    nvcuda::wmma::fill_fragment(f[1], 0.0f);
  }
  __device__ __forceinline__ void slice(Slices& s) {
    namespace wmma = nvcuda::wmma;
    const int warp = threadIdx.x / 32;
    const int fr = warp / 2, fc = 2 * (warp % 2);
#pragma unroll
    for (int kk = 0; kk < kDepth; kk += 8) {
      // As[k][row] is A column-major with ldm = kStride.
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> a;
      wmma::load_matrix_sync(a, &s.A[kk][16 * fr], kStride);
#pragma unroll
      for (int t = 0; t < a.num_elements; ++t) a.x[t] = wmma::__float_to_tf32(a.x[t]);
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
        wmma::load_matrix_sync(b, &s.B[kk][16 * (fc + c)], kStride);
#pragma unroll
        for (int t = 0; t < b.num_elements; ++t) b.x[t] = wmma::__float_to_tf32(b.x[t]);
        wmma::mma_sync(f[c], a, b, f[c]);
      }
    }
  }
  __device__ __forceinline__ void scale(float s) {
#pragma unroll
    for (int c = 0; c < 2; ++c)
#pragma unroll
      for (int t = 0; t < f[c].num_elements; ++t) f[c].x[t] *= s;
  }
  // Through shared memory C (kRows x kStride floats, synchronised here; it may be the
  // Slices' memory once the last slice is consumed) into the fp32 layout.
  __device__ __forceinline__ void result(float (&out)[4][4], float* C) const {
    namespace wmma = nvcuda::wmma;
    const int warp = threadIdx.x / 32;
    const int fr = warp / 2, fc = 2 * (warp % 2);
#pragma unroll
    for (int c = 0; c < 2; ++c)
      wmma::store_matrix_sync(C + 16 * fr * kStride + 16 * (fc + c), f[c], kStride,
                              wmma::mem_row_major);
    __syncthreads();
    const int tx = threadIdx.x % kThreadsX, ty = threadIdx.x / kThreadsX;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 r = *reinterpret_cast<const float4*>(C + (ty + kThreadsX * i) * kStride + 4 * tx);
      out[i][0] = r.x;
      out[i][1] = r.y;
      out[i][2] = r.z;
      out[i][3] = r.w;
    }
  }
};

// Shared memory of one block: the two slices, and for tf32 room for the 64 x 64 result
// (which reuses the slices' memory).
template <bool kTf32>
struct SharedFloats {
  static constexpr int value = kTf32 ? kRows * kStride : 2 * kDepth * kStride;
};

template <bool kTf32>
using Acc = typename std::conditional<kTf32, AccTf32, AccFp32>::type;

// acc += A[row0.., 0..depth) . B[0..depth, col0..) (times `scale_a` on A's entries).
// Every thread of the block must call it (it synchronises).
template <bool kTA, bool kTB, class Acc>
__device__ __forceinline__ void accumulate(const Operand& A, const Operand& B, float scale_a,
                                           int64_t rows, int64_t cols, int64_t depth, int64_t row0,
                                           int64_t col0, Slices& s, Acc& acc) {
  if (depth <= 0) return;
  float ra[kPerThread], rb[kPerThread];
  fetch_a<kTA>(A, scale_a, rows, depth, row0, 0, ra);
  fetch_b<kTB>(B, cols, depth, col0, 0, rb);
  for (int64_t k0 = 0; k0 < depth; k0 += kDepth) {
    store_a<kTA>(ra, s);
    store_b<kTB>(rb, s);
    __syncthreads();
    if (k0 + kDepth < depth) {  // the next slice's loads fly while this one is computed
      fetch_a<kTA>(A, scale_a, rows, depth, row0, k0 + kDepth, ra);
      fetch_b<kTB>(B, cols, depth, col0, k0 + kDepth, rb);
    }
    acc.slice(s);
    __syncthreads();  // before the next slice overwrites the tiles
  }
}

}  // namespace ebm::cuda::tile
