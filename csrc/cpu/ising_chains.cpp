// Single-site Metropolis / heat-bath sweeps on many independent +-1 spin chains.
//
// Sixteen chains share one block and one SIMD register: lane l holds chain c0 + l, the
// block stores spins and local fields site-major ([n][16] floats), so the update of site
// i is one vector op for all sixteen chains and the couplings J_i. are read once per
// block instead of once per chain. After a site update, the fields of its neighbours are
// moved by J_ij * (s_new - s_old) (O(degree) vector ops, skipped when no lane flipped; for
// dense J the moves of a block of 32 sites are merged, eight rows per pass): nothing is
// recomputed from scratch except every kRefreshSweeps sweeps, which bounds the float32
// drift of the incremental fields.
#include <algorithm>
#include <cstring>
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"
#include "cpu/spin_block.h"

namespace ebm::cpu {

namespace {

using namespace spin_block;

constexpr int64_t kRefreshSweeps = 32;

// One lane's decision against its threshold (heat_bath_thresholds / metropolis_thresholds:
// the four sites' logs are taken sixteen lanes at a time, not one exp per lane and site).
template <bool kGibbs>
EBM_INLINE bool decide_lane(float s, float g, float L, float beta) {
  if constexpr (kGibbs) return (2.0f * beta * g < L) != (s > 0.0f);
  return L < 2.0f * beta * (g * s);
}

template <bool kDense, bool kGibbs>
EBM_INLINE void sweep_random(const Block& B, float beta, uint64_t seed, uint32_t step) {
  const IsingView& P = *B.P;
  const int64_t n = P.n;
  const uint8_t* clamped = B.plan->clamped;
  alignas(64) float u[4 * kLanes], pick[4 * kLanes];
  for (int64_t k0 = 0; k0 < n; k0 += 4) {
    philox_chain_lanes(seed, kStreamAccept, B.chain0, step, static_cast<uint32_t>(k0 / 4), 1, u);
    philox_chain_lanes(seed, kStreamProposal, B.chain0, step, static_cast<uint32_t>(k0 / 4), 1, pick);
    if constexpr (kGibbs) heat_bath_thresholds(u, 4 * kLanes);
    else metropolis_thresholds(u, 4 * kLanes);
    const int64_t k_end = std::min<int64_t>(k0 + 4, n);
    for (int64_t k = k0; k < k_end; ++k) {
      for (int l = 0; l < B.lanes; ++l) {
        const int64_t q = k - k0;
        const int64_t i = std::min<int64_t>(n - 1, static_cast<int64_t>(pick[kLanes * q + l] * static_cast<float>(n)));
        if (clamped != nullptr && clamped[i]) continue;
        int8_t& s = B.S[kLanes * i + l];
        if (!decide_lane<kGibbs>(s, B.F[kLanes * i + l], u[kLanes * q + l], beta)) continue;
        const float d = -2.0f * s;
        s = static_cast<int8_t>(-s);
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
      acc += load_spins(B.S + kLanes * i) * (load16(B.F + kLanes * i) + P.h[i]);
    for (int l = 0; l < kLanes; ++l) e[l] += acc[l];
  }
  for (int l = 0; l < kLanes; ++l) B.energy[l] = 0.5 * e[l];
}

template <bool kDense, bool kGibbs>
EBM_INLINE void run_block(const Block& B, const RngView& rng, double* energy_trace,
                          int64_t chains, int64_t c0, bool fields_given) {
  const SweepPlan& plan = *B.plan;
  if (!fields_given) refresh_fields(*B.P, B.S, B.F);
  for (int64_t t = 0; t < plan.n_sweeps; ++t) {
    const uint32_t step = rng.step + static_cast<uint32_t>(t);
    // On the absolute step, so a run cut into calls (fields handed over) is the same run.
    if (!plan.exact_fields && step % kRefreshSweeps == 0 && (t > 0 || fields_given))
      refresh_fields(*B.P, B.S, B.F);
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
#define EBM_RUN(name, dense, gibbs)                                                        \
  EBM_CLONES void name(const Block& B, const RngView& r, double* e, int64_t c, int64_t c0, \
                       bool given) {                                                       \
    run_block<dense, gibbs>(B, r, e, c, c0, given);                                        \
  }
EBM_RUN(run_dense_metropolis, true, false)
EBM_RUN(run_dense_gibbs, true, true)
EBM_RUN(run_sparse_metropolis, false, false)
EBM_RUN(run_sparse_gibbs, false, true)
#undef EBM_RUN

}  // namespace

void ising_chains(const IsingView& P, const SweepPlan& plan, int8_t* S, int64_t chains,
                  const RngView& rng, int64_t* flips, double* energy_trace, float* fields,
                  bool fields_given) {
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
    int8_t* Sb = scratch<int8_t>(kSlotSpinBlock, static_cast<size_t>(kLanes * n));
    float* Fb = scratch<float>(kSlotFieldBlock, static_cast<size_t>(kLanes * n));
    // Padding lanes hold +1 spins that never flip (their decisions are masked off).
    gather_block(S, n, c0, lanes, Sb);
    int64_t block_flips[kLanes] = {};
    double energy[kLanes];
    const Block B{&P, &plan, Sb, Fb, block_flips, energy, lanes,
                  rng.chain_offset + static_cast<uint32_t>(c0)};
    // fields [chains, n] <-> the block's [n][16]. Padding lanes never flip and are never
    // read into a result: their fields are zeros.
    auto at = [&](int l, int64_t i) -> float& { return Fb[kLanes * i + l]; };
    const bool given = fields != nullptr && fields_given;
    if (given) {
      for (int l = lanes; l < kLanes; ++l)
        for (int64_t i = 0; i < n; ++i) at(l, i) = 0.0f;
      for (int l = 0; l < lanes; ++l)
        for (int64_t i = 0; i < n; ++i) at(l, i) = fields[(c0 + l) * n + i];
    }
    run(B, rng, energy_trace, chains, c0, given);
    scatter_block(Sb, n, c0, lanes, S);
    for (int l = 0; l < lanes; ++l) {
      flips[c0 + l] = block_flips[l];
      if (fields != nullptr)
        for (int64_t i = 0; i < n; ++i) fields[(c0 + l) * n + i] = at(l, i);
    }
  }
}

}  // namespace ebm::cpu
