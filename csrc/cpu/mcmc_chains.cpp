// Continuous-state MCMC chains on the CPU: random-walk Metropolis-Hastings, MALA and
// unadjusted Langevin on the built-in energies of common/mcmc_views.h. Reached from
// bindings.cpp (`mcmc_run_chunk`) with the GIL released; the algorithm, its random
// numbers and the step-size adaptation are specified in reference.py (mcmc_chains).
//
// Layout of the work: chains are cut into fixed groups of kGroup; one thread runs all the
// steps of a chunk for one group (its states stay in L1/L2), so results never depend on
// the thread count. Per step the group draws every Philox block it needs (ceil(d/2)
// proposal blocks + 1 acceptance block per chain) sixteen counters at a time, so the ten
// Philox rounds vectorise even for d = 2, then turns them into normals (Box-Muller with
// polynomial log and cos), proposes, evaluates the energy and accepts per chain. For
// d <= kSoaMaxD and the energies that have it (all but the RBM free energy) the group
// is held structure-of-arrays instead, so energy, acceptance and selection run 16 chains
// per vector instruction (run_group_soa); the random numbers are the same.
// The (energy, sampler) pair becomes template parameters at one dispatch point
// (mcmc_run_chunk); the inner loops carry no option branches.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/mcmc_views.h"
#include "common/philox.h"
#include "cpu/mcmc_chains.h"
#include "cpu/philox_run.h"
#include "cpu/simd.h"

