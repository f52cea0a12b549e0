// Deterministic asynchronous Hopfield recall of many cues at once: y_i <- +1 if z_i > 0,
// -1 if z_i < 0, unchanged if z_i = 0, with z = W y + b, until a fixed point.
//
// Cues go in tiles of 128 (one task each): the tile's first fields come from one sgemm and
// the tile is then recalled while it is in cache, sixteen cues per block (the blocking of
// the spin-chain sampler, spin_block.h). Spins and fields are lane-major (row l = cue
// c0 + l), unlike the sampler's site-major blocks: recall flips ~10% of a cue's units in
// its first sweep and almost none after, so a site that flips in some lane flips in one or
// two of sixteen, and the sampler's merged sixteen-lane field moves did ~8x the useful work
// (measured: 170 ms against 150 ms for the benchmark's 10,000 cues, N = 1024, 2 threads).
// Instead each cue sweeps by itself: unstable sites are found sixteen at a time with one
// vector compare, and a flip moves the cue's field row (4 KB at N = 1024, in L1) at once;
// the sixteen cues of a block walk the sites in step, 64 at a time, so the W rows of
// their flips are shared through L2.
// Convergence then costs n/16 compares per cue and sweep. The first fields are the floor
// (the first sweep needs every field of every cue): they come from the spin table
// (spin_table.h, n^2/4 signed adds per cue instead of a GEMM's n^2 multiply-adds).
#include <algorithm>
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"
#include "cpu/spin_block.h"
#include "cpu/spin_table.h"

namespace ebm::cpu {

namespace {

using namespace spin_block;

// Fields are recomputed from scratch every this many sweeps (bounds float32 drift).
constexpr int64_t kRefreshSweeps = 32;

// Sites per step of a block's lanes in a sequential sweep (64 rows of W = 256 KB at
// N = 1024, held in L2 while the sixteen lanes pass; 16 and 256 measured slower).
constexpr int64_t kSiteChunk = 64;

// F = b + S W for the block, S [16][n] float spins: one sgemm (W symmetric).
inline void refresh_fields_lane_major(const IsingView& P, const float* S, float* F) {
  const int64_t n = P.n;
  gemm_block(false, kLanes, n, n, 1.0f, S, n, P.J, n, F, n);
  for (int l = 0; l < kLanes; ++l)
    for (int64_t j = 0; j < n; ++j) F[n * l + j] += P.h[j];
}

// The lanes of a mask as bits (bit l = lane l).
EBM_INLINE unsigned lane_bits(vi16 m) {
  unsigned bits = 0;
  for (int l = 0; l < kLanes; ++l) bits |= static_cast<unsigned>(m[l] & 1) << l;
  return bits;
}

// Lanes (as a mask) holding a site with y_i z_i < 0, i.e. not a fixed point.
EBM_INLINE vi16 unstable_lanes(const float* S, const float* F, int64_t n) {
  vi16 acc = {};
  for (int l = 0; l < kLanes; ++l) {
    vi16 row = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) row |= (load16(S + n * l + i) * load16(F + n * l + i)) < 0.0f;
    bool any = any_lane(row);
    for (; i < n; ++i) any |= S[n * l + i] * F[n * l + i] < 0.0f;
    acc[l] = any ? -1 : 0;
  }
  return acc;
}

// f [n] += sum_q d[q] W[site[q]] for M rows at once (one pass over f).
// f [n] += d W[i] (W symmetric: row i = column i).
EBM_INLINE void move_row(const float* J, int64_t n, int64_t i, float d, float* f) {
  const float* row = J + n * i;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) store16(f + j, load16(f + j) + d * load16(row + j));
  for (; j < n; ++j) f[j] += d * row[j];
}

