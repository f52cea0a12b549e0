// The RBM layer update on the CPU: field = beta * X.M + bias, then sigmoid and Bernoulli
// sampling from the Philox stream, fused into one pass over the output.
//
// Two ways to form X.M:
//  * binary X (every chain state, binarised data): the product is the sum of the rows
//    of M picked by the ones of X. A 64-wide tile of it is accumulated in registers and
//    handed straight to the epilogue, so the output is written once and the work scales
//    with the number of ones (for MNIST-like data ~15% of a dense GEMM).
//  * real-valued X (probabilities, mean-field inputs): one BLAS sgemm, then the same
//    epilogue over its output.
// Every output element is computed the same way whatever the number of threads (gather:
// a sum in index order; GEMM: fixed blocks of rows), so results do not depend on it.
#include <omp.h>
#include <cblas.h>
#include <cmath>
#include "common/math.h"
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"
#include "cpu/tiles.h"

namespace ebm::cpu {

// ---------------------------------------------------------------- tile kernels

EBM_CLONES void sum_rows_tile(const float* M, int64_t ld, const int32_t* idx, int64_t nnz,
                              int64_t j0, int width, float* acc) {
  // Rows are picked at random, so the hardware prefetcher cannot see them coming:
  // fetch the row kPrefetch picks ahead (L2 -> L1 latency is the bound here, not adds).
  constexpr int64_t kPrefetch = 8;
  if (width == kTile) {  // the whole tile in sixteen vector registers
    vf8 a[kTile / 8] = {};
    for (int64_t k = 0; k < nnz; ++k) {
      const float* r = M + static_cast<int64_t>(idx[k]) * ld + j0;
      if (k + kPrefetch < nnz) {
        const float* q = M + static_cast<int64_t>(idx[k + kPrefetch]) * ld + j0;
        for (int t = 0; t < kTile; t += 16) __builtin_prefetch(q + t);
      }
      for (int t = 0; t < kTile / 8; ++t) a[t] += load8(r + 8 * t);
    }
    for (int t = 0; t < kTile / 8; ++t) store8(acc + 8 * t, a[t]);
    return;
  }
  // Last, narrower tile: whole vectors, then single lanes.
  const int wv = width & ~7;
  for (int t = 0; t < width; ++t) acc[t] = 0.0f;
  for (int64_t k = 0; k < nnz; ++k) {
    const float* r = M + static_cast<int64_t>(idx[k]) * ld + j0;
    for (int t = 0; t < wv; t += 8) store8(acc + t, load8(acc + t) + load8(r + t));
    for (int t = wv; t < width; ++t) acc[t] += r[t];
  }
}

// z = beta*acc + bias; write field, sigmoid(z) and/or Bernoulli(sigmoid(z)) samples.
EBM_CLONES static void epilogue_tile(const float* acc, const float* bias, float beta, int width,
                                     float* field, float* prob, float* sample, uint64_t seed,
                                     uint32_t stream, uint32_t chain, uint32_t step,
                                     uint32_t unit0) {
  alignas(32) float u[kTile];
  if (sample)
    philox_uniforms(seed, stream, chain, step, unit0 >> 2, static_cast<int>((width + 3) / 4), u);
  int t = 0;
  for (; t + 8 <= width; t += 8) {
    const vf8 z = beta * load8(acc + t) + load8(bias + t);
    if (field) store8(field + t, z);
    if (!prob && !sample) continue;
    const vf8 p = sigmoid8(z);
    if (prob) store8(prob + t, p);
    if (sample) store8(sample + t, less_as_float8(load8(u + t), p));
  }
  for (; t < width; ++t) {
    const float z = beta * acc[t] + bias[t];
    if (field) field[t] = z;
    if (!prob && !sample) continue;
    const float p = sigmoid_f(z);
    if (prob) prob[t] = p;
    if (sample) sample[t] = u[t] < p ? 1.0f : 0.0f;
  }
}

// Positions of the nonzeros of x[0..n): branch-free, so idx needs n slots.
static int64_t nonzero_positions(const float* x, int64_t n, int32_t* idx) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    idx[m] = static_cast<int32_t>(i);
    m += (x[i] != 0.0f);
  }
  return m;
}

static int64_t count_nonzero(const float* x, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) m += (x[i] != 0.0f);
  return m;
}