namespace ebm::cpu {
namespace {

constexpr int kGroup = 16;  // chains per task
constexpr int kLanes = 16;  // Philox counters per vectorised batch

// ---------------------------------------------------------------- random numbers

// cos(2 pi u) for u in [0, 1), branch-free (Cephes sinf/cosf polynomials on [0, pi/4]):
// fold u to a in [0, 1/4] with cos(2 pi u) = sign * cos(2 pi a), then take
// cos(w) or sin(pi/2 - w) whichever argument is <= pi/4. Error ~1e-7 absolute.
EBM_INLINE float cos_2pi(float u) {
  const float r = u >= 0.5f ? 1.0f - u : u;         // cos(2 pi u) = cos(2 pi (1 - u))
  const bool flip = r > 0.25f;                       // cos(2 pi r) = -cos(2 pi (1/2 - r))
  const float a = flip ? 0.5f - r : r;               // [0, 1/4]
  const bool use_sin = a > 0.125f;
  const float w = 6.28318530717958648f * (use_sin ? 0.25f - a : a);  // [0, pi/4]
  const float w2 = w * w;
  const float c = 1.0f - 0.5f * w2 +
                  w2 * w2 * (4.166664568298827e-2f + w2 * (-1.388731625493765e-3f +
                                                           w2 * 2.443315711809948e-5f));
  const float s = w + w * w2 * (-1.6666654611e-1f + w2 * (8.3321608736e-3f +
                                                          w2 * -1.9515295891e-4f));
  const float v = use_sin ? s : c;
  return flip ? -v : v;
}

// sum_{i<n} f(i) in eight interleaved partial sums, added pairwise at the end: a fixed
// order (so results never depend on the machine's vector width or thread count) that the
// compiler can keep in one vector register. A plain `s += f(i)` is a serial chain of
// float adds that strict IEEE order forbids vectorising (4 cycles per element).
// Below 16 terms a plain serial sum is cheaper (still a fixed order for a given n).
template <class F>
EBM_INLINE float sum8(int64_t n, F f) {
  if (n < 16) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) s += f(i);
    return s;
  }
  float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += f(i + l);
  for (int l = 0; i + l < n; ++l) acc[l] += f(i + l);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// ---------------------------------------------------------------- energies
// Each: eval<kGrad>(x [d], g [d] (w, when kGrad), scratch) -> E(x). Those with kSoa also
// have evalv<kGrad>(X, G, e, scratch): the same formula for a whole group of kGroup chains
// stored structure-of-arrays (X[i * kGroup + l] = coordinate i of chain l), so the loops
// over l run kGroup chains per vector instruction (the small-d path, run_group_soa).
constexpr int kSoaMaxD = 8;

struct GaussianDiag {
  const EnergyView& v;
  template <bool kGrad>
  EBM_INLINE float eval(const float* x, float* g, float*) const {
    const float* mu = v.mean;
    const float* p = v.precision;
    if (kGrad)
      for (int64_t i = 0; i < v.d; ++i) g[i] = p[i] * (x[i] - mu[i]);
    return 0.5f * sum8(v.d, [&](int64_t i) {
      const float r = x[i] - mu[i];
      return p[i] * r * r;
    });
  }
  static constexpr bool kSoa = true;
  template <bool kGrad>
  EBM_INLINE void evalv(const float* X, float* G, float* e, float*) const {
    float acc[kGroup] = {};
    for (int64_t i = 0; i < v.d; ++i) {
      const float mu = v.mean[i], p = v.precision[i];
      for (int l = 0; l < kGroup; ++l) {
        const float r = X[i * kGroup + l] - mu;
        if (kGrad) G[i * kGroup + l] = p * r;
        acc[l] += p * r * r;
      }
    }
    for (int l = 0; l < kGroup; ++l) e[l] = 0.5f * acc[l];
  }
  int64_t scratch() const { return 0; }
};

struct GaussianFull {
  const EnergyView& v;
  template <bool kGrad>
  EBM_INLINE float eval(const float* x, float* g, float* r) const {
    const int64_t d = v.d;
    for (int64_t i = 0; i < d; ++i) r[i] = x[i] - v.mean[i];
    float e = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      const float* row = v.precision + i * d;
      const float acc = sum8(d, [&](int64_t j) { return row[j] * r[j]; });
      if (kGrad) g[i] = acc;
      e += acc * r[i];
    }
    return 0.5f * e;
  }
  static constexpr bool kSoa = true;
  template <bool kGrad>
  EBM_INLINE void evalv(const float* X, float* G, float* e, float* R) const {
    const int64_t d = v.d;
    for (int64_t i = 0; i < d; ++i)
      for (int l = 0; l < kGroup; ++l) R[i * kGroup + l] = X[i * kGroup + l] - v.mean[i];
    float acc_e[kGroup] = {};
    for (int64_t i = 0; i < d; ++i) {
      float acc[kGroup] = {};
      for (int64_t j = 0; j < d; ++j) {
        const float pij = v.precision[i * d + j];
        for (int l = 0; l < kGroup; ++l) acc[l] += pij * R[j * kGroup + l];
      }
      for (int l = 0; l < kGroup; ++l) {
        if (kGrad) G[i * kGroup + l] = acc[l];
        acc_e[l] += acc[l] * R[i * kGroup + l];
      }
    }
    for (int l = 0; l < kGroup; ++l) e[l] = 0.5f * acc_e[l];
  }
  int64_t scratch() const { return v.d; }
};

