// One Boltzmann-machine update in one call (bm.py's fit and gradient on the CPU): the Ising
// form of (W, b), the clamped phase (heat-bath sweeps over the hidden units with the batch
// clamped), the free phase (sweeps over all units of the persistent chains, or of chains
// restarted at the batch), the statistics <y y^T> of both phases and the momentum /
// weight-decay update.
//
// Both phases run as 16-chain blocks of the spin-chain sampler (spin_block.h, heat bath,
// sequential order, the same Philox units as ising_chains) in one OpenMP loop: they are
// independent given W. The fields are lazy (computed per site block from the current
// spins), which for the few sweeps of a training update does about half the multiply-adds
// of a refresh plus incremental moves, and never touches the fields of clamped units. The
// statistics are exact integer counts: the final states as bit masks (16 chains per
// uint16), <y_i y_j> = popcount(m_i & m_j) / rows. The update is the float64 arithmetic of
// bm.py in the same order (no FMA: this part is not compiled with target_clones), into
// separate output arrays, so a diverging update leaves the model as it was.
#include <algorithm>
#include <cmath>
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

// One phase: `chains` chains in blocks of 16, sites below first_free never move.
struct Phase {
  int64_t chains = 0;
  int64_t first_free = 0;
  int sweeps = 0;
  uint32_t step = 0;             // Philox step of the first sweep (kStreamAccept, chain = index)
  const double* start = nullptr; // [chains, n] {0,1} states to start from, or null: the batch
                                 // rows for the observed units, kStreamInit for the others
  uint32_t init_chain0 = 0;      // kStreamInit at (init_chain0 + index, init_step)
  uint32_t init_step = 0;
  double* states_out = nullptr;  // [chains, n] (w, or null) final states {0,1}
  int8_t* spins_out = nullptr;   // [chains, n] (w, or null) final states +-1
  uint16_t* masks = nullptr;     // [n][4 words] (w) bit l of entry blk: chain 16 blk + l is on;
  int64_t words = 0;             // read as 64-bit words, four blocks each

};

EBM_CLONES void run_bm_block(const IsingView& P, const BmBatch& batch, const Phase& ph,
                             int64_t blk, uint64_t seed) {
  const int64_t n = P.n, n_obs = batch.n_observed, f = ph.first_free;
  const int64_t c0 = blk * kLanes;
  const int lanes = static_cast<int>(std::min<int64_t>(kLanes, ph.chains - c0));
  int8_t* S = scratch<int8_t>(kSlotSpinBlock, static_cast<size_t>(kLanes * n));
  // Padding lanes hold +1 spins that never flip (their decisions are masked off).
  if (ph.start != nullptr) {
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < kLanes; ++l)
        S[kLanes * i + l] = l < lanes && !(ph.start[(c0 + l) * n + i] > 0.5) ? int8_t{-1} : int8_t{1};
  } else {
    for (int l = 0; l < kLanes; ++l) {
      const uint8_t* d = l < lanes ? batch.data + batch.rows[c0 + l] * n_obs : nullptr;
      for (int64_t i = 0; i < n_obs; ++i) S[kLanes * i + l] = d == nullptr || d[i] ? int8_t{1} : int8_t{-1};
    }
    alignas(64) float u[kSiteBlock * kLanes];
    for (int64_t i0 = n_obs / kSiteBlock * kSiteBlock; i0 < n; i0 += kSiteBlock) {
      const int64_t i_end = std::min<int64_t>(i0 + kSiteBlock, n);
      philox_chain_lanes(seed, kStreamInit, ph.init_chain0 + static_cast<uint32_t>(c0), ph.init_step,
                         static_cast<uint32_t>(i0 / 4), static_cast<int>((i_end - i0 + 3) / 4), u);
      for (int64_t i = std::max(i0, n_obs); i < i_end; ++i)
        for (int l = 0; l < kLanes; ++l)
          S[kLanes * i + l] = l >= lanes || u[kLanes * (i - i0) + l] < 0.5f ? int8_t{1} : int8_t{-1};
    }
  }
  if (ph.sweeps > 0 && f < n) {
    float* F = scratch<float>(kSlotFieldBlock, static_cast<size_t>(kLanes * n));
    float* base = scratch<float>(kSlotBmBase, static_cast<size_t>(kLanes * n));
    float* Sf = scratch<float>(kSlotSpinFloat, static_cast<size_t>(kLanes * n));
    for (int64_t i = 0; i < n; ++i) store16(Sf + kLanes * i, load_spins(S + kLanes * i));
    for (int64_t i = f; i < n; ++i) store16(base + kLanes * i, splat16(P.h[i]));
    add_fields_from(P, Sf, 0, f, base, f, n);  // the clamped units' share, fixed for the phase
    SweepPlan plan;
    int64_t flips[kLanes] = {};
    Block B{&P, &plan, S, F, flips, nullptr, lanes, static_cast<uint32_t>(c0), base, f, Sf};
    for (int t = 0; t < ph.sweeps; ++t)
      sweep_sequential<true, true, true>(B, 1.0f, seed, ph.step + static_cast<uint32_t>(t));
  }
  const uint32_t valid = (1u << lanes) - 1u;
  for (int64_t i = 0; i < n; ++i)
    ph.masks[i * 4 * ph.words + blk] = static_cast<uint16_t>(up_lanes(S + kLanes * i) & valid);
  for (int l = 0; l < lanes; ++l) {
    if (ph.states_out != nullptr)
      for (int64_t i = 0; i < n; ++i) ph.states_out[(c0 + l) * n + i] = S[kLanes * i + l] > 0 ? 1.0 : 0.0;
    if (ph.spins_out != nullptr)
      for (int64_t i = 0; i < n; ++i) ph.spins_out[(c0 + l) * n + i] = S[kLanes * i + l];
  }
}

