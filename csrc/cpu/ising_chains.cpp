// Single-site Metropolis / heat-bath sweeps on many independent +-1 spin chains.
//
// Sixteen chains share one block and one SIMD register: lane l holds chain c0 + l, the
// block stores spins and local fields site-major ([n][16] floats), so the update of site
// i is one vector op for all sixteen chains and the couplings J_i. are read once per
// block instead of once per chain. After a site update, the fields of its neighbours are
// moved by J_ij * (s_new - s_old) (O(degree) vector ops, skipped when no lane flipped):
// nothing is recomputed from scratch except every kRefreshSweeps sweeps, which bounds the
// float32 drift of the incremental fields.
#include <algorithm>
#include <cstring>
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"

namespace ebm::cpu {

namespace {

constexpr int kLanes = 16;
constexpr int64_t kRefreshSweeps = 32;

struct Block {
  const IsingView* P;
  const SweepPlan* plan;
  float* S;        // [n][16] spins of the block's chains
  float* F;        // [n][16] local fields g = h + J s
  int64_t* flips;  // [16]
  double* energy;  // [16] per sweep, scratch
  int lanes;       // valid lanes (the last block may be partial)
  uint32_t chain0; // Philox chain of lane 0
};

EBM_INLINE bool any_lane(vi16 m) {
  uint64_t w[8];
  std::memcpy(w, &m, sizeof w);
  return (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0;
}

// F = h + J S for the whole block (dense: one sgemm; CSR: row by row).
void refresh_fields(const IsingView& P, const float* S, float* F) {
  const int64_t n = P.n;
  if (P.J != nullptr) {
    gemm_block(false, n, kLanes, n, 1.0f, P.J, n, S, kLanes, F, kLanes);
    for (int64_t i = 0; i < n; ++i) store16(F + kLanes * i, load16(F + kLanes * i) + P.h[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    vf16 acc = splat16(P.h[i]);
    for (int64_t k = P.indptr[i]; k < P.indptr[i + 1]; ++k)
      acc += P.data[k] * load16(S + kLanes * P.indices[k]);
    store16(F + kLanes * i, acc);
  }
}

// Fields of every neighbour j of site i move by J_ij * d (d = s_new - s_old per lane).
template <bool kDense>
EBM_INLINE void move_fields(const IsingView& P, int64_t i, vf16 d, float* F) {
  if constexpr (kDense) {
    const float* row = P.J + P.n * i;
    for (int64_t j = 0; j < P.n; ++j) store16(F + kLanes * j, load16(F + kLanes * j) + row[j] * d);
  } else {
    for (int64_t k = P.indptr[i]; k < P.indptr[i + 1]; ++k) {
      float* f = F + kLanes * P.indices[k];
      store16(f, load16(f) + P.data[k] * d);
    }
  }
}

// The scalar counterpart for one lane (random order: lanes visit different sites).
template <bool kDense>
EBM_INLINE void move_fields_lane(const IsingView& P, int64_t i, int l, float d, float* F) {
  if constexpr (kDense) {
    const float* row = P.J + P.n * i;
    for (int64_t j = 0; j < P.n; ++j) F[kLanes * j + l] += row[j] * d;
  } else {
    for (int64_t k = P.indptr[i]; k < P.indptr[i + 1]; ++k)
      F[kLanes * P.indices[k] + l] += P.data[k] * d;
  }
}

// True where the proposal flip of spin s with field g is taken (u uniform in [0, 1)).
// Metropolis: u < exp(-beta dE) with dE = -2 s g. Heat bath: s_new = +1 iff u < p(+1) =
// 1 / (1 + exp(2 beta g)), a flip where that differs from s.
template <bool kGibbs>
EBM_INLINE vi16 decide(vf16 s, vf16 g, vf16 u, float beta) {
  if constexpr (kGibbs) {
    const vf16 p_up = 1.0f / (1.0f + exp16((2.0f * beta) * g));
    return (u < p_up) != (s > 0.0f);
  } else {
    return u < exp16((2.0f * beta) * (g * s));
  }
}

template <bool kGibbs>
EBM_INLINE bool decide_lane(float s, float g, float u, float beta) {
  if constexpr (kGibbs) {
    const float p_up = 1.0f / (1.0f + exp_f(2.0f * beta * g));
    return (u < p_up) != (s > 0.0f);
  } else {
    return u < exp_f(2.0f * beta * (g * s));
  }
}

template <bool kDense, bool kGibbs>
EBM_INLINE void sweep_sequential(const Block& B, float beta, uint64_t seed, uint32_t step) {
  const IsingView& P = *B.P;
  const uint8_t* clamped = B.plan->clamped;
  vi16 valid = {}, count = {};
  for (int l = 0; l < kLanes; ++l) valid[l] = l < B.lanes ? -1 : 0;
  alignas(64) float u[4 * kLanes];
  for (int64_t i0 = 0; i0 < P.n; i0 += 4) {
    philox_chain_lanes(seed, kStreamAccept, B.chain0, step, static_cast<uint32_t>(i0 / 4), u);
    const int64_t i_end = std::min<int64_t>(i0 + 4, P.n);
    for (int64_t i = i0; i < i_end; ++i) {
      if (clamped != nullptr && clamped[i]) continue;
      const vf16 s = load16(B.S + kLanes * i);
      const vi16 flip = decide<kGibbs>(s, load16(B.F + kLanes * i), load16(u + kLanes * (i - i0)), beta) & valid;
      if (!any_lane(flip)) continue;
      const vf16 d = flip ? -2.0f * s : vf16{};
      store16(B.S + kLanes * i, s + d);
      count -= flip;
      move_fields<kDense>(P, i, d, B.F);
    }
  }
  for (int l = 0; l < B.lanes; ++l) B.flips[l] += count[l];
}

template <bool kDense, bool kGibbs>
EBM_INLINE void sweep_random(const Block& B, float beta, uint64_t seed, uint32_t step) {
  const IsingView& P = *B.P;
  const int64_t n = P.n;
  const uint8_t* clamped = B.plan->clamped;
  alignas(64) float u[4 * kLanes], pick[4 * kLanes];
  for (int64_t k0 = 0; k0 < n; k0 += 4) {
    philox_chain_lanes(seed, kStreamAccept, B.chain0, step, static_cast<uint32_t>(k0 / 4), u);
    philox_chain_lanes(seed, kStreamProposal, B.chain0, step, static_cast<uint32_t>(k0 / 4), pick);
    const int64_t k_end = std::min<int64_t>(k0 + 4, n);
    for (int64_t k = k0; k < k_end; ++k) {
      for (int l = 0; l < B.lanes; ++l) {
        const int64_t q = kLanes * (k - k0) + l;
        const int64_t i = std::min<int64_t>(n - 1, static_cast<int64_t>(pick[q] * static_cast<float>(n)));
        if (clamped != nullptr && clamped[i]) continue;
        float& s = B.S[kLanes * i + l];
        if (!decide_lane<kGibbs>(s, B.F[kLanes * i + l], u[q], beta)) continue;
        const float d = -2.0f * s;
        s += d;
        ++B.flips[l];
        move_fields_lane<kDense>(P, i, l, d, B.F);
      }
    }
  }
}

// E = sum_i s_i (g_i + h_i) / 2 per lane, float64 across sites.
EBM_INLINE void block_energy(const Block& B) {
  const IsingView& P = *B.P;
  double e[kLanes] = {};
  for (int64_t i0 = 0; i0 < P.n; i0 += 256) {
    vf16 acc = {};
    const int64_t i_end = std::min<int64_t>(i0 + 256, P.n);
    for (int64_t i = i0; i < i_end; ++i)
      acc += load16(B.S + kLanes * i) * (load16(B.F + kLanes * i) + P.h[i]);
    for (int l = 0; l < kLanes; ++l) e[l] += acc[l];
  }
  for (int l = 0; l < kLanes; ++l) B.energy[l] = 0.5 * e[l];
}

template <bool kDense, bool kGibbs>
EBM_INLINE void run_block(const Block& B, const RngView& rng, double* energy_trace,
                          int64_t chains, int64_t c0) {
  const SweepPlan& plan = *B.plan;
  refresh_fields(*B.P, B.S, B.F);
  for (int64_t t = 0; t < plan.n_sweeps; ++t) {
    if (t > 0 && t % kRefreshSweeps == 0) refresh_fields(*B.P, B.S, B.F);
    const uint32_t step = rng.step + static_cast<uint32_t>(t);
    if (plan.random_order)
      sweep_random<kDense, kGibbs>(B, plan.betas[t], rng.seed, step);
    else
      sweep_sequential<kDense, kGibbs>(B, plan.betas[t], rng.seed, step);
    if (energy_trace != nullptr) {
      block_energy(B);
      for (int l = 0; l < B.lanes; ++l) energy_trace[t * chains + c0 + l] = B.energy[l];
    }
  }
}

// One clone set per (coupling storage, acceptance rule): the options are template
// parameters here, never branches in the site loop.
EBM_CLONES void run_dense_metropolis(const Block& B, const RngView& r, double* e, int64_t c, int64_t c0) { run_block<true, false>(B, r, e, c, c0); }
EBM_CLONES void run_dense_gibbs(const Block& B, const RngView& r, double* e, int64_t c, int64_t c0) { run_block<true, true>(B, r, e, c, c0); }
EBM_CLONES void run_sparse_metropolis(const Block& B, const RngView& r, double* e, int64_t c, int64_t c0) { run_block<false, false>(B, r, e, c, c0); }
EBM_CLONES void run_sparse_gibbs(const Block& B, const RngView& r, double* e, int64_t c, int64_t c0) { run_block<false, true>(B, r, e, c, c0); }

}  // namespace

void ising_chains(const IsingView& P, const SweepPlan& plan, int8_t* S, int64_t chains,
                  const RngView& rng, int64_t* flips, double* energy_trace) {
  const int64_t n = P.n;
  const int64_t n_blocks = ceil_div(chains, kLanes);
  const bool dense = P.J != nullptr;
  auto* run = dense ? (plan.gibbs ? &run_dense_gibbs : &run_dense_metropolis)
                    : (plan.gibbs ? &run_sparse_gibbs : &run_sparse_metropolis);
  for (int64_t c = 0; c < chains; ++c) flips[c] = 0;
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t c0 = blk * kLanes;
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, chains - c0));
    float* Sb = scratch<float>(kSlotSpinBlock, static_cast<size_t>(kLanes * n));
    float* Fb = scratch<float>(kSlotFieldBlock, static_cast<size_t>(kLanes * n));
    // Padding lanes hold +1 spins that never flip (their decisions are masked off).
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < kLanes; ++l)
        Sb[kLanes * i + l] = l < lanes ? static_cast<float>(S[(c0 + l) * n + i]) : 1.0f;
    int64_t block_flips[kLanes] = {};
    double energy[kLanes];
    const Block B{&P, &plan, Sb, Fb, block_flips, energy, lanes,
                  rng.chain_offset + static_cast<uint32_t>(c0)};
    run(B, rng, energy_trace, chains, c0);
    for (int l = 0; l < lanes; ++l) {
      flips[c0 + l] = block_flips[l];
      for (int64_t i = 0; i < n; ++i) S[(c0 + l) * n + i] = Sb[kLanes * i + l] > 0.0f ? 1 : -1;
    }
  }
}

}  // namespace ebm::cpu