struct Mixture {
  const EnergyView& v;
  template <bool kGrad>
  EBM_INLINE float eval(const float* x, float* g, float* logc) const {
    const int64_t d = v.d, K = v.k;
    float m = -3.0e38f;
    for (int64_t k = 0; k < K; ++k) {
      const float* mu = v.means + k * d;
      const float* iv = v.inv_var + k * d;
      const float q = sum8(d, [&](int64_t i) {
        const float r = x[i] - mu[i];
        return r * r * iv[i];
      });
      logc[k] = v.log_coef[k] - 0.5f * q;
      m = std::max(m, logc[k]);
    }
    float s = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      logc[k] = exp_f(logc[k] - m);
      s += logc[k];
    }
    if (kGrad) {
      const float inv_s = 1.0f / s;
      for (int64_t i = 0; i < d; ++i) g[i] = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const float r = logc[k] * inv_s;  // responsibility of component k
        const float* mu = v.means + k * d;
        const float* iv = v.inv_var + k * d;
        for (int64_t i = 0; i < d; ++i) g[i] += r * (x[i] - mu[i]) * iv[i];
      }
    }
    return -(m + log_f(s));
  }
  static constexpr bool kSoa = true;
  // scratch: [k, kGroup] the components' log terms, then their weights
  template <bool kGrad>
  EBM_INLINE void evalv(const float* X, float* G, float* e, float* W) const {
    const int64_t d = v.d, K = v.k;
    float m[kGroup], s[kGroup];
    for (int l = 0; l < kGroup; ++l) m[l] = -3.0e38f;
    for (int64_t k = 0; k < K; ++k) {
      float q[kGroup] = {};
      for (int64_t i = 0; i < d; ++i) {
        const float mu = v.means[k * d + i], iv = v.inv_var[k * d + i];
        for (int l = 0; l < kGroup; ++l) {
          const float r = X[i * kGroup + l] - mu;
          q[l] += r * r * iv;
        }
      }
      for (int l = 0; l < kGroup; ++l) {
        W[k * kGroup + l] = v.log_coef[k] - 0.5f * q[l];
        m[l] = std::max(m[l], W[k * kGroup + l]);
      }
    }
    for (int l = 0; l < kGroup; ++l) s[l] = 0.0f;
    for (int64_t k = 0; k < K; ++k)
      for (int l = 0; l < kGroup; l += 8) {
        const vf8 w = exp8(load8(W + k * kGroup + l) - load8(m + l));  // = exp_f
        store8(W + k * kGroup + l, w);
        store8(s + l, load8(s + l) + w);
      }
    for (int l = 0; l < kGroup; ++l) e[l] = -(m[l] + log_f(s[l]));
    if (kGrad) {
      for (int l = 0; l < kGroup; ++l) s[l] = 1.0f / s[l];
      for (int64_t i = 0; i < d * kGroup; ++i) G[i] = 0.0f;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < d; ++i) {
          const float mu = v.means[k * d + i], iv = v.inv_var[k * d + i];
          for (int l = 0; l < kGroup; ++l)  // responsibility * (x - mu) / sigma^2
            G[i * kGroup + l] += (W[k * kGroup + l] * s[l]) * (X[i * kGroup + l] - mu) * iv;
        }
    }
  }
  int64_t scratch() const { return v.k; }
};

struct DoubleWell {
  const EnergyView& v;
  template <bool kGrad>
  EBM_INLINE float eval(const float* x, float* g, float*) const {
    const float x0 = x[0], q = x0 * x0 - 1.0f;
    if (kGrad)
      for (int64_t i = 1; i < v.d; ++i) g[i] = x[i];
    const float e = sum8(v.d - 1, [&](int64_t i) { return x[i + 1] * x[i + 1]; });
    if (kGrad) g[0] = 4.0f * v.a * x0 * q;
    return v.a * q * q + 0.5f * e;
  }
  static constexpr bool kSoa = true;
  template <bool kGrad>
  EBM_INLINE void evalv(const float* X, float* G, float* e, float*) const {
    float acc[kGroup] = {};
    for (int64_t i = 1; i < v.d; ++i)
      for (int l = 0; l < kGroup; ++l) {
        const float x = X[i * kGroup + l];
        if (kGrad) G[i * kGroup + l] = x;
        acc[l] += x * x;
      }
    for (int l = 0; l < kGroup; ++l) {
      const float x0 = X[l], q = x0 * x0 - 1.0f;
      if (kGrad) G[l] = 4.0f * v.a * x0 * q;
      e[l] = v.a * q * q + 0.5f * acc[l];
    }
  }
  int64_t scratch() const { return 0; }
};

