// CD-k / PCD-k on the CPU: the sampling phase on the fused layer kernel, then one pass
// over W that forms the gradient <v p(h|v)>_data - <v p(h|v)>_model and applies the
// momentum / weight-decay update, writing W and its transpose WT together.
//
// Every chain state is binary, so v^T p(h|v) is a sum of rows of p(h|v): for visible
// unit i, the rows b with v[b, i] = 1 (a column-wise index list, "CSC"). Binary data
// takes the same route; real-valued data (probabilities) takes one BLAS sgemm.
#include <omp.h>
#include <cmath>
#include <limits>
#include "common/math.h"
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"
#include "cpu/tiles.h"

namespace ebm::cpu {

// ---------------------------------------------------------------- helpers

namespace {

// Column-wise positions of the ones of a binary matrix V [rows, n]: column i's rows are
// list[start[i] .. start[i] + count[i]), ascending. One branch-free scan per row (in
// parallel) finds the ones; counting and placing them then touch only the ones.
struct ColumnLists {
  const int32_t* start;
  const int32_t* count;
  const int32_t* list;
};

ColumnLists column_lists(const float* V, int64_t rows, int64_t n, int slot) {
  int32_t* start = scratch<int32_t>(slot, static_cast<size_t>(2 * n + rows * n + 1));
  int32_t* count = start + n;
  int32_t* list = count + n;
  int32_t* row_pos = scratch<int32_t>(kSlotRowPositions, static_cast<size_t>(rows * n + rows + n + 1));
  int32_t* row_nnz = row_pos + rows * n;
  int32_t* cursor = row_nnz + rows;
#pragma omp parallel for schedule(static) if (parallel_worth(rows * n))
  for (int64_t b = 0; b < rows; ++b)
    row_nnz[b] = static_cast<int32_t>(nonzero_positions(V + b * n, n, row_pos + b * n));
  for (int64_t i = 0; i < n; ++i) count[i] = 0;
  for (int64_t b = 0; b < rows; ++b)
    for (int32_t k = 0; k < row_nnz[b]; ++k) ++count[row_pos[b * n + k]];
  int32_t acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    start[i] = cursor[i] = acc;
    acc += count[i];
  }
  for (int64_t b = 0; b < rows; ++b)
    for (int32_t k = 0; k < row_nnz[b]; ++k) list[cursor[row_pos[b * n + k]]++] = static_cast<int32_t>(b);
  return ColumnLists{start, count, list};
}

// velocity = momentum*velocity + lr*(g - decay*w); w += velocity, from (w_in, vel_in)
// into (w_out, vel_out), which may alias them. Tracks the largest |w| and |velocity|
// written (NaN makes them NaN), which the caller uses to bound the next update.
struct StepStats {
  float max_w = 0.0f, max_v = 0.0f;
  void merge(const StepStats& o) {
    max_w = (o.max_w > max_w || o.max_w != o.max_w) ? o.max_w : max_w;
    max_v = (o.max_v > max_v || o.max_v != o.max_v) ? o.max_v : max_v;
  }
};

EBM_CLONES StepStats momentum_step(const float* w_in, const float* vel_in, const float* g,
                                   int width, float lr, float momentum, float decay,
                                   float* w_out, float* vel_out) {
  vf8 mw = {}, mv = {};
  vi8 bad = {};
  int t = 0;
  for (; t + 8 <= width; t += 8) {
    const vf8 v = momentum * load8(vel_in + t) + lr * (load8(g + t) - decay * load8(w_in + t));
    const vf8 w = load8(w_in + t) + v;
    store8(vel_out + t, v);
    store8(w_out + t, w);
    bad |= ((w - w) != 0.0f) | ((v - v) != 0.0f);  // NaN or inf
    const vf8 aw = w < 0.0f ? -w : w, av = v < 0.0f ? -v : v;
    mw = aw > mw ? aw : mw;
    mv = av > mv ? av : mv;
  }
  float smw = 0.0f, smv = 0.0f;
  int sbad = 0;
  for (int l = 0; l < 8; ++l) {
    sbad |= bad[l];
    smw = mw[l] > smw ? mw[l] : smw;
    smv = mv[l] > smv ? mv[l] : smv;
  }
  for (; t < width; ++t) {
    const float v = momentum * vel_in[t] + lr * (g[t] - decay * w_in[t]);
    const float w = w_in[t] + v;
    vel_out[t] = v;
    w_out[t] = w;
    sbad |= !(w - w == 0.0f) | !(v - v == 0.0f);
    const float aw = w < 0.0f ? -w : w, av = v < 0.0f ? -v : v;
    smw = aw > smw ? aw : smw;
    smv = av > smv ? av : smv;
  }
  StepStats st;
  st.max_w = sbad ? NAN : smw;
  st.max_v = sbad ? NAN : smv;
  return st;
}

// out = a - b, n floats (a clone so it runs eight lanes wide).
EBM_CLONES void subtract(const float* a, const float* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}

// Column sums of P [rows, n] in float64, fixed order (thread-count independent).
void column_sums(const float* P, int64_t rows, int64_t n, double* out) {
  const int64_t n_blocks = ceil_div(n, kTile);
#pragma omp parallel for schedule(static) if (parallel_worth(rows * n))
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t j0 = blk * kTile, j1 = std::min(n, j0 + kTile);
    double s[kTile] = {};
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t j = j0; j < j1; ++j) s[j - j0] += P[b * n + j];
    for (int64_t j = j0; j < j1; ++j) out[j] = s[j - j0];
  }
}

}  // namespace