constexpr double kGatherMaxDensity = 0.4;
constexpr int64_t kGemmRows = 128;  // rows per GEMM block (fixed: see the GEMM path)

// ---------------------------------------------------------------- layer_forward

void layer_forward(const BatchView& X, const LayerView& L, float beta, const LayerOutputs& out,
                   uint32_t stream, const RngView& rng) {
  const int64_t rows = X.rows, n_in = L.n_in, n_out = L.n_out;
  if (rows == 0 || n_out == 0) return;
  const int64_t n_tiles = ceil_div(n_out, kTile);
  const int64_t per_task = rows_per_task(rows, omp_get_max_threads());
  const int64_t n_tasks = ceil_div(rows, per_task);

  auto finish = [&](int64_t r, int64_t j0, int width, const float* acc) {
    const int64_t o = r * n_out + j0;
    epilogue_tile(acc, L.bias + j0, beta, width, out.field ? out.field + o : nullptr,
                  out.prob ? out.prob + o : nullptr, out.sample ? out.sample + o : nullptr,
                  rng.seed, stream, rng.chain_offset + static_cast<uint32_t>(r), rng.step,
                  static_cast<uint32_t>(j0));
  };

  // Dense enough binary input is faster through the GEMM: the gather moves one row of M
  // per one of X at about half the rate BLAS retires FMAs (measured ~21 adds/ns vs ~50
  // FMA/ns per core), so it wins below ~40% ones (data ~13%, hidden samples ~50% early on)
  // and on batches too small to give every thread a GEMM block.
  const bool gather = X.binary && (rows < 2 * kGemmRows ||
                                   count_nonzero(X.X, rows * n_in) <= kGatherMaxDensity * rows * n_in);
  if (gather) {
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t r0 = task * per_task, r1 = std::min(rows, r0 + per_task);
      int32_t* idx = scratch<int32_t>(kSlotRowIndex, static_cast<size_t>(per_task * std::max<int64_t>(n_in, 1)));
      int64_t nnz[16];
      for (int64_t r = r0; r < r1; ++r)
        nnz[r - r0] = nonzero_positions(X.X + r * n_in, n_in, idx + (r - r0) * n_in);
      alignas(64) float acc[kTile];
      // Tile-outer: the n_in x kTile panel of M stays in L2 while this task's rows use it.
      for (int64_t tile = 0; tile < n_tiles; ++tile) {
        const int64_t j0 = tile * kTile;
        const int width = static_cast<int>(std::min<int64_t>(kTile, n_out - j0));
        for (int64_t r = r0; r < r1; ++r) {
          sum_rows_tile(L.M, n_out, idx + (r - r0) * n_in, nnz[r - r0], j0, width, acc);
          finish(r, j0, width, acc);
        }
      }
    }
    return;
  }

  // GEMM path: blocks of kGemmRows rows, one single-threaded sgemm each (the BLAS pool
  // never fights the OpenMP team), epilogue while the block is in cache. Fixed blocks, not
  // one per thread: BLAS rounds a row depending on its block, and the result must not
  // depend on the thread count.
  float* C = scratch<float>(kSlotGemm, static_cast<size_t>(rows * n_out));
  const int64_t n_blocks = ceil_div(rows, kGemmRows);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t r0 = blk * kGemmRows, r1 = std::min(rows, r0 + kGemmRows);
    gemm_block(false, r1 - r0, n_out, n_in, 1.0f, X.X + r0 * n_in, n_in, L.M, n_out,
               C + r0 * n_out, n_out);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j0 = 0; j0 < n_out; j0 += kTile)
        finish(r, j0, static_cast<int>(std::min<int64_t>(kTile, n_out - j0)), C + r * n_out + j0);
  }
}

// ---------------------------------------------------------------- gibbs_chains

void gibbs_chains(const LayerView& to_hidden, const LayerView& to_visible, float beta, float* V,
                  float* H, int64_t rows, int k, const RngView& rng) {
  for (int t = 0; t < k; ++t) {
    RngView r = rng;
    r.step = rng.step + static_cast<uint32_t>(t);
    LayerOutputs h_out, v_out;
    h_out.sample = H;
    v_out.sample = V;
    layer_forward(BatchView{V, rows, true}, to_hidden, beta, h_out, kStreamHidden, r);
    layer_forward(BatchView{H, rows, true}, to_visible, beta, v_out, kStreamVisible, r);
  }
}

}  // namespace ebm::cpu