struct Rosenbrock {
  const EnergyView& v;
  template <bool kGrad>
  EBM_INLINE float eval(const float* x, float* g, float*) const {
    const float a = v.a, b = v.b_coef, is = v.inv_scale;
    float e = 0.0f;
    if (kGrad) g[0] = 0.0f;
    for (int64_t i = 0; i + 1 < v.d; ++i) {
      const float t = x[i + 1] - x[i] * x[i], r = a - x[i];
      e += b * t * t + r * r;
      if (kGrad) {
        g[i] = (g[i] - 4.0f * b * x[i] * t - 2.0f * r) * is;
        g[i + 1] = 2.0f * b * t;  // completed (and scaled) at the next i, or below
      }
    }
    if (kGrad) g[v.d - 1] *= is;
    return e * is;
  }
  static constexpr bool kSoa = true;
  template <bool kGrad>
  EBM_INLINE void evalv(const float* X, float* G, float* e, float*) const {
    const float a = v.a, b = v.b_coef, is = v.inv_scale;
    float acc[kGroup] = {};
    if (kGrad)
      for (int l = 0; l < kGroup; ++l) G[l] = 0.0f;
    for (int64_t i = 0; i + 1 < v.d; ++i)
      for (int l = 0; l < kGroup; ++l) {
        const float xi = X[i * kGroup + l], t = X[(i + 1) * kGroup + l] - xi * xi, r = a - xi;
        acc[l] += b * t * t + r * r;
        if (kGrad) {
          G[i * kGroup + l] = (G[i * kGroup + l] - 4.0f * b * xi * t - 2.0f * r) * is;
          G[(i + 1) * kGroup + l] = 2.0f * b * t;
        }
      }
    for (int l = 0; l < kGroup; ++l) {
      if (kGrad) G[(v.d - 1) * kGroup + l] *= is;
      e[l] = acc[l] * is;
    }
  }
  int64_t scratch() const { return 0; }
};

struct RbmFree {
  const EnergyView& v;
  template <bool kGrad>
  EBM_INLINE float eval(const float* x, float* g, float* z) const {
    const int64_t d = v.d, nh = v.n_hidden;
    for (int64_t j = 0; j < nh; ++j) z[j] = v.c[j];
    float e = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      const float xi = x[i];
      const float* w = v.W + i * nh;
      for (int64_t j = 0; j < nh; ++j) z[j] += xi * w[j];
      e -= v.b[i] * xi - 0.5f * v.a * xi * xi;
    }
    for (int64_t j = 0; j < nh; ++j) {
      e -= softplus_f(z[j]);
      z[j] = sigmoid_f(z[j]);
    }
    if (kGrad) {
      for (int64_t i = 0; i < d; ++i) {
        const float* w = v.W + i * nh;
        const float acc = sum8(nh, [&](int64_t j) { return w[j] * z[j]; });
        g[i] = -v.b[i] - acc + v.a * x[i];
      }
    }
    return e;
  }
  static constexpr bool kSoa = false;
  int64_t scratch() const { return v.n_hidden; }
};

// ---------------------------------------------------------------- the chain loop

struct GroupScratch {
  std::vector<uint32_t> c0, c1, c3;  // [n_blocks padded to kLanes] Philox counters
  std::vector<float> uni;            // [4 * padded blocks]
  std::vector<float> z, y, gx, gy;   // [kGroup * d]
  std::vector<float> ex;             // [kGroup]
  std::vector<float> energy_scratch;
  std::vector<float> soa;            // [6 d kGroup] X, Y, GX, GY, Z, energy scratch (SoA path)
};

// Counters of a group's Philox blocks (ceil(d/2) proposal blocks per chain, then one
// acceptance block per chain when kAccept); returns the number of proposal blocks per chain.
EBM_INLINE int64_t setup_counters(const ChunkPlan& P, int64_t first, int g, int64_t d,
                                  bool accept, GroupScratch& S) {
  const int64_t nbp = (d + 1) / 2;  // proposal blocks per chain: 2 uniforms per dim
  const int64_t n_blocks = g * nbp + (accept ? g : 0);
  const int64_t padded = (n_blocks + kLanes - 1) / kLanes * kLanes + kLanes;
  S.c0.assign(padded, 0); S.c1.assign(padded, 0); S.c3.assign(padded, 0);
  S.uni.resize(4 * padded);
  for (int ci = 0; ci < g; ++ci) {
    const uint32_t chain = P.chain_offset + static_cast<uint32_t>(first + ci);
    for (int64_t b = 0; b < nbp; ++b) {
      S.c0[ci * nbp + b] = static_cast<uint32_t>(b);
      S.c1[ci * nbp + b] = chain;
      S.c3[ci * nbp + b] = kStreamProposal;
    }
    if (accept) {
      S.c1[g * nbp + ci] = chain;
      S.c3[g * nbp + ci] = kStreamAccept;
    }
  }
  return nbp;
}

