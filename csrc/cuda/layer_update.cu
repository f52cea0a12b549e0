// The shared layer update "layer l from its neighbours" on the GPU, the semantics of
// reference.layer_update (and, for one neighbour, of cpu::layer_forward):
//   z = beta * (X1.M1 + X2.M2) + bias,  prob = sigmoid(z),  sample = [u < prob]
// with u the Philox uniform (seed, stream, chain = chain_offset + row, step, unit = column).
// Reached from bindings.cpp (cuda_layer_update) through python/ebmfast/_layer_cuda.py.
//
// One hand-written SGEMM-style kernel (no cuBLAS): each 256-thread block owns a 64x64
// output tile, stages 16-deep slices of X and M in shared memory and keeps a 4x4 block of
// accumulators per thread in registers. Both products run into the same accumulators, so
// the field is never written to global memory before the epilogue (bias, beta, sigmoid,
// Bernoulli) turns it into the requested outputs. The tile is a plain, correct-first
// design: no double buffering, no tensor cores, no vector global loads (rows of X and M
// need not be 16-byte aligned for arbitrary n_in / n_out).
#include <cuda_runtime.h>
#include "common/math.h"
#include "common/philox.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.cuh"

namespace ebm::cuda {

namespace {

constexpr int kTileRows = 64;  // BM: output rows (chains) per block
constexpr int kTileCols = 64;  // BN: output columns (units) per block
constexpr int kTileK = 16;     // BK: depth of one shared-memory slice
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
constexpr int kThreadsX = 16;  // threads along the columns
// X is stored transposed in shared memory (As[k][row]) so the inner loop reads a column
// of the A slice; +2 padding makes the transposing store conflict-free (a warp stores
// k = 0..15 for two rows: bank (2k + r) mod 32 is distinct for all 32 lanes).
constexpr int kApad = 2;

// --- kernel

// Adds X[rows, n_in] . M[n_in, n_out] restricted to this block's tile to acc. Rows and
// columns are those of the thread: rows row0 + ty + 16 i (strided, so a warp reads As as a
// broadcast), columns col0 + 4 tx + j (contiguous, so one Philox block serves the four
// columns of a row in the epilogue and Bs is read as one float4).
__device__ __forceinline__ void accumulate_product(const float* __restrict__ X,
                                                   const float* __restrict__ M, int64_t n_in,
                                                   int64_t rows, int64_t n_out, int64_t row0,
                                                   int64_t col0, float (&As)[kTileK][kTileRows + kApad],
                                                   float (&Bs)[kTileK][kTileCols],
                                                   float (&acc)[4][4]) {
  const int tid = threadIdx.x;
  const int tx = tid % kThreadsX, ty = tid / kThreadsX;
  for (int64_t k0 = 0; k0 < n_in; k0 += kTileK) {
    // Load the A slice X[row0 .. +64][k0 .. +16]: k fastest, so 16 consecutive threads read
    // 64 contiguous bytes of one row; out-of-range entries are zero so the FMAs need no guard.
#pragma unroll
    for (int q = 0; q < kTileRows * kTileK / kThreads; ++q) {
      const int e = tid + q * kThreads;
      const int c = e % kTileK, r = e / kTileK;
      const int64_t gr = row0 + r, gk = k0 + c;
      As[c][r] = (gr < rows && gk < n_in) ? X[gr * n_in + gk] : 0.0f;
    }
    // Load the B slice M[k0 .. +16][col0 .. +64]: a warp reads 128 contiguous bytes of a row.
#pragma unroll
    for (int q = 0; q < kTileCols * kTileK / kThreads; ++q) {
      const int e = tid + q * kThreads;
      const int c = e % kTileCols, r = e / kTileCols;
      const int64_t gk = k0 + r, gc = col0 + c;
      Bs[r][c] = (gk < n_in && gc < n_out) ? M[gk * n_out + gc] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      float a[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[k][ty + kThreadsX * i];
      const float4 b = *reinterpret_cast<const float4*>(&Bs[k][4 * tx]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        acc[i][0] = fmaf(a[i], b.x, acc[i][0]);
        acc[i][1] = fmaf(a[i], b.y, acc[i][1]);
        acc[i][2] = fmaf(a[i], b.z, acc[i][2]);
        acc[i][3] = fmaf(a[i], b.w, acc[i][3]);
      }
    }
    __syncthreads();  // before the next slice overwrites As / Bs
  }
}

// At least 3 blocks per SM (<= 85 registers): with the bare thread bound, nvcc 13's ptxas
// squeezed sm_90 to 64 registers and spilled; this bound gives 80 and no spills on sm_80/90.
__global__ void __launch_bounds__(kThreads, 3)
layer_update_kernel(LayerInput in1, LayerInput in2, const float* __restrict__ bias,
                    int64_t rows, int64_t n_out, float beta, LayerOutputsCuda out,
                    uint32_t stream_id, uint64_t seed, uint32_t step, uint32_t chain_offset) {
  __shared__ float As[kTileK][kTileRows + kApad];
  __shared__ __align__(16) float Bs[kTileK][kTileCols];
  // Rows on grid.x (up to 2^31 - 1 blocks), columns on grid.y (up to 65535 blocks).
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kTileRows;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * kTileCols;
  float acc[4][4] = {};
  accumulate_product(in1.X, in1.M, in1.n_in, rows, n_out, row0, col0, As, Bs, acc);
  if (in2.X != nullptr)
    accumulate_product(in2.X, in2.M, in2.n_in, rows, n_out, row0, col0, As, Bs, acc);

  // --- fused epilogue: the thread's four columns 4 tx .. 4 tx + 3 of a row are units
  // u0 .. u0 + 3 with u0 a multiple of 4 (col0 is a multiple of 64), i.e. exactly the
  // four words of Philox block (u0 / 4, chain, step, stream): one block per row.
  const int tx = threadIdx.x % kThreadsX, ty = threadIdx.x / kThreadsX;
  const int64_t c0 = col0 + 4 * tx;
  if (c0 >= n_out) return;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = row0 + ty + kThreadsX * i;
    if (r >= rows) continue;  // guards, not break: keeps the loops unrolled and u in registers
    PhiloxBlock u{};
    if (out.sample != nullptr)
      u = philox4x32_10(static_cast<uint32_t>(c0 >> 2), chain_offset + static_cast<uint32_t>(r),
                        step, stream_id, k0, k1);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = c0 + j;
      if (c >= n_out) continue;
      const int64_t o = r * n_out + c;
      const float z = beta * acc[i][j] + bias[c];
      if (out.field != nullptr) out.field[o] = z;
      if (out.prob == nullptr && out.sample == nullptr) continue;
      const float p = sigmoid_f(z);  // common/math.h: the device twin of the CPU sigmoid
      if (out.prob != nullptr) out.prob[o] = p;
      if (out.sample != nullptr) out.sample[o] = philox_word_to_uniform(u.x[j]) < p ? 1.0f : 0.0f;
    }
  }
}

}  // namespace

// --- launcher

void layer_update(const LayerInput& in1, const LayerInput& in2, const float* bias, int64_t rows,
                  int64_t n_out, float beta, const LayerOutputsCuda& out, uint32_t stream_id,
                  const RngView& rng, uintptr_t stream) {
  if (rows <= 0 || n_out <= 0) return;
  if (out.field == nullptr && out.prob == nullptr && out.sample == nullptr) return;
  const int64_t gx = ceil_div(rows, kTileRows), gy = ceil_div(n_out, kTileCols);
  if (gx > 2147483647LL || gy > 65535)
    throw std::runtime_error("layer_update: rows or n_out too large for one launch");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  layer_update_kernel<<<grid, kThreads, 0, as_stream(stream)>>>(
      in1, in2, bias, rows, n_out, beta, out, stream_id, rng.seed, rng.step, rng.chain_offset);
  check_cuda(cudaGetLastError(), "layer_update launch");
}

}  // namespace ebm::cuda
