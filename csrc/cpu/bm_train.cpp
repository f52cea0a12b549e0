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
  uint16_t* masks = nullptr;     // [n][mask_stride] (w) bit l of entry blk: chain 16 blk + l is 1
  int64_t mask_stride = 0;
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
    for (int64_t i = f; i < n; ++i) store16(base + kLanes * i, splat16(P.h[i]));
    add_fields_from(P, S, 0, f, base, f, n);  // the clamped units' share, fixed for the phase
    SweepPlan plan;
    int64_t flips[kLanes] = {};
    Block B{&P, &plan, S, F, flips, nullptr, lanes, static_cast<uint32_t>(c0), base, f};
    for (int t = 0; t < ph.sweeps; ++t)
      sweep_sequential<true, true, true>(B, 1.0f, seed, ph.step + static_cast<uint32_t>(t));
  }
  for (int64_t i = 0; i < n; ++i) {
    uint32_t m = 0;
    for (int l = 0; l < lanes; ++l) m |= static_cast<uint32_t>(S[kLanes * i + l] > 0) << l;
    ph.masks[i * ph.mask_stride + blk] = static_cast<uint16_t>(m);
  }
  for (int l = 0; l < lanes; ++l) {
    if (ph.states_out != nullptr)
      for (int64_t i = 0; i < n; ++i) ph.states_out[(c0 + l) * n + i] = S[kLanes * i + l] > 0 ? 1.0 : 0.0;
    if (ph.spins_out != nullptr)
      for (int64_t i = 0; i < n; ++i) ph.spins_out[(c0 + l) * n + i] = S[kLanes * i + l];
  }
}

// count[j] = number of chains with y_i = y_j = 1 (masks as 64-bit words: four blocks).
EBM_CLONES void pair_counts(const uint16_t* masks, int64_t stride, int64_t n, int64_t i, int32_t* count) {
  const int64_t words = stride / 4;
  const uint16_t* mi = masks + i * stride;
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* mj = masks + j * stride;
    int32_t c = 0;
    for (int64_t w = 0; w < words; ++w) {
      uint64_t a, b;
      std::memcpy(&a, mi + 4 * w, sizeof a);
      std::memcpy(&b, mj + 4 * w, sizeof b);
      c += __builtin_popcountll(a & b);
    }
    count[j] = c;
  }
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
  pc.mask_stride = 4 * ceil_div(nbc, 4);
  pf.mask_stride = 4 * ceil_div(nbf, 4);
  uint16_t* masks = scratch<uint16_t>(kSlotBmMasks, static_cast<size_t>(n * (pc.mask_stride + pf.mask_stride)));
  std::memset(masks, 0, sizeof(uint16_t) * static_cast<size_t>(n * (pc.mask_stride + pf.mask_stride)));
  pc.masks = masks;
  pf.masks = masks + n * pc.mask_stride;

  const double rp = static_cast<double>(pc.chains), rq = static_cast<double>(pf.chains);
  double max_w = 0.0, max_b = 0.0;
  bool finite = true;
#pragma omp parallel
  {
    // Ising form in dimod's sign (bm.py's _ising): J = -W/4, h = -b/2 - sum_j W_ij / 4.
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double* w = M.W + i * n;
      double s = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        J[i * n + j] = static_cast<float>(-0.25 * w[j]);
        s += w[j];
      }
      h[i] = static_cast<float>(-0.5 * M.b[i] - 0.25 * s);
    }
    // Both phases' blocks, clamped first (they sweep more often): one dynamic queue.
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < nbc + nbf; ++k) {
      if (k < nbc)
        run_bm_block(P, batch, pc, k, sch.seed);
      else
        run_bm_block(P, batch, pf, k - nbc, sch.seed);
    }
    // Gradient row by row, then (update) the momentum / weight-decay step of bm.py, same
    // operations in the same order.
    int32_t* cnt = scratch<int32_t>(kSlotBmCounts, static_cast<size_t>(2 * n));
#pragma omp for schedule(dynamic, 8) reduction(max : max_w, max_b) reduction(&& : finite)
    for (int64_t i = 0; i < n; ++i) {
      pair_counts(pc.masks, pc.mask_stride, n, i, cnt);
      pair_counts(pf.masks, pf.mask_stride, n, i, cnt + n);
      const double db = cnt[i] / rp - cnt[n + i] / rq;
      if (hyper == nullptr) {
        for (int64_t j = 0; j < n; ++j) out.W[i * n + j] = j == i ? 0.0 : cnt[j] / rp - cnt[n + j] / rq;
        out.b[i] = db;
        continue;
      }
      const double m = hyper->momentum, lr = hyper->learning_rate, wd = hyper->weight_decay;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t ij = i * n + j;
        const double dw = j == i ? 0.0 : cnt[j] / rp - cnt[n + j] / rq;
        const double v = m * M.vW[ij] + lr * (dw - wd * M.W[ij]);
        const double w = M.W[ij] + v;
        out.vW[ij] = v;
        out.W[ij] = w;
        finite = finite && std::isfinite(w);
        max_w = std::max(max_w, std::fabs(w));
      }
      const double vb = m * M.vb[i] + lr * db;
      const double b = M.b[i] + vb;
      out.vb[i] = vb;
      out.b[i] = b;
      finite = finite && std::isfinite(b);
      max_b = std::max(max_b, std::fabs(b));
    }
    // The sampler needs finite float32 couplings (bm.py's check): then W = (W + W^T) / 2
    // with a zero diagonal. Pair (i, j > i) belongs to row i alone.
    const bool ok = finite && max_w * static_cast<double>(std::max<int64_t>(n, 1)) < 1e37 && max_b < 1e37;
    if (hyper != nullptr && ok) {
#pragma omp for schedule(dynamic, 8)
      for (int64_t i = 0; i < n; ++i) {
        out.W[i * n + i] = 0.0;
        for (int64_t j = i + 1; j < n; ++j) {
          const double a = 0.5 * (out.W[i * n + j] + out.W[j * n + i]);
          out.W[i * n + j] = a;
          out.W[j * n + i] = a;
        }
      }
    }
  }
  return hyper == nullptr || (finite && max_w * static_cast<double>(std::max<int64_t>(n, 1)) < 1e37 && max_b < 1e37);
}

}  // namespace ebm::cpu