// The uniforms of one step into S.uni ([4 nbp] per chain, then the acceptance blocks) and
// the normals into S.z (chain ci's at ci * 2 nbp; the last one is unused for odd d).
EBM_INLINE void draw_step(const ChunkPlan& P, int64_t first, int g, int64_t nbp, bool accept,
                          uint32_t step, GroupScratch& S) {
  const int64_t n_blocks = g * nbp + (accept ? g : 0);
  // d >= 8: each chain's proposal blocks are consecutive counters of one (chain, step,
  // stream), the case of the hand-vectorised philox_uniforms; the lane batches then draw
  // only the acceptance blocks.
  const bool runs = nbp >= 4;
  if (runs)
    for (int ci = 0; ci < g; ++ci)
      philox_uniforms(P.seed, kStreamProposal, P.chain_offset + static_cast<uint32_t>(first + ci),
                      step, 0, static_cast<int>(nbp), S.uni.data() + 4 * ci * nbp);
  for (int64_t base = runs ? g * nbp : 0; base < n_blocks; base += kLanes)
    philox_lanes16(S.c0.data() + base, S.c1.data() + base, step, S.c3.data() + base, P.seed,
                   S.uni.data() + 4 * base, false);
  // Normals of the whole group in one flat loop (vectorises across chains for small d).
  const int64_t n_pairs = static_cast<int64_t>(g) * 2 * nbp;
  const float* u = S.uni.data();
  float* z = S.z.data();
  for (int64_t k = 0; k < n_pairs; ++k) {
    const float r = __builtin_sqrtf(-2.0f * log_f(1.0f - u[2 * k]));
    z[k] = r * cos_2pi(u[2 * k + 1]);
  }
}