// C[i][j] = number of chains with y_i = y_j = 1 for j >= i (the upper triangle, each row
// written by one thread only; readers take C[j][i] for j < i): popcounts of the masks, K
// words per unit (0: any number).
EBM_INLINE uint64_t mask_word(const uint16_t* m, int64_t w) {
  uint64_t x;
  std::memcpy(&x, m + 4 * w, sizeof x);
  return x;
}

template <int K>
EBM_INLINE void pair_counts_row(const uint16_t* m, int64_t words, int64_t n, int64_t i, int32_t* C) {
  const int64_t nw = K > 0 ? K : words;
  uint64_t a[K > 0 ? K : 1];
  if constexpr (K > 0)
    for (int w = 0; w < K; ++w) a[w] = mask_word(m, i * K + w);
  for (int64_t j = i; j < n; ++j) {
    int32_t c = 0;
    if constexpr (K > 0) {
      for (int w = 0; w < K; ++w) c += __builtin_popcountll(a[w] & mask_word(m, j * K + w));
    } else {
      for (int64_t w = 0; w < nw; ++w)
        c += __builtin_popcountll(mask_word(m, i * nw + w) & mask_word(m, j * nw + w));
    }
    C[i * n + j] = c;
  }
}

EBM_CLONES void pair_counts(const uint16_t* m, int64_t words, int64_t n, int64_t i, int32_t* C) {
  switch (words) {
    case 1: pair_counts_row<1>(m, words, n, i, C); break;
    case 2: pair_counts_row<2>(m, words, n, i, C); break;
    case 3: pair_counts_row<3>(m, words, n, i, C); break;
    case 4: pair_counts_row<4>(m, words, n, i, C); break;
    default: pair_counts_row<0>(m, words, n, i, C); break;
  }
}

// Row i of the Ising form: J = -W/4 (float32), h_i = -b_i/2 - sum_j W_ij / 4 (the sum in
// four float64 partial sums; its rounding differs from NumPy's pairwise sum by far less
// than the float32 rounding of h).
EBM_CLONES void ising_row(const BmModel& M, int64_t i, float* J, float* h) {
  const int64_t n = M.n;
  const double* w = M.W + i * n;
  for (int64_t j = 0; j < n; ++j) J[i * n + j] = static_cast<float>(-0.25 * w[j]);
  double s[4] = {};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int k = 0; k < 4; ++k) s[k] += w[j + k];
  for (; j < n; ++j) s[0] += w[j];
  h[i] = static_cast<float>(-0.5 * M.b[i] - 0.25 * ((s[0] + s[1]) + (s[2] + s[3])));
}

