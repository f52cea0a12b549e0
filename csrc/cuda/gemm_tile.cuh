// The block tiles of the hand-written GEMMs (layer_update.cu, rbm.cu): no cuBLAS.
//
// A 256-thread block owns one output tile of C = sum_k A[r][k] B[k][c] and walks the depth
// in slices staged in shared memory. Either operand may be stored transposed (the RBM's
// h -> v pass reads W as W^T; its gradient reads V^T); the loaders hide that, so the
// compute step always sees A as As[k][row] and B as Bs[k][col]. Each thread fetches its
// share of the next slice into registers before the current slice is computed, so the
// loads' latency hides behind the arithmetic.
//
// Two shapes (the launchers pick one by problem size: use_large_tile below):
// - Small: 64 x 64 tile, 16-deep slices, each thread a 4 x 4 block at rows ty + 16 i (a
//   warp reads As as a broadcast) and columns 4 tx + j (one float4 of Bs). Also the tf32
//   shape: tensor cores through nvcuda::wmma (m16n16k8, fp32 accumulate), two 16 x 16
//   fragments per warp, results through shared memory once into the same 4 x 4 layout.
// - Large: 128 x 128 tile, 8-deep slices, each thread an 8 x 8 block at rows
//   64 (i / 4) + 4 ty + i % 4 and columns 64 (j / 4) + 4 tx + j % 4 (two float4 of As and
//   two of Bs per step: 64 FFMA per 4 shared loads), for large fp32 problems where the
//   Small tile's 16 FFMA per 5 loads would leave the FMA pipes waiting.
// In both, the four columns 4 g .. 4 g + 3 of a thread's block are consecutive units that
// start at a multiple of 4: exactly the words of one Philox block.
// Out-of-range rows, columns and depth are loaded as zeros, so the inner loops need no
// guards; the epilogue guards its stores.
#pragma once
#include <cuda_runtime.h>
#include <mma.h>
#include <cstdint>
#include <type_traits>

