// Free energy and the full (deterministic) pseudo-log-likelihood of a Bernoulli RBM.
//   F(v) = -b.v - sum_j softplus(c_j + (vW)_j)
//   log p(v_i | v_-i) = log sigmoid(F(v with bit i flipped) - F(v))
// Flipping bit i moves the hidden field by s_i W[i, :] (s_i = 1 - 2 v_i), so all n_v
// flips of a row cost n_v * n_h softplus evaluations and no further products.
#include <omp.h>
#include <cmath>
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