// Row i of the gradient (without hyper) or of the update: velocity = momentum * velocity +
// lr * (grad - weight_decay * W), W' = W + velocity, then row i of (W' + W'^T) / 2 with a
// zero diagonal: the float64 operations of bm.py in its order. Each row computes the
// elements (j, i) of W' it needs itself (reading column i, writing only row i: no cache
// line written by two threads). No fused multiply-adds here (they would round
// differently from NumPy).
#if defined(__GNUC__) && !defined(__clang__)
#define EBM_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define EBM_NO_CONTRACT
#endif
// bm.py's check of W' (before the symmetrisation), max |W'| n < 1e37 with every entry
// finite, taken entry by entry: |w| n < 1e37 fails for inf and NaN, and rounding is
// monotonic, so this is the same test without a max reduction (which would keep the loop
// from vectorising).
struct RowStats {
  bool ok = true;
};
EBM_CLONES EBM_NO_CONTRACT void update_row(const BmModel& M, const int32_t* cp, const int32_t* cq,
                                           const double* fp, const double* fq, const BmHyper* hyper,
                                           const BmOut& out, int64_t i, double* dw, RowStats& st) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  const int64_t n = M.n;
  // dW row i (symmetric: the counts are), zero diagonal; the gathers apart from the
  // arithmetic below, which then vectorises.
  for (int64_t j = 0; j < i; ++j) dw[j] = fp[cp[j * n + i]] - fq[cq[j * n + i]];
  for (int64_t j = i; j < n; ++j) dw[j] = fp[cp[i * n + j]] - fq[cq[i * n + j]];
  dw[i] = 0.0;
  double* Wo = out.W + i * n;
  if (hyper == nullptr) {
    for (int64_t j = 0; j < n; ++j) Wo[j] = dw[j];
    return;
  }
  const double m = hyper->momentum, lr = hyper->learning_rate, wd = hyper->weight_decay;
  // Outputs never alias inputs (the binding checks): restrict lets the loops vectorise.
  const double* __restrict W = M.W + i * n;
  const double* __restrict vW = M.vW + i * n;
  const double* __restrict d = dw;
  double* __restrict Wr = Wo;
  double* __restrict vWo = out.vW + i * n;
  const double nd = static_cast<double>(std::max<int64_t>(n, 1));
  int bad = 0;
  if (hyper->symmetric) {  // W'^T = W': (W' + W'^T) / 2 = W' (no rounding in w + w, * 0.5)
    for (int64_t j = 0; j < n; ++j) {
      const double v = m * vW[j] + lr * (d[j] - wd * W[j]);
      const double w = W[j] + v;
      vWo[j] = v;
      Wr[j] = w;
      bad |= !(std::fabs(w) * nd < 1e37);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const double v = m * vW[j] + lr * (d[j] - wd * W[j]);
      const double w = W[j] + v;
      const double vt = m * M.vW[j * n + i] + lr * (d[j] - wd * M.W[j * n + i]);
      const double wt = M.W[j * n + i] + vt;
      vWo[j] = v;
      Wr[j] = 0.5 * (w + wt);
      bad |= !(std::fabs(w) * nd < 1e37);
    }
  }
  Wo[i] = 0.0;
  st.ok = st.ok && bad == 0;
}

// bm.py's check of b (W' is checked row by row, RowStats): finite and |b| < 1e37.
bool biases_ok(const BmOut& out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!(std::fabs(out.b[i]) < 1e37)) return false;
  return true;
}

}  // namespace