template <class Energy, SamplerKind kS>
EBM_INLINE void run_group(const Energy& E, const ChainsView& C, const ChunkPlan& P,
                          int64_t first, int g, GroupScratch& S) {
  constexpr bool kGrad = kS != SamplerKind::kRwmh;
  constexpr bool kAccept = kS != SamplerKind::kUla;
  const int64_t d = C.d;
  const int64_t nbp = setup_counters(P, first, g, d, kAccept, S);
  float* const es = S.energy_scratch.data();
  // Energies (and gradients) of the current states: recomputed at every chunk start, so
  // a run cut into chunks equals the run in one piece.
  for (int ci = 0; ci < g; ++ci)
    S.ex[ci] = E.template eval<kGrad>(C.x + (first + ci) * d, S.gx.data() + ci * d, es);

  for (int64_t t = 0; t < P.n_steps; ++t) {
    const uint32_t step = P.step + static_cast<uint32_t>(t);
    draw_step(P, first, g, nbp, kAccept, step, S);
    float gain = 0.0f;
    if (kAccept && P.adapt)
      gain = static_cast<float>(std::pow(static_cast<double>(P.adapt_index + t + 1), -kAdaptExponent));
    for (int ci = 0; ci < g; ++ci) {
      const int64_t chain = first + ci;
      float* x = C.x + chain * d;
      const float* z = S.z.data() + ci * 2 * nbp;
      float* gx = S.gx.data() + ci * d;
      float* y = S.y.data();
      float* gy = S.gy.data();
      const float h = C.eps[chain];
      const float half_h2 = 0.5f * h * h;
      if (kS == SamplerKind::kUla) {
        for (int64_t i = 0; i < d; ++i) x[i] = x[i] - half_h2 * gx[i] + h * z[i];
        S.ex[ci] = E.template eval<true>(x, gx, es);
        if (C.n_accept) C.n_accept[chain] += 1;
      } else {
        if (kS == SamplerKind::kRwmh) {
          for (int64_t i = 0; i < d; ++i) y[i] = x[i] + h * z[i];
        } else {
          for (int64_t i = 0; i < d; ++i) y[i] = x[i] - half_h2 * gx[i] + h * z[i];
        }
        const float ey = E.template eval<kGrad>(y, gy, es);
        float log_alpha = S.ex[ci] - ey;
        if (kS == SamplerKind::kMala) {
          const float zz = sum8(d, [&](int64_t i) { return z[i] * z[i]; });
          const float bb = sum8(d, [&](int64_t i) {
            const float back = x[i] - y[i] + half_h2 * gy[i];
            return back * back;
          });
          log_alpha += 0.5f * zz - bb / (2.0f * h * h);
        }
        const float u = S.uni[4 * (g * nbp + ci)];
        const bool acc = u < exp_f(log_alpha);
        // branch-free: an accept is a coin flip the branch predictor cannot learn
        for (int64_t i = 0; i < d; ++i) x[i] = acc ? y[i] : x[i];
        if (kGrad)
          for (int64_t i = 0; i < d; ++i) gx[i] = acc ? gy[i] : gx[i];
        S.ex[ci] = acc ? ey : S.ex[ci];
        if (C.n_accept) C.n_accept[chain] += acc ? 1 : 0;
        if (P.adapt) {
          // acceptance probability min(1, e^la); NaN (a proposal off the energy's domain) -> 0
          const float alpha = log_alpha >= 0.0f ? 1.0f : (log_alpha == log_alpha ? exp_f(log_alpha) : 0.0f);
          float le = std::log(h) + gain * (alpha - P.target_accept);
          le = std::min(std::max(le, kLogEpsMin), kLogEpsMax);
          C.eps[chain] = std::exp(le);
        }
      }
      if (P.samples != nullptr && (t + 1) % P.thin == 0) {
        const int64_t k = t / P.thin;
        float* out = P.samples + (k * C.n_chains + chain) * d;
        for (int64_t i = 0; i < d; ++i) out[i] = x[i];
        if (P.energies) P.energies[k * C.n_chains + chain] = S.ex[ci];
      }
    }
  }
}