// Sites [i, i_end) of a sequential sweep of one cue (s, f its spin and field rows). Unstable sites
// (y_i z_i < 0) are found sixteen at a time; a flip moves the field row at once (W_ii = 0:
// z_i itself does not move). Returns whether anything flipped.
EBM_INLINE bool sweep_lane(const float* J, int64_t n, int64_t i, int64_t i_end, float* s, float* f) {
  bool any = false;
  while (i < i_end) {
    if (i + 16 <= i_end) {
      const unsigned bits = lane_bits((load16(s + i) * load16(f + i)) < 0.0f);
      if (bits == 0) {
        i += 16;
        continue;
      }
      i += __builtin_ctz(bits);
    } else if (!(s[i] * f[i] < 0.0f)) {
      ++i;
      continue;
    }
    const float d = -2.0f * s[i];
    s[i] = -s[i];
    move_row(J, n, i, d, f);
    any = true;
    ++i;
  }
  return any;
}

// One random-order sweep: visit k goes to site floor(u n), u = unit k of kStreamProposal
// at (chain, step), lane by lane (lanes visit different sites).
EBM_INLINE void sweep_random(const IsingView& P, float* S, float* F, vi16 active, uint64_t seed,
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
        float& s = S[n * l + i];
        if (!(s * F[n * l + i] < 0.0f)) continue;
        const float d = -2.0f * s;
        s = -s;
        move_row(P.J, n, i, d, F + n * l);
      }
    }
  }
}

// Per lane: sweeps run before the state was a fixed point, and whether it got there.
// Sequential order needs no separate test after a sweep: a sweep without flips in a lane
// proves that lane was a fixed point when it began (every site was visited and found
// stable), so sweeps = the number of sweeps that flipped something. Random order visits
// sites with replacement and tests every site before each sweep.
template <bool kRandom>
EBM_INLINE void recall_block(const IsingView& P, float* S, float* F, int lanes, int64_t max_sweeps,
                             const RngView& rng, uint32_t chain0, int32_t* sweeps, uint8_t* converged) {
  const int64_t n = P.n;
  vi16 active = {};
  for (int l = 0; l < kLanes; ++l) active[l] = l < lanes ? -1 : 0;
  auto settle = [&](vi16 moving, int64_t t) {  // lanes of `active` not in `moving` stop at t
    for (int l = 0; l < lanes; ++l)
      if (active[l] && !moving[l]) {
        sweeps[l] = static_cast<int32_t>(t);
        converged[l] = 1;
      }
    active &= moving;
  };
  for (int64_t t = 0; t < max_sweeps; ++t) {  // F holds the fields of S on entry
    if (t > 0 && t % kRefreshSweeps == 0) refresh_fields_lane_major(P, S, F);
    if constexpr (kRandom) {
      settle(unstable_lanes(S, F, n), t);
      if (!any_lane(active)) return;
      sweep_random(P, S, F, active, rng.seed, chain0, rng.step + static_cast<uint32_t>(t));
    } else {
      // The lanes walk the sites in step, kSiteChunk at a time, so that the W rows their
      // flips read are shared through L2 (a lane alone would fetch each from L3).
      vi16 flipped = {};
      const unsigned lanes_on = lane_bits(active);
      for (int64_t i0 = 0; i0 < n; i0 += kSiteChunk) {
        const int64_t i1 = std::min<int64_t>(i0 + kSiteChunk, n);
        for (unsigned bits = lanes_on; bits != 0; bits &= bits - 1) {
          const int l = __builtin_ctz(bits);
          if (sweep_lane(P.J, n, i0, i1, S + n * l, F + n * l)) flipped[l] = -1;
        }
      }
      settle(flipped, t);
      if (!any_lane(active)) return;
    }
  }
  if (max_sweeps > 0 && max_sweeps % kRefreshSweeps == 0) refresh_fields_lane_major(P, S, F);
  settle(unstable_lanes(S, F, n), max_sweeps);
  for (int l = 0; l < lanes; ++l)
    if (active[l]) {
      sweeps[l] = static_cast<int32_t>(max_sweeps);
      converged[l] = 0;
    }
}