bool bm_step(const BmModel& M, const BmBatch& batch, const BmSchedule& sch, const BmHyper* hyper,
             const BmOut& out) {
  const int64_t n = M.n, n_obs = batch.n_observed;
  const bool pcd = batch.chains != nullptr;
  const int64_t n_free = pcd ? batch.n_chains : batch.n_rows;
  float* J = scratch<float>(kSlotBmCouplings, static_cast<size_t>(n * n + n));
  float* h = J + n * n;
  const IsingView P{n, h, J, nullptr, nullptr, nullptr};

  Phase pc, pf;
  pc.chains = batch.n_rows;
  pc.first_free = n_obs;
  pc.sweeps = sch.clamped_sweeps;
  pc.step = sch.clamped_step;
  pc.init_chain0 = 0;
  pc.init_step = sch.clamped_step;
  pc.spins_out = batch.clamped_out;
  pf.chains = n_free;
  pf.first_free = 0;
  pf.sweeps = sch.free_sweeps;
  pf.step = sch.free_step;
  pf.start = batch.chains;
  pf.init_chain0 = sch.restart_chain_offset;
  pf.init_step = sch.free_step;
  pf.states_out = batch.chains_out;
  pf.spins_out = batch.free_out;
  const int64_t nbc = ceil_div(pc.chains, kLanes), nbf = ceil_div(pf.chains, kLanes);
  pc.words = ceil_div(nbc, 4);
  pf.words = ceil_div(nbf, 4);
  const size_t n_masks = static_cast<size_t>(4 * n * (pc.words + pf.words));
  uint16_t* masks = scratch<uint16_t>(kSlotBmMasks, n_masks);
  std::memset(masks, 0, sizeof(uint16_t) * n_masks);
  pc.masks = masks;
  pf.masks = masks + 4 * n * pc.words;
  int32_t* counts = scratch<int32_t>(kSlotBmCounts, static_cast<size_t>(2 * n * n));
  int32_t* cp = counts;
  int32_t* cq = counts + n * n;
  // count / rows for every possible count (the divisions of bm.py, done once, not per pair)
  double* frac = scratch<double>(kSlotBmFractions, static_cast<size_t>(pc.chains + pf.chains + 2));
  const double* fp = frac;
  const double* fq = frac + pc.chains + 1;
  for (int64_t c = 0; c <= pc.chains; ++c) frac[c] = static_cast<double>(c) / static_cast<double>(pc.chains);
  for (int64_t c = 0; c <= pf.chains; ++c) frac[pc.chains + 1 + c] = static_cast<double>(c) / static_cast<double>(pf.chains);
  bool ok = true;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) ising_row(M, i, J, h);
    // Both phases' blocks, clamped first (they sweep more often): one dynamic queue.
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < nbc + nbf; ++k) {
      if (k < nbc)
        run_bm_block(P, batch, pc, k, sch.seed);
      else
        run_bm_block(P, batch, pf, k - nbc, sch.seed);
    }
#pragma omp for schedule(static, 4)  // rows of the triangle shrink: deal them out in turn
    for (int64_t i = 0; i < n; ++i) {
      pair_counts(pc.masks, pc.words, n, i, cp);
      pair_counts(pf.masks, pf.words, n, i, cq);
    }
    // The gradient / update row by row (a row needs the counts of all j). Whether it is
    // accepted (bm.py's check) is decided after the parallel region.
    RowStats st;
    double* dw = scratch<double>(kSlotBmCounts, static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) update_row(M, cp, cq, fp, fq, hyper, out, i, dw, st);
#pragma omp critical
    ok = ok && st.ok;
#pragma omp single nowait
    {
      // the biases: db = <y>_clamped - <y>_free (the diagonal counts), no weight decay
      for (int64_t i = 0; i < n; ++i) {
        const double db = fp[cp[i * n + i]] - fq[cq[i * n + i]];  // the diagonal counts
        if (hyper == nullptr) {
          out.b[i] = db;
          continue;
        }
        const double vb = hyper->momentum * M.vb[i] + hyper->learning_rate * db;
        out.vb[i] = vb;
        out.b[i] = M.b[i] + vb;
      }
    }
  }
  return hyper == nullptr || (ok && biases_ok(out, n));
}

}  // namespace ebm::cpu