// Small d: the group's states live structure-of-arrays for the whole chunk and every
// per-chain step (proposal, energy, acceptance, selection) runs across the kGroup chains
// at once; the random numbers are the same draws as run_group's. Lanes past the last
// chain of a short group mirror chain 0 and are never written back.
template <class Energy, SamplerKind kS>
EBM_INLINE void run_group_soa(const Energy& E, const ChainsView& C, const ChunkPlan& P,
                              int64_t first, int g, GroupScratch& S) {
  constexpr bool kGrad = kS != SamplerKind::kRwmh;
  constexpr bool kAccept = kS != SamplerKind::kUla;
  const int64_t d = C.d;
  const int64_t nbp = setup_counters(P, first, g, d, kAccept, S);
  const int64_t L = d * kGroup;
  float* X = S.soa.data();
  float* Y = X + L;
  float* GX = Y + L;
  float* GY = GX + L;
  float* Z = GY + L;
  float* ES = Z + L;  // [max(d, energy scratch), kGroup]
  alignas(64) float ex[kGroup], ey[kGroup], h[kGroup], la[kGroup], pa[kGroup], zz[kGroup],
      bb[kGroup];
  alignas(64) int32_t acc[kGroup];  // 0 / 1 (ints, not bools: they feed vector selects)
  static_assert(kGroup % 8 == 0, "the acceptance test runs 8 lanes at a time");
  for (int l = 0; l < kGroup; ++l) {
    const float* x = C.x + (first + (l < g ? l : 0)) * d;
    for (int64_t i = 0; i < d; ++i) X[i * kGroup + l] = x[i];
  }
  E.template evalv<kGrad>(X, GX, ex, ES);
  for (int64_t t = 0; t < P.n_steps; ++t) {
    const uint32_t step = P.step + static_cast<uint32_t>(t);
    draw_step(P, first, g, nbp, kAccept, step, S);
    for (int l = 0; l < kGroup; ++l) {
      const int src = l < g ? l : 0;
      const float* z = S.z.data() + src * 2 * nbp;
      for (int64_t i = 0; i < d; ++i) Z[i * kGroup + l] = z[i];
      h[l] = C.eps[first + src];
    }
    if (kS == SamplerKind::kUla) {
      for (int64_t i = 0; i < d; ++i)
        for (int l = 0; l < kGroup; ++l) {
          const int64_t k = i * kGroup + l;
          X[k] = X[k] - 0.5f * h[l] * h[l] * GX[k] + h[l] * Z[k];
        }
      E.template evalv<true>(X, GX, ex, ES);
      if (C.n_accept)
        for (int l = 0; l < g; ++l) C.n_accept[first + l] += 1;
    } else {
      for (int64_t i = 0; i < d; ++i)
        for (int l = 0; l < kGroup; ++l) {
          const int64_t k = i * kGroup + l;
          Y[k] = kS == SamplerKind::kRwmh ? X[k] + h[l] * Z[k]
                                          : X[k] - 0.5f * h[l] * h[l] * GX[k] + h[l] * Z[k];
        }
      E.template evalv<kGrad>(Y, GY, ey, ES);
      for (int l = 0; l < kGroup; ++l) la[l] = ex[l] - ey[l];
      if (kS == SamplerKind::kMala) {
        for (int l = 0; l < kGroup; ++l) zz[l] = bb[l] = 0.0f;
        for (int64_t i = 0; i < d; ++i)
          for (int l = 0; l < kGroup; ++l) {
            const int64_t k = i * kGroup + l;
            const float back = X[k] - Y[k] + 0.5f * h[l] * h[l] * GY[k];
            zz[l] += Z[k] * Z[k];
            bb[l] += back * back;
          }
        for (int l = 0; l < kGroup; ++l) la[l] += 0.5f * zz[l] - bb[l] / (2.0f * h[l] * h[l]);
      }
      for (int l = 0; l < kGroup; l += 8) store8(pa + l, exp8(load8(la + l)));  // = exp_f
      for (int l = 0; l < kGroup; ++l)
        acc[l] = (l < g && S.uni[4 * (g * nbp + (l < g ? l : 0))] < pa[l]) ? 1 : 0;
      for (int64_t i = 0; i < d; ++i)
        for (int l = 0; l < kGroup; ++l) {
          const int64_t k = i * kGroup + l;
          X[k] = acc[l] != 0 ? Y[k] : X[k];
          if (kGrad) GX[k] = acc[l] != 0 ? GY[k] : GX[k];
        }
      for (int l = 0; l < kGroup; ++l) ex[l] = acc[l] != 0 ? ey[l] : ex[l];
      if (C.n_accept)
        for (int l = 0; l < g; ++l) C.n_accept[first + l] += acc[l];
      if (P.adapt) {
        const float gain = static_cast<float>(
            std::pow(static_cast<double>(P.adapt_index + t + 1), -kAdaptExponent));
        for (int l = 0; l < g; ++l) {
          const float alpha = la[l] >= 0.0f ? 1.0f : (la[l] == la[l] ? pa[l] : 0.0f);
          float le = std::log(h[l]) + gain * (alpha - P.target_accept);
          le = std::min(std::max(le, kLogEpsMin), kLogEpsMax);
          C.eps[first + l] = std::exp(le);
        }
      }
    }
    if (P.samples != nullptr && (t + 1) % P.thin == 0) {
      const int64_t k = t / P.thin;
      for (int l = 0; l < g; ++l) {
        float* out = P.samples + (k * C.n_chains + first + l) * d;
        for (int64_t i = 0; i < d; ++i) out[i] = X[i * kGroup + l];
        if (P.energies) P.energies[k * C.n_chains + first + l] = ex[l];
      }
    }
  }
  for (int l = 0; l < g; ++l) {
    float* x = C.x + (first + l) * d;
    for (int64_t i = 0; i < d; ++i) x[i] = X[i * kGroup + l];
  }
}

