// The shared layer update "layer l from its neighbours" on the GPU, the semantics of
// reference.layer_update (and, for one neighbour, of cpu::layer_forward):
//   z = beta * (X1.M1 + X2.M2) + bias,  prob = sigmoid(z),  sample = [u < prob]
// with u the Philox uniform (seed, stream, chain = chain_offset + row, step, unit = column).
// Reached from bindings.cpp (cuda_layer_update) through python/ebmfast/_layer_cuda.py.
//
// One hand-written GEMM kernel (no cuBLAS) on the block tile of gemm_tile.cuh: each
// 256-thread block owns a 64x64 output tile; both products run into the same
// accumulators (FFMA in fp32, tensor-core wmma in tf32), so the field is never written to
// global memory before the epilogue (bias, beta, sigmoid, Bernoulli) turns it into the
// requested outputs. Either M may be stored transposed ([n_out, n_in]: the RBM's W read as
// W^T, the DBM's W_{l+1} read as W_{l+1}^T) so no model keeps a transposed copy. Correct
// first: no double buffering, no vector global loads (rows need not be 16-byte aligned).
#include <cuda_runtime.h>
#include <atomic>
#include "common/math.h"
#include "common/philox.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.cuh"
#include "cuda/gemm_tile.cuh"

namespace ebm::cuda {

namespace {

using tile::kThreads;
using tile::kThreadsX;

// fp32 Small: three blocks per SM (<= 85 registers, no spills); tf32 (the wmma fragments
// too) and the Large tile's 64 accumulators: two (<= 128 registers).
template <class S, bool kT1, bool kT2, bool kTf32>
__global__ void __launch_bounds__(kThreads, (kTf32 || S::kTM > 4) ? 2 : 3)
layer_update_kernel(LayerInput in1, LayerInput in2, const float* __restrict__ bias,
                    int64_t rows, int64_t n_out, float beta, LayerOutputsCuda out,
                    uint32_t stream_id, uint64_t seed, uint32_t step, uint32_t chain_offset) {
  __shared__ __align__(32) float smem[tile::SharedFloats<S, kTf32>::value];
  tile::Slices<S>& s = *reinterpret_cast<tile::Slices<S>*>(smem);
  // Rows on grid.x (up to 2^31 - 1 blocks), columns on grid.y (up to 65535 blocks).
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * S::kRows;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * S::kCols;
  tile::Acc<S, kTf32> acc;
  // M stored [n_in, n_out] has leading dimension n_out; transposed, n_in.
  tile::accumulate<false, kT1>({in1.X, in1.n_in}, {in1.M, kT1 ? in1.n_in : n_out}, 1.0f, rows,
                               n_out, in1.n_in, row0, col0, s, acc);
  if (in2.X != nullptr)
    tile::accumulate<false, kT2>({in2.X, in2.n_in}, {in2.M, kT2 ? in2.n_in : n_out}, 1.0f, rows,
                                 n_out, in2.n_in, row0, col0, s, acc);
  float sum[S::kTM][S::kTN];
  acc.result(sum, smem);

  // --- fused epilogue: each group of four columns S::col(tx, 4 g) + 0..3 of a row are
  // units u0 .. u0 + 3 with u0 a multiple of 4, i.e. exactly the four words of Philox
  // block (u0 / 4, chain, step, stream): one block per row and group.
  const int tx = threadIdx.x % kThreadsX, ty = threadIdx.x / kThreadsX;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int i = 0; i < S::kTM; ++i) {
    const int64_t r = row0 + S::row(ty, i);
    if (r >= rows) continue;  // guards, not break: keeps the loops unrolled and u in registers
#pragma unroll
    for (int g = 0; g < S::kTN / 4; ++g) {
      const int64_t c0 = col0 + S::col(tx, 4 * g);
      if (c0 >= n_out) continue;
      PhiloxBlock u{};
      if (out.sample != nullptr)
        u = philox4x32_10(static_cast<uint32_t>(c0 >> 2), chain_offset + static_cast<uint32_t>(r),
                          step, stream_id, k0, k1);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t c = c0 + j;
        if (c >= n_out) continue;
        const int64_t o = r * n_out + c;
        const float z = beta * sum[i][4 * g + j] + bias[c];
        if (out.field != nullptr) out.field[o] = z;
        if (out.prob == nullptr && out.sample == nullptr) continue;
        const float p = sigmoid_f(z);  // common/math.h: the device twin of the CPU sigmoid
        if (out.prob != nullptr) out.prob[o] = p;
        if (out.sample != nullptr)
          out.sample[o] = philox_word_to_uniform(u.x[j]) < p ? 1.0f : 0.0f;
      }
    }
  }
}

template <class S, bool kT1, bool kT2, bool kTf32>
void launch(cudaStream_t st, const LayerInput& in1, const LayerInput& in2, const float* bias,
            int64_t rows, int64_t n_out, float beta, const LayerOutputsCuda& out,
            uint32_t stream_id, const RngView& rng) {
  const dim3 grid = tile_grid(rows, n_out, S::kRows, S::kCols, "layer_update");
  layer_update_kernel<S, kT1, kT2, kTf32><<<grid, kThreads, 0, st>>>(
      in1, in2, bias, rows, n_out, beta, out, stream_id, rng.seed, rng.step, rng.chain_offset);
}

template <class S, bool kTf32>
void dispatch(cudaStream_t st, const LayerInput& in1, const LayerInput& in2, const float* bias,
              int64_t rows, int64_t n_out, float beta, const LayerOutputsCuda& out,
              uint32_t stream_id, const RngView& rng) {
  const int which = (in1.transposed ? 1 : 0) + (in2.transposed ? 2 : 0);
  switch (which) {
    case 0: launch<S, false, false, kTf32>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng); break;
    case 1: launch<S, true, false, kTf32>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng); break;
    case 2: launch<S, false, true, kTf32>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng); break;
    default: launch<S, true, true, kTf32>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng); break;
  }
}

}  // namespace

// --- tile choice

namespace {
std::atomic<int> g_tile_policy{0};
}  // namespace

void set_gemm_tile_policy(int policy) {
  if (policy < 0 || policy > 2) throw std::runtime_error("tile policy must be 0, 1 or 2");
  g_tile_policy.store(policy);
}

bool use_large_tile(int64_t rows, int64_t cols, bool tf32) {
  if (tf32) return false;  // tf32 runs on the Small tile's wmma fragments
  const int policy = g_tile_policy.load();
  if (policy != 0) return policy == 2;
  return rows >= 1024 && cols >= 1024;
}

// --- launcher

void layer_update(const LayerInput& in1, const LayerInput& in2, const float* bias, int64_t rows,
                  int64_t n_out, float beta, const LayerOutputsCuda& out, uint32_t stream_id,
                  const RngView& rng, uintptr_t stream, Precision precision) {
  if (rows <= 0 || n_out <= 0) return;
  if (out.field == nullptr && out.prob == nullptr && out.sample == nullptr) return;
  const cudaStream_t st = as_stream(stream);
  if (precision == Precision::kTf32)
    dispatch<tile::Small, true>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng);
  else if (use_large_tile(rows, n_out, false))
    dispatch<tile::Large, false>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng);
  else
    dispatch<tile::Small, false>(st, in1, in2, bias, rows, n_out, beta, out, stream_id, rng);
  check_cuda(cudaGetLastError(), "layer_update launch");
}

}  // namespace ebm::cuda
