// Deterministic asynchronous Hopfield recall of many cues at once: y_i <- +1 if z_i > 0,
// -1 if z_i < 0, unchanged if z_i = 0, with z = W y + b, until a fixed point.
//
// The layout of the spin-chain sampler (spin_block.h): sixteen cues per block, spins and
// fields site-major, the flips of a block of 32 sites merged into one pass over the field
// rows and skipped when no lane flipped. Recall converges, so after the first sweep or
// two almost no site flips in any lane: a sweep then costs n vector compares and the field
// work falls to nearly nothing. A lane leaves the block's active set at the first sweep
// boundary where it is a fixed point (no site with y_i z_i < 0).
#include <algorithm>
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"
#include "cpu/spin_block.h"

namespace ebm::cpu {

namespace {

using namespace spin_block;

// Fields are recomputed from scratch every this many sweeps (bounds float32 drift).
constexpr int64_t kRefreshSweeps = 32;

// Lanes (as a mask) holding a site with y_i z_i < 0, i.e. not a fixed point.
EBM_INLINE vi16 unstable_lanes(const int8_t* S, const float* F, int64_t n) {
  vi16 acc = {};
  for (int64_t i = 0; i < n; ++i)
    acc |= (load_spins(S + kLanes * i) * load16(F + kLanes * i)) < 0.0f;
  return acc;
}

// One sequential sweep 0..n-1 of the lanes in `active`; flips of earlier sites of the same
// site block are added to a field on the fly, then merged into F in one pass.
EBM_INLINE void sweep_sequential(const IsingView& P, int8_t* const S, float* const F, vi16 active) {
  const int64_t n = P.n;
  const float* J = P.J;
  int32_t site[kSiteBlock];
  vf16 D[kSiteBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kSiteBlock) {
    const int64_t i_end = std::min<int64_t>(i0 + kSiteBlock, n);
    int m = 0;
    for (int64_t i = i0; i < i_end; ++i) {
      vf16 g = load16(F + kLanes * i);
      for (int q = 0; q < m; ++q) g += J[n * site[q] + i] * D[q];
      const vf16 s = load_spins(S + kLanes * i);
      const vi16 flip = ((g * s) < 0.0f) & active;
      if (!any_lane(flip)) continue;
      const vf16 d = flip ? -2.0f * s : vf16{};
      store_spins(S + kLanes * i, s + d);
      site[m] = static_cast<int32_t>(i);
      D[m++] = d;
    }
    move_fields_lanes(P, site, D, m, F);
  }
}

// One random-order sweep: visit k goes to site floor(u n), u = unit k of kStreamProposal
// at (chain, step), lane by lane (lanes visit different sites).
EBM_INLINE void sweep_random(const IsingView& P, int8_t* S, float* F, vi16 active, uint64_t seed,
                             uint32_t chain0, uint32_t step) {
  const int64_t n = P.n;
  alignas(64) float pick[4 * kLanes];
  for (int64_t k0 = 0; k0 < n; k0 += 4) {
    philox_chain_lanes(seed, kStreamProposal, chain0, step, static_cast<uint32_t>(k0 / 4), 1, pick);
    const int64_t k_end = std::min<int64_t>(k0 + 4, n);
    for (int64_t k = k0; k < k_end; ++k) {
      for (int l = 0; l < kLanes; ++l) {
        if (!active[l]) continue;
        const int64_t i = std::min<int64_t>(
            n - 1, static_cast<int64_t>(pick[kLanes * (k - k0) + l] * static_cast<float>(n)));
        int8_t& s = S[kLanes * i + l];
        if (!(s * F[kLanes * i + l] < 0.0f)) continue;
        const float d = -2.0f * s;
        s = static_cast<int8_t>(-s);
        move_fields_lane<true>(P, i, l, d, F);
      }
    }
  }
}

template <bool kRandom>
EBM_INLINE void recall_block(const IsingView& P, int8_t* S, float* F, int lanes, int64_t max_sweeps,
                             const RngView& rng, uint32_t chain0, int32_t* sweeps, uint8_t* converged) {
  vi16 active = {};
  for (int l = 0; l < kLanes; ++l) active[l] = l < lanes ? -1 : 0;
  refresh_fields(P, S, F);
  for (int64_t t = 0;; ++t) {
    if (t > 0 && t % kRefreshSweeps == 0) refresh_fields(P, S, F);
    const vi16 moving = unstable_lanes(S, F, P.n) & active;
    for (int l = 0; l < lanes; ++l)
      if (active[l] && !moving[l]) {
        sweeps[l] = static_cast<int32_t>(t);
        converged[l] = 1;
      }
    active = moving;
    if (!any_lane(active)) return;
    if (t == max_sweeps) break;
    if constexpr (kRandom)
      sweep_random(P, S, F, active, rng.seed, chain0, rng.step + static_cast<uint32_t>(t));
    else
      sweep_sequential(P, S, F, active);
  }
  for (int l = 0; l < lanes; ++l)
    if (active[l]) {
      sweeps[l] = static_cast<int32_t>(max_sweeps);
      converged[l] = 0;
    }
}

EBM_CLONES void recall_block_sequential(const IsingView& P, int8_t* S, float* F, int lanes,
                                        int64_t max_sweeps, const RngView& rng, uint32_t chain0,
                                        int32_t* sweeps, uint8_t* converged) {
  recall_block<false>(P, S, F, lanes, max_sweeps, rng, chain0, sweeps, converged);
}

EBM_CLONES void recall_block_random(const IsingView& P, int8_t* S, float* F, int lanes,
                                    int64_t max_sweeps, const RngView& rng, uint32_t chain0,
                                    int32_t* sweeps, uint8_t* converged) {
  recall_block<true>(P, S, F, lanes, max_sweeps, rng, chain0, sweeps, converged);
}

}  // namespace

void hopfield_recall(const IsingView& P, int8_t* S, int64_t cues, int64_t max_sweeps,
                     bool random_order, const RngView& rng, int32_t* sweeps, uint8_t* converged) {
  const int64_t n = P.n;
  const int64_t n_blocks = ceil_div(cues, kLanes);
  auto* run = random_order ? &recall_block_random : &recall_block_sequential;
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t c0 = blk * kLanes;
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, cues - c0));
    int8_t* Sb = scratch<int8_t>(kSlotSpinBlock, static_cast<size_t>(kLanes * n));
    float* Fb = scratch<float>(kSlotFieldBlock, static_cast<size_t>(kLanes * n));
    gather_block(S, n, c0, lanes, Sb);
    run(P, Sb, Fb, lanes, max_sweeps, rng, rng.chain_offset + static_cast<uint32_t>(c0),
        sweeps + c0, converged + c0);
    for (int l = 0; l < lanes; ++l)
      for (int64_t i = 0; i < n; ++i) S[(c0 + l) * n + i] = Sb[kLanes * i + l];
  }
}

}  // namespace ebm::cpu