template <class Energy, SamplerKind kS>
EBM_CLONES void run_chunk_t(const EnergyView& v, const ChainsView& C, const ChunkPlan& P) {
  const Energy E{v};
  const int64_t n_groups = (C.n_chains + kGroup - 1) / kGroup;
  const int64_t work = C.n_chains * (C.d + 4) * std::max<int64_t>(P.n_steps, 1) *
                       std::max<int64_t>(E.scratch(), 1);
#pragma omp parallel if (parallel_worth(work))
  {
    GroupScratch S;
    S.z.resize(kGroup * 2 * ((C.d + 1) / 2)); S.gx.resize(kGroup * C.d);
    S.y.resize(C.d); S.gy.resize(C.d);
    S.ex.resize(kGroup);
    S.energy_scratch.resize(std::max<int64_t>(E.scratch(), 1));
    const bool soa = Energy::kSoa && C.d <= kSoaMaxD;
    if (soa) S.soa.resize((5 * C.d + std::max<int64_t>(C.d, E.scratch())) * kGroup);
#pragma omp for schedule(dynamic, 1)
    for (int64_t grp = 0; grp < n_groups; ++grp) {
      const int64_t first = grp * kGroup;
      const int g = static_cast<int>(std::min<int64_t>(kGroup, C.n_chains - first));
      if constexpr (Energy::kSoa) {
        if (soa) {
          run_group_soa<Energy, kS>(E, C, P, first, g, S);
          continue;
        }
      }
      run_group<Energy, kS>(E, C, P, first, g, S);
    }
  }
}

template <class Energy>
void dispatch_sampler(const EnergyView& v, const ChainsView& C, const ChunkPlan& P) {
  switch (P.sampler) {
    case SamplerKind::kRwmh: return run_chunk_t<Energy, SamplerKind::kRwmh>(v, C, P);
    case SamplerKind::kMala: return run_chunk_t<Energy, SamplerKind::kMala>(v, C, P);
    case SamplerKind::kUla: return run_chunk_t<Energy, SamplerKind::kUla>(v, C, P);
  }
}

}  // namespace

// The one dispatch point: (energy kind, sampler) -> template instance.
void mcmc_run_chunk(const EnergyView& v, const ChainsView& C, const ChunkPlan& P) {
  if (C.n_chains <= 0 || P.n_steps <= 0) return;
  switch (v.kind) {
    case EnergyKind::kGaussianDiag: return dispatch_sampler<GaussianDiag>(v, C, P);
    case EnergyKind::kGaussianFull: return dispatch_sampler<GaussianFull>(v, C, P);
    case EnergyKind::kMixture: return dispatch_sampler<Mixture>(v, C, P);
    case EnergyKind::kDoubleWell: return dispatch_sampler<DoubleWell>(v, C, P);
    case EnergyKind::kRosenbrock: return dispatch_sampler<Rosenbrock>(v, C, P);
    case EnergyKind::kRbmFree: return dispatch_sampler<RbmFree>(v, C, P);
  }
}

void mcmc_energy(const EnergyView& v, const float* X, int64_t n, float* energy, float* grad) {
  auto run = [&](auto E) {
#pragma omp parallel if (parallel_worth(n * v.d * std::max<int64_t>(E.scratch(), 1)))
    {
      std::vector<float> s(std::max<int64_t>(E.scratch(), 1)), g(v.d);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < n; ++r) {
        float* gr = grad ? grad + r * v.d : g.data();
        energy[r] = E.template eval<true>(X + r * v.d, gr, s.data());
      }
    }
  };
  switch (v.kind) {
    case EnergyKind::kGaussianDiag: return run(GaussianDiag{v});
    case EnergyKind::kGaussianFull: return run(GaussianFull{v});
    case EnergyKind::kMixture: return run(Mixture{v});
    case EnergyKind::kDoubleWell: return run(DoubleWell{v});
    case EnergyKind::kRosenbrock: return run(Rosenbrock{v});
    case EnergyKind::kRbmFree: return run(RbmFree{v});
  }
}

}  // namespace ebm::cpu