namespace ebm::cuda::tile {

constexpr int kThreads = 256;  // 16 x 16 threads
constexpr int kThreadsX = 16;  // threads along the columns

struct Small {
  static constexpr int kRows = 64, kCols = 64, kDepth = 16, kTM = 4, kTN = 4;
  // Row strides of 68 floats: 16-byte aligned rows for the float4 reads, wmma's ldm a
  // multiple of 4, and fragment starts on 32-byte boundaries (68 * 4 * 8 = 68 * 32).
  static constexpr int kStride = kCols + 4;
  static constexpr bool kRowVectors = false;  // rows ty + 16 i: scalar loads of As
  __device__ static int row(int ty, int i) { return ty + kThreadsX * i; }
  __device__ static int col(int tx, int j) { return 4 * tx + j; }
};

struct Large {
  static constexpr int kRows = 128, kCols = 128, kDepth = 8, kTM = 8, kTN = 8;
  // 132: 16-byte rows, and the transposing stores of the loaders hit 32 distinct banks.
  static constexpr int kStride = kCols + 4;
  static constexpr bool kRowVectors = true;  // rows in two runs of 4: float4 loads of As
  __device__ static int row(int ty, int i) { return 64 * (i / 4) + 4 * ty + i % 4; }
  __device__ static int col(int tx, int j) { return 64 * (j / 4) + 4 * tx + j % 4; }
};


template <class S>
struct Slices {
  alignas(32) float A[S::kDepth][S::kStride];  // As[k][row]
  alignas(32) float B[S::kDepth][S::kStride];  // Bs[k][col]
};

// One operand: element (i, k) of A (or (k, j) of B) lives at p[i * ld + k] (p[k * ld + j])
// when stored as written, at p[k * ld + i] (p[j * ld + k]) when transposed.
struct Operand {
  const float* p = nullptr;
  int64_t ld = 0;
};

// ------------------------------------------------------------------ loaders

// Elements of each slice per thread (4 for both shapes: A and B slices are equal in size).
template <class S>
struct PerThread {
  static constexpr int value = S::kRows * S::kDepth / kThreads;
  static_assert(S::kCols * S::kDepth / kThreads == value, "A and B slices of equal size");
};

// The thread-to-element maps follow the memory order of the stored operand, so a warp
// reads contiguous global memory either way.
template <class S, bool kTrans>
__device__ __forceinline__ void a_index(int q, int& r, int& k) {
  const int e = static_cast<int>(threadIdx.x) + q * kThreads;
  r = kTrans ? e % S::kRows : e / S::kDepth;
  k = kTrans ? e / S::kRows : e % S::kDepth;
}

template <class S, bool kTrans>
__device__ __forceinline__ void b_index(int q, int& k, int& c) {
  const int e = static_cast<int>(threadIdx.x) + q * kThreads;
  c = kTrans ? e / S::kDepth : e % S::kCols;
  k = kTrans ? e % S::kDepth : e / S::kCols;
}

// A[row0 ..][k0 ..] into registers, times `scale` (1 or -1: exact in tf32 too).
template <class S, bool kTrans>
__device__ __forceinline__ void fetch_a(const Operand& A, float scale, int64_t rows, int64_t depth,
                                        int64_t row0, int64_t k0,
                                        float (&reg)[PerThread<S>::value]) {
#pragma unroll
  for (int q = 0; q < PerThread<S>::value; ++q) {
    int r, k;
    a_index<S, kTrans>(q, r, k);
    const int64_t gr = row0 + r, gk = k0 + k;
    reg[q] = (gr < rows && gk < depth)
                 ? scale * (kTrans ? A.p[gk * A.ld + gr] : A.p[gr * A.ld + gk])
                 : 0.0f;
  }
}

template <class S, bool kTrans>
__device__ __forceinline__ void store_a(const float (&reg)[PerThread<S>::value], Slices<S>& s) {
#pragma unroll
  for (int q = 0; q < PerThread<S>::value; ++q) {
    int r, k;
    a_index<S, kTrans>(q, r, k);
    s.A[k][r] = reg[q];
  }
}

// B[k0 ..][col0 ..] into registers.
template <class S, bool kTrans>
__device__ __forceinline__ void fetch_b(const Operand& B, int64_t cols, int64_t depth, int64_t col0,
                                        int64_t k0, float (&reg)[PerThread<S>::value]) {
#pragma unroll
  for (int q = 0; q < PerThread<S>::value; ++q) {
    int k, c;
    b_index<S, kTrans>(q, k, c);
    const int64_t gk = k0 + k, gc = col0 + c;
    reg[q] = (gk < depth && gc < cols) ? (kTrans ? B.p[gc * B.ld + gk] : B.p[gk * B.ld + gc]) : 0.0f;
  }
}

template <class S, bool kTrans>
__device__ __forceinline__ void store_b(const float (&reg)[PerThread<S>::value], Slices<S>& s) {
#pragma unroll
  for (int q = 0; q < PerThread<S>::value; ++q) {
    int k, c;
    b_index<S, kTrans>(q, k, c);
    s.B[k][c] = reg[q];
  }
}

// ------------------------------------------------------------------ accumulators

// fp32: the thread's kTM x kTN block in registers; v[i][j] is C[S::row(ty, i)][S::col(tx, j)].
template <class S>
struct AccFp32 {
  using Shape = S;
  float v[S::kTM][S::kTN] = {};

