// Plain views of the continuous-state MCMC chains (csrc/cpu/mcmc_chains.cpp,
// csrc/cuda/mcmc_chains.cu): which built-in energy, which sampler, the chain buffers and
// one chunk of steps. Filled by bindings.cpp; the algorithm is specified in
// python/ebmfast/reference.py (mcmc_chains). Shapes in the comments, (w) = written.
#pragma once
#include <cstdint>

namespace ebm {

// Built-in energies E(x), x in R^d (formulas in reference.py, energy_*).
enum class EnergyKind : int32_t {
  kGaussianDiag = 0,  // 1/2 sum_i p_i (x_i - mu_i)^2
  kGaussianFull = 1,  // 1/2 (x - mu)^T P (x - mu)
  kMixture = 2,       // -log sum_k w_k N(x; mu_k, diag sigma_k^2)
  kDoubleWell = 3,    // a (x_0^2 - 1)^2 + 1/2 sum_{i>0} x_i^2
  kRosenbrock = 4,    // (1/scale) sum_{i<d-1} [b (x_{i+1} - x_i^2)^2 + (a - x_i)^2]
  kRbmFree = 5,       // -b.v - sum_j softplus(c_j + (v W)_j) + a/2 |v|^2 (a = confinement)
};

enum class SamplerKind : int32_t { kRwmh = 0, kMala = 1, kUla = 2 };

struct EnergyView {
  EnergyKind kind = EnergyKind::kGaussianDiag;
  int64_t d = 0;
  const float* mean = nullptr;       // Gaussian: [d]
  const float* precision = nullptr;  // Gaussian: [d] (diag) or [d, d] (full, symmetric)
  int64_t k = 0;                     // mixture components
  const float* log_coef = nullptr;   // mixture: [k] log w_k - sum_i log sigma_ki - d/2 log 2 pi
  const float* means = nullptr;      // mixture: [k, d]
  const float* inv_var = nullptr;    // mixture: [k, d] 1 / sigma_ki^2
  const float* W = nullptr;          // RBM: [d, n_hidden]
  const float* b = nullptr;          // RBM: [d]
  const float* c = nullptr;          // RBM: [n_hidden]
  int64_t n_hidden = 0;
  float a = 1.0f;                    // double well / Rosenbrock a; RBM confinement
  float b_coef = 100.0f;             // Rosenbrock b
  float inv_scale = 1.0f;            // Rosenbrock 1 / scale
};

// The chains: advanced in place.
struct ChainsView {
  float* x = nullptr;           // [n_chains, d] (w)
  float* eps = nullptr;         // [n_chains] step sizes (w when adapting)
  int64_t* n_accept = nullptr;  // [n_chains] (w, += accepted proposals) or null
  int64_t n_chains = 0;
  int64_t d = 0;
};

// One chunk of steps: global steps step .. step + n_steps - 1 of chains chain_offset + row.
struct ChunkPlan {
  SamplerKind sampler = SamplerKind::kRwmh;
  int64_t n_steps = 0;
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t chain_offset = 0;
  bool adapt = false;            // Robbins-Monro on log eps after every step of the chunk
  int64_t adapt_index = 0;       // index k of the chunk's first adapting step (gain (k+1)^-0.6)
  float target_accept = 0.234f;
  float* samples = nullptr;      // [n_steps / thin, n_chains, d] (w) or null
  double* energies = nullptr;    // [n_steps / thin, n_chains] (w) or null
  int64_t thin = 1;              // record after local steps t with (t + 1) % thin == 0
};

constexpr float kLogEpsMin = -20.0f;  // reference.MCMC_LOG_EPS_MIN / MAX
constexpr float kLogEpsMax = 10.0f;
constexpr double kAdaptExponent = 0.6;

}  // namespace ebm