EBM_CLONES void recall_block_sequential(const IsingView& P, float* S, float* F, int lanes,
                                        int64_t max_sweeps, const RngView& rng, uint32_t chain0,
                                        int32_t* sweeps, uint8_t* converged) {
  recall_block<false>(P, S, F, lanes, max_sweeps, rng, chain0, sweeps, converged);
}

EBM_CLONES void recall_block_random(const IsingView& P, float* S, float* F, int lanes,
                                    int64_t max_sweeps, const RngView& rng, uint32_t chain0,
                                    int32_t* sweeps, uint8_t* converged) {
  recall_block<true>(P, S, F, lanes, max_sweeps, rng, chain0, sweeps, converged);
}

}  // namespace

// Calls with fewer cues than this take one sgemm per tile for the first fields: building
// the table costs ~2 n^2 writes, about the GEMM of a few cues.
constexpr int64_t kTableMinCues = 64;

void hopfield_recall(const IsingView& P, int8_t* S, int64_t cues, int64_t max_sweeps,
                     bool random_order, const RngView& rng, int32_t* sweeps, uint8_t* converged,
                     const float* table) {
  const int64_t n = P.n;
  auto* run = random_order ? &recall_block_random : &recall_block_sequential;
  const SpinTableShape shape = spin_table_shape(n);
  if (!table && cues >= kTableMinCues) {
    float* T = scratch<float>(kSlotSpinTable, static_cast<size_t>(shape.floats()));
    build_spin_table(P.J, shape, T);
    table = T;
  }
  // Tiles of kTileCues cues, one per task: the tile's spins as floats, its first fields
  // (from the table, or one sgemm: a 128-row GEMM packs W once per 128 cues, not per 16),
  // then its blocks recalled while the tile is still in cache. The field rows are already
  // the blocks' lane-major fields and the float spins stay the blocks' spins (no
  // transposes in or out). Rows padded to a whole block hold zero spins, which never flip.
  constexpr int64_t kTileCues = 128;
  const int64_t n_tiles = ceil_div(cues, kTileCues);
#pragma omp parallel for schedule(dynamic, 1) if (n_tiles > 1)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kTileCues;
    const int64_t rows = std::min<int64_t>(kTileCues, cues - r0);
    const int64_t padded = ceil_div(rows, kLanes) * kLanes;
    float* Sf = scratch<float>(kSlotRecallSpins, static_cast<size_t>(padded * n));
    float* F = scratch<float>(kSlotRecallFields, static_cast<size_t>(padded * n));
    for (int64_t r = 0; r < padded; ++r)
      for (int64_t i = 0; i < n; ++i) Sf[r * n + i] = r < rows ? S[(r0 + r) * n + i] : 0.0f;
    if (table) {
      int32_t* picks = scratch<int32_t>(kSlotRecallPicks, static_cast<size_t>(rows * shape.groups));
      spin_fields(table, shape, P.h, S + r0 * n, rows, F, n, picks);
      for (int64_t r = rows; r < padded; ++r)
        for (int64_t j = 0; j < n; ++j) F[r * n + j] = P.h[j];
    } else {
      gemm_block(false, padded, n, n, 1.0f, Sf, n, P.J, n, F, n);
      for (int64_t r = 0; r < padded; ++r)
        for (int64_t j = 0; j < n; ++j) F[r * n + j] += P.h[j];
    }
    for (int64_t blk = 0; blk < padded / kLanes; ++blk) {
      const int64_t c0 = r0 + blk * kLanes;
      const int lanes = static_cast<int>(std::min<int64_t>(kLanes, cues - c0));
      float* Fb = F + blk * kLanes * n;
      float* Sb = Sf + blk * kLanes * n;
      run(P, Sb, Fb, lanes, max_sweeps, rng, rng.chain_offset + static_cast<uint32_t>(c0),
          sweeps + c0, converged + c0);
      for (int l = 0; l < lanes; ++l)
        for (int64_t i = 0; i < n; ++i) S[(c0 + l) * n + i] = static_cast<int8_t>(Sb[n * l + i]);
    }
  }
}

}  // namespace ebm::cpu
