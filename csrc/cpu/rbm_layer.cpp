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
// Every output element is a sum in a fixed order, so results do not depend on the
// number of threads.
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
  if (width == kTile) {  // the whole tile in eight vector registers
    vf8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};
    for (int64_t k = 0; k < nnz; ++k) {
      const float* r = M + static_cast<int64_t>(idx[k]) * ld + j0;
      a0 += load8(r);      a1 += load8(r + 8);  a2 += load8(r + 16); a3 += load8(r + 24);
      a4 += load8(r + 32); a5 += load8(r + 40); a6 += load8(r + 48); a7 += load8(r + 56);
    }
    store8(acc, a0);      store8(acc + 8, a1);  store8(acc + 16, a2); store8(acc + 24, a3);
    store8(acc + 32, a4); store8(acc + 40, a5); store8(acc + 48, a6); store8(acc + 56, a7);
    return;
  }
  for (int t = 0; t < width; ++t) acc[t] = 0.0f;
  for (int64_t k = 0; k < nnz; ++k) {
    const float* r = M + static_cast<int64_t>(idx[k]) * ld + j0;
    for (int t = 0; t < width; ++t) acc[t] += r[t];
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

  if (X.binary) {
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t r0 = task * per_task, r1 = std::min(rows, r0 + per_task);
      int32_t* idx = scratch<int32_t>(kSlotRowIndex, static_cast<size_t>(per_task * std::max<int64_t>(n_in, 1)));
      int64_t nnz[16];
      for (int64_t r = r0; r < r1; ++r)
        nnz[r - r0] = nonzero_positions(X.X + r * n_in, n_in, idx + (r - r0) * n_in);
      alignas(64) float acc[kTile];
      // Tile-outer: the n_in x 64 panel of M stays in L2 while this task's rows use it.
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

  // Real-valued input: one sgemm into scratch, then the epilogue over it.
  float* C = scratch<float>(kSlotGemm, static_cast<size_t>(rows * n_out));
  if (n_in > 0) {
    scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                      static_cast<blasint>(n_out), static_cast<blasint>(n_in), 1.0f, X.X,
                      static_cast<blasint>(n_in), L.M, static_cast<blasint>(n_out), 0.0f, C,
                      static_cast<blasint>(n_out));
  } else {
    for (int64_t i = 0; i < rows * n_out; ++i) C[i] = 0.0f;
  }
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < n_tasks; ++task) {
    const int64_t r0 = task * per_task, r1 = std::min(rows, r0 + per_task);
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