  __device__ __forceinline__ void slice(const Slices<S>& s) {
    const int tx = threadIdx.x % kThreadsX, ty = threadIdx.x / kThreadsX;
#pragma unroll
    for (int k = 0; k < S::kDepth; ++k) {
      float a[S::kTM], b[S::kTN];
      if constexpr (S::kRowVectors) {
#pragma unroll
        for (int g = 0; g < S::kTM / 4; ++g) {
          const float4 t = *reinterpret_cast<const float4*>(&s.A[k][S::row(ty, 4 * g)]);
          a[4 * g] = t.x;
          a[4 * g + 1] = t.y;
          a[4 * g + 2] = t.z;
          a[4 * g + 3] = t.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < S::kTM; ++i) a[i] = s.A[k][S::row(ty, i)];
      }
#pragma unroll
      for (int g = 0; g < S::kTN / 4; ++g) {
        const float4 t = *reinterpret_cast<const float4*>(&s.B[k][S::col(tx, 4 * g)]);
        b[4 * g] = t.x;
        b[4 * g + 1] = t.y;
        b[4 * g + 2] = t.z;
        b[4 * g + 3] = t.w;
      }
#pragma unroll
      for (int i = 0; i < S::kTM; ++i)
#pragma unroll
        for (int j = 0; j < S::kTN; ++j) v[i][j] = fmaf(a[i], b[j], v[i][j]);
    }
  }
  __device__ __forceinline__ void scale(float f) {
#pragma unroll
    for (int i = 0; i < S::kTM; ++i)
#pragma unroll
      for (int j = 0; j < S::kTN; ++j) v[i][j] *= f;
  }
  __device__ __forceinline__ void result(float (&out)[S::kTM][S::kTN], float*) const {
#pragma unroll
    for (int i = 0; i < S::kTM; ++i)
#pragma unroll
      for (int j = 0; j < S::kTN; ++j) out[i][j] = v[i][j];
  }
};

// tf32 (Small shape): warp w owns fragment row w / 2 and fragment columns 2 (w % 2) + {0, 1}.
struct AccTf32 {
  using Shape = Small;
  static constexpr int kStride = Small::kStride;
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> f[2];

  __device__ __forceinline__ AccTf32() {
    nvcuda::wmma::fill_fragment(f[0], 0.0f);
    nvcuda::wmma::fill_fragment(f[1], 0.0f);
  }
  __device__ __forceinline__ void slice(Slices<Small>& s) {
    namespace wmma = nvcuda::wmma;
    const int warp = threadIdx.x / 32;
    const int fr = warp / 2, fc = 2 * (warp % 2);
#pragma unroll
    for (int kk = 0; kk < Small::kDepth; kk += 8) {
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
      const float4 r =
          *reinterpret_cast<const float4*>(C + Small::row(ty, i) * kStride + Small::col(tx, 0));
      out[i][0] = r.x;
      out[i][1] = r.y;
      out[i][2] = r.z;
      out[i][3] = r.w;
    }
  }
};

template <class S, bool kTf32>
using Acc = typename std::conditional<kTf32, AccTf32, AccFp32<S>>::type;

// Shared memory of one block: the two slices, and for tf32 room for the 64 x 64 result
// (which reuses the slices' memory).
template <class S, bool kTf32>
struct SharedFloats {
  static_assert(!kTf32 || std::is_same<S, Small>::value, "tf32 runs on the Small tile");
  static constexpr int value = kTf32 ? Small::kRows * Small::kStride : 2 * S::kDepth * S::kStride;
};

// acc += A[row0.., 0..depth) . B[0..depth, col0..) (times `scale_a` on A's entries).
// Every thread of the block must call it (it synchronises).
template <bool kTA, bool kTB, class AccT>
__device__ __forceinline__ void accumulate(const Operand& A, const Operand& B, float scale_a,
                                           int64_t rows, int64_t cols, int64_t depth, int64_t row0,
                                           int64_t col0, Slices<typename AccT::Shape>& s,
                                           AccT& acc) {
  using S = typename AccT::Shape;
  if (depth <= 0) return;
  float ra[PerThread<S>::value], rb[PerThread<S>::value];
  fetch_a<S, kTA>(A, scale_a, rows, depth, row0, 0, ra);
  fetch_b<S, kTB>(B, cols, depth, col0, 0, rb);
  for (int64_t k0 = 0; k0 < depth; k0 += S::kDepth) {
    store_a<S, kTA>(ra, s);
    store_b<S, kTB>(rb, s);
    __syncthreads();
    if (k0 + S::kDepth < depth) {  // the next slice's loads fly while this one is computed
      fetch_a<S, kTA>(A, scale_a, rows, depth, row0, k0 + S::kDepth, ra);
      fetch_b<S, kTB>(B, cols, depth, col0, k0 + S::kDepth, rb);
    }
    acc.slice(s);
    __syncthreads();  // before the next slice overwrites the tiles
  }
}

}  // namespace ebm::cuda::tile

namespace ebm::cuda {
// The Large tile for an fp32 product of rows x cols outputs: once the grid still fills a
// big GPU with its 4x fewer blocks (and as set_gemm_tile_policy says; layer_update.cu).
bool use_large_tile(int64_t rows, int64_t cols, bool tf32);
}  // namespace ebm::cuda