// ---------------------------------------------------------------- transpose

void transpose(const float* W, float* WT, int64_t n_v, int64_t n_h) {
  constexpr int64_t kB = 32;
  const int64_t bi = ceil_div(n_v, kB), bj = ceil_div(n_h, kB);
#pragma omp parallel for schedule(static) if (parallel_worth(n_v * n_h))
  for (int64_t blk = 0; blk < bi * bj; ++blk) {
    const int64_t i0 = (blk / bj) * kB, j0 = (blk % bj) * kB;
    const int64_t i1 = std::min(n_v, i0 + kB), j1 = std::min(n_h, j0 + kB);
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t i = i0; i < i1; ++i) WT[j * n_v + i] = W[i * n_h + j];
  }
}

// ---------------------------------------------------------------- cd_update

CdResult cd_update(const RbmView& P, const VelocityView& vel, const TrainHyper& hyper,
                   const CdBatch& batch, const RngView& rng, const GradView* grad,
                   const RbmView* P_out, const VelocityView* vel_out, bool want_recon) {
  const int64_t n_v = P.n_visible, n_h = P.n_hidden, nd = batch.n_data;
  const bool persistent = batch.chain != nullptr;
  const int64_t nc = persistent ? batch.n_chain : nd;
  const LayerView to_h = P.to_hidden(), to_v = P.to_visible();

  float* ph0 = scratch<float>(kSlotPh0, static_cast<size_t>(nd * n_h));
  float* H = scratch<float>(kSlotHidden, static_cast<size_t>(nc * n_h));
  float* phk = scratch<float>(kSlotPhk, static_cast<size_t>(nc * n_h));
  float* Vk = persistent ? batch.chain : scratch<float>(kSlotChain, static_cast<size_t>(nc * n_v));
  const BatchView data{batch.V0, nd, batch.v0_binary};

  // --- sampling phase (steps rng.step .. rng.step + k - 1)
  {
    LayerOutputs pos;
    pos.prob = ph0;
    if (persistent) {
      layer_forward(data, to_h, 1.0f, pos, kStreamHidden, rng);
      gibbs_chains(to_h, to_v, 1.0f, Vk, Vk, H, nc, batch.k, rng);
    } else {
      // CD: the chain starts at the data; its first hidden sample comes with p(h|v0).
      pos.sample = H;
      layer_forward(data, to_h, 1.0f, pos, kStreamHidden, rng);
      LayerOutputs v_out;
      v_out.sample = Vk;
      layer_forward(BatchView{H, nc, true}, to_v, 1.0f, v_out, kStreamVisible, rng);
      if (batch.k > 1) {
        RngView r = rng;
        r.step = rng.step + 1;
        gibbs_chains(to_h, to_v, 1.0f, Vk, Vk, H, nc, batch.k - 1, r);
      }
    }
    LayerOutputs neg;
    neg.prob = phk;
    layer_forward(BatchView{Vk, nc, true}, to_h, 1.0f, neg, kStreamHidden, rng);
  }

  double recon = std::numeric_limits<double>::quiet_NaN();
  if (want_recon) {  // mean-field reconstruction with the parameters before the update
    float* pv = scratch<float>(kSlotRecon, static_cast<size_t>(nd * n_v));
    LayerOutputs o;
    o.prob = pv;
    layer_forward(BatchView{ph0, nd, false}, to_v, 1.0f, o, kStreamVisible, rng);
    // Per-row sums, then rows in order: the total does not depend on the thread count.
    double* row_err = scratch<double>(kSlotRowErr, static_cast<size_t>(nd));
#pragma omp parallel for schedule(static) if (parallel_worth(nd * n_v))
    for (int64_t r = 0; r < nd; ++r) {
      double e = 0.0;
      for (int64_t i = r * n_v; i < (r + 1) * n_v; ++i) {
        const double d = static_cast<double>(batch.V0[i]) - pv[i];
        e += d * d;
      }
      row_err[r] = e;
    }
    double s = 0.0;
    for (int64_t r = 0; r < nd; ++r) s += row_err[r];
    recon = s / static_cast<double>(nd);
  }

  // --- statistics
  const ColumnLists neg_lists = column_lists(Vk, nc, n_v, kSlotChainLists);
  ColumnLists pos_lists{nullptr, nullptr, nullptr};
  float* G = nullptr;  // (1/nd) V0^T ph0 for real-valued data
  if (batch.v0_binary) {
    pos_lists = column_lists(batch.V0, nd, n_v, kSlotDataLists);
  } else {
    G = scratch<float>(kSlotDenseGrad, static_cast<size_t>(n_v * n_h));
    gemm_rows_parallel(true, n_v, n_h, nd, 1.0f / static_cast<float>(nd), batch.V0, n_v, ph0,
                       n_h, G, n_h);
  }
  const float inv_nd = 1.0f / static_cast<float>(nd), inv_nc = 1.0f / static_cast<float>(nc);
  // CD on binary data pairs chain row b with data row b, and a trained model reconstructs
  // most ones of the data: for unit i, the rows where both are one contribute
  // ph0[b] - phk[b], so summing D = ph0 - phk over them once (instead of ph0 and phk
  // separately) saves a third of the gradient's row adds or more.
  const bool paired = !persistent && batch.v0_binary;
  float* D = nullptr;
  if (paired) {
    D = scratch<float>(kSlotPairDiff, static_cast<size_t>(nd * n_h));
#pragma omp parallel for schedule(static) if (parallel_worth(nd * n_h))
    for (int64_t r = 0; r < nd; ++r) subtract(ph0 + r * n_h, phk + r * n_h, n_h, D + r * n_h);
  }

  // Bias gradients (float64 sums, then float32).
  double* sums = scratch<double>(kSlotSums, static_cast<size_t>(2 * n_v + 2 * n_h));
  double *v_pos = sums, *h_pos = sums + n_v, *h_neg = sums + n_v + n_h;
  if (batch.v0_binary) {
    for (int64_t i = 0; i < n_v; ++i) v_pos[i] = pos_lists.count[i];
  } else {
    column_sums(batch.V0, nd, n_v, v_pos);
  }
  column_sums(ph0, nd, n_h, h_pos);
  column_sums(phk, nc, n_h, h_neg);
  float* db = scratch<float>(kSlotBiasGrad, static_cast<size_t>(n_v + n_h));
  float* dc = db + n_v;
  for (int64_t i = 0; i < n_v; ++i)
    db[i] = static_cast<float>(v_pos[i] / nd - static_cast<double>(neg_lists.count[i]) / nc);
  for (int64_t j = 0; j < n_h; ++j) dc[j] = static_cast<float>(h_pos[j] / nd - h_neg[j] / nc);

  // --- one pass over W: gradient tile -> (store | momentum step) -> W and WT.
  constexpr int64_t kRowsPerBlock = 16;  // 16 floats of a WT row = one cache line per write
  const int64_t n_blocks = ceil_div(n_v, kRowsPerBlock);
  const bool update = grad == nullptr;
  // Largest |W|, |velocity| written, per block, merged in block order afterwards (the
  // result must not depend on the thread count; NaN marks a non-finite value).
  StepStats* block_stats = reinterpret_cast<StepStats*>(
      scratch<float>(kSlotStepStats, static_cast<size_t>(2 * n_blocks + 2)));
#pragma omp parallel for schedule(static) if (parallel_worth(n_v * n_h * 4))
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    StepStats st;
    const int64_t i0 = blk * kRowsPerBlock, i1 = std::min(n_v, i0 + kRowsPerBlock);
    alignas(64) float gpos[kTile], gneg[kTile], gboth[kTile], g[kTile];
    alignas(64) float wblk[kRowsPerBlock][kTile];
    // paired: per unit i of the block, rows where data and chain are both / only one
    int32_t* split = paired ? scratch<int32_t>(kSlotPairLists, static_cast<size_t>(
                                  kRowsPerBlock * (nd + nc))) : nullptr;
    int64_t n_both[kRowsPerBlock], n_only0[kRowsPerBlock], n_only1[kRowsPerBlock];
    if (paired) {
      for (int64_t i = i0; i < i1; ++i) {
        int32_t* both = split + (i - i0) * (nd + nc);
        int32_t* only0 = both + std::min(pos_lists.count[i], neg_lists.count[i]);
        const int32_t* p = pos_lists.list + pos_lists.start[i];
        const int32_t* q = neg_lists.list + neg_lists.start[i];
        const int64_t np = pos_lists.count[i], nq = neg_lists.count[i];
        int64_t a = 0, c = 0, nb = 0, n0 = 0, n1 = 0;
        int32_t* only1 = only0 + np;  // sizes: both <= min, only0 <= np, only1 <= nq
        while (a < np && c < nq) {  // merge of two ascending lists
          if (p[a] == q[c]) { both[nb++] = p[a]; ++a; ++c; }
          else if (p[a] < q[c]) only0[n0++] = p[a++];
          else only1[n1++] = q[c++];
        }
        while (a < np) only0[n0++] = p[a++];
        while (c < nq) only1[n1++] = q[c++];
        n_both[i - i0] = nb; n_only0[i - i0] = n0; n_only1[i - i0] = n1;
      }
    }
    for (int64_t j0 = 0; j0 < n_h; j0 += kTile) {
      const int width = static_cast<int>(std::min<int64_t>(kTile, n_h - j0));
      for (int64_t i = i0; i < i1; ++i) {
        float sp;
        if (paired) {
          const int32_t* both = split + (i - i0) * (nd + nc);
          const int32_t* only0 = both + std::min(pos_lists.count[i], neg_lists.count[i]);
          const int32_t* only1 = only0 + pos_lists.count[i];
          sum_rows_tile(D, n_h, nd, both, n_both[i - i0], j0, width, gboth);
          sum_rows_tile(ph0, n_h, nd, only0, n_only0[i - i0], j0, width, gpos);
          sum_rows_tile(phk, n_h, nc, only1, n_only1[i - i0], j0, width, gneg);
          for (int t = 0; t < width; ++t) gpos[t] += gboth[t];
          sp = inv_nd;
        } else if (G) {
          for (int t = 0; t < width; ++t) gpos[t] = G[i * n_h + j0 + t];
          sp = 1.0f;
        } else {
          sum_rows_tile(ph0, n_h, nd, pos_lists.list + pos_lists.start[i], pos_lists.count[i], j0,
                          width, gpos);
          sp = inv_nd;
        }
        if (!paired)
          sum_rows_tile(phk, n_h, nc, neg_lists.list + neg_lists.start[i], neg_lists.count[i],
                        j0, width, gneg);
        for (int t = 0; t < width; ++t) g[t] = gpos[t] * sp - gneg[t] * inv_nc;
        if (!update) {
          for (int t = 0; t < width; ++t) grad->W[i * n_h + j0 + t] = g[t];
          continue;
        }
        const int64_t o = i * n_h + j0;
        st.merge(momentum_step(P.W + o, vel.W + o, g, width, hyper.learning_rate, hyper.momentum,
                               hyper.weight_decay, P_out->W + o, vel_out->W + o));
        for (int t = 0; t < width; ++t) wblk[i - i0][t] = P_out->W[o + t];
      }
      if (update)
        for (int t = 0; t < width; ++t)
          for (int64_t i = i0; i < i1; ++i) P_out->WT[(j0 + t) * n_v + i] = wblk[i - i0][t];
    }
    block_stats[blk] = st;
  }
  StepStats stats;
  if (update)
    for (int64_t blk = 0; blk < n_blocks; ++blk) stats.merge(block_stats[blk]);

  if (update) {  // biases: momentum, no weight decay
    for (int64_t off = 0; off < n_v; off += kTile)
      stats.merge(momentum_step(P.b + off, vel.b + off, db + off,
                                static_cast<int>(std::min<int64_t>(kTile, n_v - off)),
                                hyper.learning_rate, hyper.momentum, 0.0f, P_out->b + off,
                                vel_out->b + off));
    for (int64_t off = 0; off < n_h; off += kTile)
      stats.merge(momentum_step(P.c + off, vel.c + off, dc + off,
                                static_cast<int>(std::min<int64_t>(kTile, n_h - off)),
                                hyper.learning_rate, hyper.momentum, 0.0f, P_out->c + off,
                                vel_out->c + off));
  } else {
    for (int64_t i = 0; i < n_v; ++i) grad->b[i] = db[i];
    for (int64_t j = 0; j < n_h; ++j) grad->c[j] = dc[j];
  }
  const bool finite = stats.max_w == stats.max_w && stats.max_v == stats.max_v;
  return CdResult{recon, finite, stats.max_w, stats.max_v};
}

}  // namespace ebm::cpu
