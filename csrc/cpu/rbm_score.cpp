// Free energy and the full (deterministic) pseudo-log-likelihood of a Bernoulli RBM.
//   F(v) = -b.v - sum_j softplus(c_j + (vW)_j)
//   log p(v_i | v_-i) = log sigmoid(F(v with bit i flipped) - F(v))
// Flipping bit i moves the hidden field by s_i W[i, :] (s_i = 1 - 2 v_i), so all n_v
// flips of a row cost n_v * n_h softplus evaluations and no further products.
#include <omp.h>
#include <cmath>
#include <vector>
#include "common/math.h"
#include "cpu/kernels.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"

namespace ebm::cpu {

namespace {

// sum_j softplus(x_j + s * w_j), float64 total of float32 tiles.
EBM_CLONES double softplus_shift_sum(const float* x, const float* w, float s, int64_t n) {
  double total = 0.0;
  for (int64_t j0 = 0; j0 < n; j0 += kTile) {
    const int64_t m = std::min<int64_t>(kTile, n - j0);
    float acc = 0.0f;
    for (int64_t t = 0; t < m; ++t) acc += softplus_f(x[j0 + t] + s * w[j0 + t]);
    total += acc;
  }
  return total;
}

float* hidden_field(const RbmView& P, const BatchView& V) {
  float* field = scratch<float>(kSlotField, static_cast<size_t>(V.rows * P.n_hidden));
  LayerOutputs o;
  o.field = field;
  layer_forward(V, P.to_hidden(), 1.0f, o, 0, RngView{});
  return field;
}

}  // namespace

void free_energy(const RbmView& P, const BatchView& V, double* out) {
  const float* field = hidden_field(P, V);
  const int64_t n_v = P.n_visible, n_h = P.n_hidden;
#pragma omp parallel for schedule(static) if (parallel_worth(V.rows * (n_v + n_h)))
  for (int64_t r = 0; r < V.rows; ++r) {
    double bv = 0.0;
    for (int64_t i = 0; i < n_v; ++i) bv += static_cast<double>(P.b[i]) * V.X[r * n_v + i];
    out[r] = -bv - softplus_shift_sum(field + r * n_h, field + r * n_h, 0.0f, n_h);
  }
}

void pseudo_log_likelihood(const RbmView& P, const BatchView& V, double* out) {
  const float* field = hidden_field(P, V);
  const int64_t n_v = P.n_visible, n_h = P.n_hidden;
#pragma omp parallel for schedule(dynamic, 1) if (parallel_worth(V.rows * n_v * n_h))
  for (int64_t r = 0; r < V.rows; ++r) {
    const float* x = field + r * n_h;
    const double base = softplus_shift_sum(x, x, 0.0f, n_h);
    double pl = 0.0;
    for (int64_t i = 0; i < n_v; ++i) {
      const float s = 1.0f - 2.0f * V.X[r * n_v + i];
      const double dF = -static_cast<double>(P.b[i]) * s -
                        (softplus_shift_sum(x, P.W + i * n_h, s, n_h) - base);
      // log sigmoid(dF) = -softplus(-dF), stably in float64
      pl -= dF > 0 ? std::log1p(std::exp(-dF)) : -dF + std::log1p(std::exp(dF));
    }
    out[r] = pl;
  }
}

}  // namespace ebm::cpu

namespace ebm::cpu {

namespace {

// sum_j softplus(z_j) = sum_j max(z_j, 0) + log prod_j (1 + e^{-|z_j|}): each factor lies
// in [1, 2], so 16 lanes multiply up to 32 factors each in float32 (<= 2^32) and the lane
// products are joined in float64 (<= 2^512) under one log: one log per 512 terms instead
// of one log1p each.
EBM_CLONES double softplus_sum(const float* z, int64_t m) {
  double log_prod = 0.0;
  vf16 prod, pos = {};
  for (int l = 0; l < 16; ++l) prod[l] = 1.0f;
  auto flush = [&] {
    double p = 1.0;
    for (int l = 0; l < 16; ++l) {
      p *= prod[l];
      prod[l] = 1.0f;
    }
    log_prod += std::log(p);
  };
  int64_t j = 0;
  int factors = 0;
  for (; j + 16 <= m; j += 16) {
    const vf16 x = load16(z + j);
    const vf16 ax = x < 0.0f ? -x : x;
    pos += x > 0.0f ? x : 0.0f;
    prod *= 1.0f + exp16(-ax);
    if (++factors == 32) {
      flush();
      factors = 0;
    }
  }
  if (factors) flush();
  double lin = 0.0;
  for (int l = 0; l < 16; ++l) lin += pos[l];
  for (; j < m; ++j) lin += softplus_f(z[j]);
  return lin + log_prod;
}

}  // namespace

double enumerate_log_partition(const float* M, const double* lin, const float* other, int n,
                               int64_t m) {
  // Fixed blocks of consecutive Gray-code states: each block's (max, sum) does not depend
  // on the thread count, and the blocks are joined in order.
  const int64_t n_states = int64_t{1} << n;
  const int64_t n_blocks = std::min<int64_t>(n_states, 1024);
  const int64_t per_block = n_states / n_blocks;
  std::vector<double> block_max(n_blocks), block_sum(n_blocks);
#pragma omp parallel
  {
    std::vector<float> z(static_cast<size_t>(m));
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      double mx = -INFINITY, sum = 0.0;
      uint64_t g = 0;
      double lin_s = 0.0;
      for (int64_t k = 0; k < per_block; ++k) {
        const uint64_t idx = static_cast<uint64_t>(blk * per_block + k);
        // Recompute from scratch at the block start and every 64 states (bounds the drift
        // of the incremental float32 field); otherwise flip the one bit Gray code changes.
        if (k % 64 == 0) {
          g = idx ^ (idx >> 1);
          lin_s = 0.0;
          for (int64_t j = 0; j < m; ++j) z[j] = other[j];
          for (int b = 0; b < n; ++b) {
            if (!((g >> b) & 1)) continue;
            lin_s += lin[b];
            const float* row = M + static_cast<int64_t>(b) * m;
            for (int64_t j = 0; j < m; ++j) z[j] += row[j];
          }
        } else {
          const int b = __builtin_ctzll(idx);
          const float s = ((g >> b) & 1) ? -1.0f : 1.0f;
          g ^= uint64_t{1} << b;
          lin_s += s * lin[b];
          const float* row = M + static_cast<int64_t>(b) * m;
          for (int64_t j = 0; j < m; ++j) z[j] += s * row[j];
        }
        const double score = lin_s + softplus_sum(z.data(), m);
        if (score > mx) {
          sum = sum * std::exp(mx - score) + 1.0;
          mx = score;
        } else {
          sum += std::exp(score - mx);
        }
      }
      block_max[blk] = mx;
      block_sum[blk] = sum;
    }
  }
  double mx = -INFINITY;
  for (double v : block_max) mx = std::max(mx, v);
  double total = 0.0;
  for (int64_t blk = 0; blk < n_blocks; ++blk) total += block_sum[blk] * std::exp(block_max[blk] - mx);
  return mx + std::log(total);
}

}  // namespace ebm::cpu
