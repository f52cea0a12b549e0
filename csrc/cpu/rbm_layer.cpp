// The RBM layer update on the CPU: field = beta * X.M + bias, then sigmoid and Bernoulli
// sampling from the Philox stream, fused into one pass over the output.
//
// Two ways to form X.M:
//  * binary X (every chain state, binarised data): the product is a sum of rows of M
//    picked by the ones of X ("gather"). Better still, units are taken four at a time:
//    a table holds the 16 subset sums of each group of four rows of M (built once per
//    call, 4 n_in n_out adds), and a row of X picks one table row per group whose four
//    bits are not all zero ("method of four Russians"). At 50% ones that is 4x fewer
//    vector adds than a dense GEMM's FMAs, at 13% (MNIST) ~10x fewer. A kTile-wide tile
//    of the sum is accumulated in registers and handed straight to the epilogue, so the
//    output is written once.
//  * real-valued X (probabilities, mean-field inputs): BLAS sgemm on fixed blocks of
//    rows, then the same epilogue while the block is in cache.
// Every output element is computed the same way whatever the number of threads (sums in
// a fixed order; GEMM on fixed blocks), so results do not depend on it.
#include <omp.h>
#include <cblas.h>
#include <cmath>
#include "common/math.h"
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/signed_rows.h"
#include "cpu/simd.h"
#include "cpu/tiles.h"

namespace ebm::cpu {

// ---------------------------------------------------------------- tile kernels

// NV whole 16-float vectors of the picked rows, accumulated in registers (16 NV <= kTile):
// one zmm each in the AVX-512 clone (half the instructions per pick of ymm), two ymm in
// the AVX2 clone.
template <int NV>
EBM_INLINE void sum_rows_vectors(const float* M, int64_t ld, const int32_t* idx, int64_t nnz,
                                 int64_t j0, bool add, float* acc) {
  // Rows are picked at random, so the hardware prefetcher cannot see them coming:
  // fetch the row kPrefetch picks ahead (L2 -> L1 latency is the bound here, not adds).
  constexpr int64_t kPrefetch = 8;
  vf16 a[NV] = {};
  if (add)
    for (int t = 0; t < NV; ++t) a[t] = load16(acc + 16 * t);
  for (int64_t k = 0; k < nnz; ++k) {
    const float* r = M + static_cast<int64_t>(idx[k]) * ld + j0;
    if (k + kPrefetch < nnz) {
      const float* q = M + static_cast<int64_t>(idx[k + kPrefetch]) * ld + j0;
      for (int t = 0; t < 16 * NV; t += 16) __builtin_prefetch(q + t);
    }
    for (int t = 0; t < NV; ++t) a[t] += load16(r + 16 * t);
  }
  for (int t = 0; t < NV; ++t) store16(acc + 16 * t, a[t]);
}

EBM_CLONES void sum_rows_tile(const float* M, int64_t ld, int64_t m_rows, const int32_t* idx,
                              int64_t nnz, int64_t j0, int width, float* acc, bool add) {
  const int nv = (width + 15) / 16;
  // Whole vectors read up to 15 floats past the tile: inside M that is the next row
  // (ignored lanes), but past M's last float it is not ours. When ld < 16 that holds for
  // several of the last rows, not only the last one, so every trailing pick (idx is
  // ascending) whose read would end past M is peeled off and added lane by lane after
  // the others: the same additions in the same order, so the sums are unchanged.
  const int64_t m_end = m_rows * ld;
  int64_t n = nnz;
  if (width % 16 != 0)
    while (n > 0 && static_cast<int64_t>(idx[n - 1]) * ld + j0 + 16 * nv > m_end) --n;
  switch (nv) {
#define EBM_CASE(NV) case NV: sum_rows_vectors<NV>(M, ld, idx, n, j0, add, acc); break;
    EBM_CASE(1) EBM_CASE(2) EBM_CASE(3) EBM_CASE(4) EBM_CASE(5) EBM_CASE(6) EBM_CASE(7)
    EBM_CASE(8)
#undef EBM_CASE
    default: break;
  }
  static_assert(kTile == 128, "the switch above covers kTile / 16 vectors");
  for (int64_t k = n; k < nnz; ++k) {
    const float* r = M + static_cast<int64_t>(idx[k]) * ld + j0;
    for (int t = 0; t < width; ++t) acc[t] += r[t];
  }
}

// The signed table (dense binary inputs, see signed_picks): acc = C[j0..] + sum over the
// picks of +-T[row], the sign in the top bit of each pick (flipped with an xor). With add,
// acc + C is the start. T has a spare row after its last, so whole vectors read
// past a tile's width stay inside it.
template <int NV>
EBM_INLINE void sum_signed_vectors(const float* T, int64_t ld, const int32_t* idx, int64_t m,
                                   int64_t j0, const float* C, bool add, float* acc) {
  vf16 a[NV];
  for (int t = 0; t < NV; ++t)
    a[t] = add ? load16(acc + 16 * t) + load16(C + j0 + 16 * t) : load16(C + j0 + 16 * t);
  add_signed_rows<NV>(T, ld, idx, m, j0, a);
  for (int t = 0; t < NV; ++t) store16(acc + 16 * t, a[t]);
}

EBM_CLONES static void sum_signed_tile(const float* T, int64_t ld, const int32_t* idx, int64_t m,
                                       int64_t j0, int width, const float* C, float* acc, bool add) {
  switch ((width + 15) / 16) {
#define EBM_CASE(NV) case NV: sum_signed_vectors<NV>(T, ld, idx, m, j0, C, add, acc); break;
    EBM_CASE(1) EBM_CASE(2) EBM_CASE(3) EBM_CASE(4) EBM_CASE(5) EBM_CASE(6) EBM_CASE(7)
    EBM_CASE(8)
#undef EBM_CASE
    default: break;
  }
}

// z = beta*acc + bias; write field, sigmoid(z) and/or Bernoulli(sigmoid(z)) samples.
EBM_CLONES static void epilogue_tile(const float* acc, const float* bias, float beta, int width,
                                     float* field, float* prob, float* sample, uint64_t seed,
                                     uint32_t stream, uint32_t chain, uint32_t step,
                                     uint32_t unit0) {
  alignas(32) float u[kTile];
  if (sample)
    philox_uniforms(seed, stream, chain, step, unit0 >> 2, static_cast<int>((width + 3) / 4), u);
  int t = 0;
  for (; t + 8 <= width; t += 8) {
    const vf8 z = beta * load8(acc + t) + load8(bias + t);
    if (field) store8(field + t, z);
    if (!prob && !sample) continue;
    const vf8 p = sigmoid8(z);
    if (prob) store8(prob + t, p);
    if (sample) store8(sample + t, less_as_float8(load8(u + t), p));
  }
  for (; t < width; ++t) {
    const float z = beta * acc[t] + bias[t];
    if (field) field[t] = z;
    if (!prob && !sample) continue;
    const float p = sigmoid_f(z);
    if (prob) prob[t] = p;
    if (sample) sample[t] = u[t] < p ? 1.0f : 0.0f;
  }
}

// Positions of the ones of a binary row x[0..n): branch-free, so idx needs n slots. The
// values are exactly 0 or 1, so the float itself is the increment (no compare).
int64_t nonzero_positions(const float* x, int64_t n, int32_t* idx) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    idx[m] = static_cast<int32_t>(i);
    m += static_cast<int64_t>(x[i]);
  }
  return m;
}

// Number of ones of a binary row (exact: integer-valued float partial sums < 2^24).
EBM_CLONES static double row_sum(const float* x, int64_t n) {
  vf8 a = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) a += load8(x + i);
  float s = 0.0f;
  for (; i < n; ++i) s += x[i];
  for (int l = 0; l < 8; ++l) s += a[l];
  return s;
}

// Table rows 16 g + s of the groups g whose 4-bit code s (bit b = x[4g + b]) is nonzero.
// The code of a binary group is x0 + 2 x1 + 4 x2 + 8 x3, computed in floats (exact) in a
// loop the compiler vectorises, then compacted.
EBM_CLONES static int64_t nonzero_nibbles(const float* x, int64_t n, int32_t* idx) {
  const int64_t full = n / 4;
  int32_t code[64];
  int64_t m = 0;
  for (int64_t g0 = 0; g0 < full; g0 += 64) {
    const int64_t ng = std::min<int64_t>(64, full - g0);
    const float* xg = x + 4 * g0;
    for (int64_t g = 0; g < ng; ++g)
      code[g] = static_cast<int32_t>(xg[4 * g] + 2.0f * xg[4 * g + 1] + 4.0f * xg[4 * g + 2] +
                                     8.0f * xg[4 * g + 3]);
    for (int64_t g = 0; g < ng; ++g) {
      idx[m] = static_cast<int32_t>(16 * (g0 + g)) + code[g];
      m += (code[g] != 0);
    }
  }
  if (full * 4 < n) {  // a last, partial group
    int32_t s = 0;
    for (int64_t b = 0; 4 * full + b < n; ++b) s |= static_cast<int32_t>(x[4 * full + b]) << b;
    idx[m] = static_cast<int32_t>(16 * full) + s;
    m += (s != 0);
  }
  return m;
}

// Picks of a binary row for the signed table: every group g of four units, with x = (1 +
// s) / 2 and code c = x0 + 2 x1 + 4 x2 + 8 x3: row 8 g + c when unit 4g + 3 is off, else
// row 8 g + (15 - c) negated (flipping all four spins negates the sum).
EBM_CLONES static int64_t signed_picks(const float* x, int64_t n, int32_t* idx) {
  const int64_t full = n / 4;
  for (int64_t g = 0; g < full; ++g) {
    const int32_t c = static_cast<int32_t>(x[4 * g] + 2.0f * x[4 * g + 1] + 4.0f * x[4 * g + 2] +
                                           8.0f * x[4 * g + 3]);
    const int32_t neg = c >> 3;
    const uint32_t row = static_cast<uint32_t>(8 * g + (neg ? 15 - c : c));
    idx[g] = static_cast<int32_t>(row | (neg ? kPickNegate : 0u));
  }
  if (full * 4 < n) {  // a last, partial group: the missing units' rows are zero (off)
    int32_t c = 0;
    for (int64_t b = 0; 4 * full + b < n; ++b) c |= static_cast<int32_t>(x[4 * full + b]) << b;
    idx[full] = static_cast<int32_t>(8 * full + c);
    return full + 1;
  }
  return full;
}

// The signed table of M (layout in kernels.h): x.M = C + sum_g +-row, x = (1 + s) / 2.
// Half a subset table's size: at 50% ones its picks (every group) are only 1/15 more than
// the subset table's (the nonzero groups), and half the bytes pass through the cache.

void build_signed_table(const float* M, int64_t n_in, int64_t n_out, float* T) {
  const int64_t n_groups = ceil_div(n_in, 4);
#pragma omp parallel for schedule(static) if (parallel_worth(n_groups * 8 * n_out))
  for (int64_t g = 0; g < n_groups; ++g) {
    float* base = T + 8 * g * n_out;
    for (int64_t j = 0; j < n_out; ++j) base[j] = 0.0f;
    for (int b = 0; b < 4 && 4 * g + b < n_in; ++b) {
      const float* m = M + (4 * g + b) * n_out;
      for (int64_t j = 0; j < n_out; ++j) base[j] -= 0.5f * m[j];
    }
    for (int c = 1; c < 8; ++c) {
      const int b = __builtin_ctz(static_cast<unsigned>(c));
      const float* prev = base + static_cast<int64_t>(c & (c - 1)) * n_out;
      float* e = base + static_cast<int64_t>(c) * n_out;
      if (4 * g + b < n_in) {
        const float* m = M + (4 * g + b) * n_out;
        for (int64_t j = 0; j < n_out; ++j) e[j] = prev[j] + m[j];
      } else {
        for (int64_t j = 0; j < n_out; ++j) e[j] = prev[j];
      }
    }
  }
  // C = 1/2 the column sums, rows added in order (columns shared out in blocks)
  float* C = T + 8 * n_groups * n_out;
  const int64_t n_blocks = ceil_div(n_out, 64);
#pragma omp parallel for schedule(static) if (parallel_worth(n_in * n_out))
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t j0 = blk * 64, j1 = std::min<int64_t>(n_out, j0 + 64);
    for (int64_t j = j0; j < j1; ++j) C[j] = 0.0f;
    for (int64_t i = 0; i < n_in; ++i)
      for (int64_t j = j0; j < j1; ++j) C[j] += M[i * n_out + j];
    for (int64_t j = j0; j < j1; ++j) C[j] *= 0.5f;
  }
  const int64_t pad = signed_table_rows(n_in, n_out) - 8 * n_groups - 1;
  for (int64_t j = 0; j < pad * n_out; ++j) C[n_out + j] = 0.0f;
}

// T [16 * ceil(n_in/4), n_out]: row 16 g + s = sum of the rows 4g + b of M with bit b of s
// set (row 16 g is zero and never read). Each entry adds one row to an earlier entry, so
// it costs one add per element and the sums are formed in a fixed order.
void build_subset_table(const float* M, int64_t n_in, int64_t n_out, float* T) {
  const int64_t n_groups = ceil_div(n_in, 4);
#pragma omp parallel for schedule(static) if (parallel_worth(n_groups * 16 * n_out))
  for (int64_t g = 0; g < n_groups; ++g) {
    float* base = T + 16 * g * n_out;
    for (int64_t j = 0; j < n_out; ++j) base[j] = 0.0f;
    for (int s = 1; s < 16; ++s) {
      const int64_t i = 4 * g + __builtin_ctz(static_cast<unsigned>(s));
      const float* prev = base + static_cast<int64_t>(s & (s - 1)) * n_out;
      float* e = base + static_cast<int64_t>(s) * n_out;
      if (i < n_in) {
        const float* m = M + i * n_out;
        for (int64_t j = 0; j < n_out; ++j) e[j] = prev[j] + m[j];
      } else {
        for (int64_t j = 0; j < n_out; ++j) e[j] = prev[j];
      }
    }
  }
}

void build_layer_tables(const float* M, int64_t n_in, int64_t n_out, float* T) {
  build_subset_table(M, n_in, n_out, T);
  build_signed_table(M, n_in, n_out, T + subset_table_rows(n_in) * n_out);
}

constexpr double kTableMinSaving = 16.0;
// The signed table once the nonzero groups are this share of all groups (50% ones: 0.94).
constexpr double kSignedMinGroups = 0.8;
// gibbs_chains builds both tables up front when steps x rows reach this (a table costs
// about as much as gathering a few hundred rows).
constexpr int64_t kPrebuildMinRowSteps = 512;

// ---------------------------------------------------------------- layer_update

namespace {

// One input of a binary layer update: the matrix its index lists point into (M itself,
// or its subset table) and how long a row's list can be.
struct BinarySource {
  const float* src = nullptr;
  int64_t n_src = 0;     // rows of src
  int64_t list_len = 0;  // slots per row's list
  bool table = false;
  bool signed_table = false;  // src is a signed table, C at row c_row
  int64_t c_row = 0;
};

// Choose gather, subset table or signed table for one binary input and build the table
// when needed (or take it from the prebuilt pair).
BinarySource binary_source(const BatchView& X, const LayerView& L, Slot table_slot) {
  const int64_t rows = X.rows, n_in = L.n_in, n_out = L.n_out;
  // A table pays for itself once the batch has enough rows to reuse it: the subset table
  // saves (ones - nonzero groups) row adds and costs 4 n_in rows written to fresh memory,
  // each a few times dearer than a row add from L2 (thresholds 8..64 timed within noise
  // at 784 x 500; 16 sits in the middle).
  // Decide from the number of ones alone (a vectorised sum), estimating the nonzero
  // groups as if the bits were independent: exact enough, and deterministic (the same
  // choice with or without prebuilt tables, except that those cost nothing to use).
  double ones = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : ones) if (parallel_worth(rows * n_in))
  for (int64_t r = 0; r < rows; ++r) ones += row_sum(X.X + r * n_in, n_in);
  const double density = ones / static_cast<double>(std::max<int64_t>(rows * n_in, 1));
  const double all_groups = static_cast<double>(rows * ceil_div(n_in, 4));
  const double groups = all_groups * (1.0 - std::pow(1.0 - density, 4.0));
  const bool repays = ones > kTableMinSaving * static_cast<double>(n_in);
  BinarySource s;
  if ((L.table != nullptr || repays) && groups >= kSignedMinGroups * all_groups) {
    s.signed_table = true;
    s.n_src = signed_table_rows(n_in, n_out);
    s.c_row = 8 * ceil_div(n_in, 4);
    if (L.table) {
      s.src = L.table + subset_table_rows(n_in) * n_out;
    } else {
      float* T = scratch<float>(table_slot, static_cast<size_t>(s.n_src * n_out));
      build_signed_table(L.M, n_in, n_out, T);
      s.src = T;
    }
    s.list_len = std::max<int64_t>(ceil_div(n_in, 4), 1);
    return s;
  }
  // A prebuilt table never needs more picks than the gather.
  s.table = L.table != nullptr || ones - groups > kTableMinSaving * static_cast<double>(n_in);
  s.src = L.M;
  s.n_src = n_in;
  if (s.table) {
    s.n_src = subset_table_rows(n_in);
    if (L.table) {
      s.src = L.table;
    } else {
      float* T = scratch<float>(table_slot, static_cast<size_t>(s.n_src * n_out));
      build_subset_table(L.M, n_in, n_out, T);
      s.src = T;
    }
  }
  s.list_len = std::max<int64_t>(s.table ? s.n_src / 16 : n_in, 1);
  return s;
}

int64_t row_list(const BinarySource& s, const float* x, int64_t n_in, int32_t* idx) {
  if (s.signed_table) return signed_picks(x, n_in, idx);
  return s.table ? nonzero_nibbles(x, n_in, idx) : nonzero_positions(x, n_in, idx);
}

// acc (add: +=) the tile [j0, j0 + width) of the row's sum for one source.
void sum_source_tile(const BinarySource& s, int64_t n_out, const int32_t* list, int64_t m,
                     int64_t j0, int width, float* acc, bool add) {
  if (s.signed_table)
    sum_signed_tile(s.src, n_out, list, m, j0, width, s.src + s.c_row * n_out, acc, add);
  else
    sum_rows_tile(s.src, n_out, s.n_src, list, m, j0, width, acc, add);
}

}  // namespace

void layer_update(const BatchView& X, const LayerView& L, const BatchView* X2,
                  const LayerView* L2, float beta, const LayerOutputs& out, uint32_t stream,
                  const RngView& rng) {
  const int64_t rows = X.rows, n_in = L.n_in, n_out = L.n_out;
  if (rows == 0 || n_out == 0) return;
  const bool two = X2 != nullptr && L2 != nullptr;
  const int64_t n_in2 = two ? L2->n_in : 0;
  const int64_t n_tiles = ceil_div(n_out, kTile);
  const int64_t per_task = rows_per_task(rows, omp_get_max_threads());
  const int64_t n_tasks = ceil_div(rows, per_task);

  auto finish = [&](int64_t r, int64_t j0, int width, const float* acc) {
    const int64_t o = r * n_out + j0;
    epilogue_tile(acc, L.bias + j0, beta, width, out.field ? out.field + o : nullptr,
                  out.prob ? out.prob + o : nullptr, out.sample ? out.sample + o : nullptr,
                  rng.seed, stream, rng.chain_offset + static_cast<uint32_t>(r), rng.step,
                  static_cast<uint32_t>(j0));
  };

  if (X.binary && (!two || X2->binary)) {
    const BinarySource s1 = binary_source(X, L, kSlotTable);
    BinarySource s2;
    if (two) s2 = binary_source(*X2, *L2, kSlotTable2);
    const int64_t list_len = s1.list_len + (two ? s2.list_len : 0);
#pragma omp parallel for schedule(static) if (parallel_worth(rows * n_out * 8))
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t r0 = task * per_task, r1 = std::min(rows, r0 + per_task);
      int32_t* idx = scratch<int32_t>(kSlotRowIndex, static_cast<size_t>(per_task * list_len));
      int64_t nnz[16], nnz2[16];
      for (int64_t r = r0; r < r1; ++r) {
        int32_t* lr = idx + (r - r0) * list_len;
        nnz[r - r0] = row_list(s1, X.X + r * n_in, n_in, lr);
        if (two) nnz2[r - r0] = row_list(s2, X2->X + r * n_in2, n_in2, lr + s1.list_len);
      }
      alignas(64) float acc[kTile];
      // Tile-outer: the n_src x kTile panels stay in L2 while this task's rows use them.
      // The second neighbour's rows are added after the first's: a fixed order.
      for (int64_t tile = 0; tile < n_tiles; ++tile) {
        const int64_t j0 = tile * kTile;
        const int width = static_cast<int>(std::min<int64_t>(kTile, n_out - j0));
        for (int64_t r = r0; r < r1; ++r) {
          const int32_t* lr = idx + (r - r0) * list_len;
          sum_source_tile(s1, n_out, lr, nnz[r - r0], j0, width, acc, false);
          if (two) sum_source_tile(s2, n_out, lr + s1.list_len, nnz2[r - r0], j0, width, acc, true);
          finish(r, j0, width, acc);
        }
      }
    }
    return;
  }

  // GEMM path: blocks of kGemmRows rows, one single-threaded sgemm per input each (the
  // BLAS pool never fights the OpenMP team), epilogue while the block is in cache.
  float* C = scratch<float>(kSlotGemm, static_cast<size_t>(rows * n_out));
  const int64_t n_blocks = ceil_div(rows, kGemmRows);
#pragma omp parallel for schedule(dynamic, 1) if (parallel_worth(rows * n_out * (n_in + n_in2)))
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t r0 = blk * kGemmRows, r1 = std::min(rows, r0 + kGemmRows);
    gemm_block(false, r1 - r0, n_out, n_in, 1.0f, X.X + r0 * n_in, n_in, L.M, n_out,
               C + r0 * n_out, n_out);
    if (two)
      gemm_block(false, r1 - r0, n_out, n_in2, 1.0f, X2->X + r0 * n_in2, n_in2, L2->M, n_out,
                 C + r0 * n_out, n_out, /*accumulate=*/true);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j0 = 0; j0 < n_out; j0 += kTile)
        finish(r, j0, static_cast<int>(std::min<int64_t>(kTile, n_out - j0)), C + r * n_out + j0);
  }
}

void layer_forward(const BatchView& X, const LayerView& L, float beta, const LayerOutputs& out,
                   uint32_t stream, const RngView& rng) {
  layer_update(X, L, nullptr, nullptr, beta, out, stream, rng);
}

// ---------------------------------------------------------------- gibbs_chains

void gibbs_chains(const LayerView& to_hidden, const LayerView& to_visible, float beta,
                  const float* V_in, float* V_out, float* H, int64_t rows, int k,
                  const RngView& rng) {
  LayerView vh = to_hidden, hv = to_visible;
  // Many steps with the same weights: build each layer's table once for all of them.
  if (k * rows >= kPrebuildMinRowSteps) {
    if (!vh.table) {
      float* T = scratch<float>(kSlotTableVH, static_cast<size_t>(layer_tables_floats(vh.n_in, vh.n_out)));
      build_layer_tables(vh.M, vh.n_in, vh.n_out, T);
      vh.table = T;
    }
    if (!hv.table) {
      float* T = scratch<float>(kSlotTableHV, static_cast<size_t>(layer_tables_floats(hv.n_in, hv.n_out)));
      build_layer_tables(hv.M, hv.n_in, hv.n_out, T);
      hv.table = T;
    }
  }
  for (int t = 0; t < k; ++t) {
    RngView r = rng;
    r.step = rng.step + static_cast<uint32_t>(t);
    LayerOutputs h_out, v_out;
    h_out.sample = H;
    v_out.sample = V_out;
    layer_forward(BatchView{t == 0 ? V_in : V_out, rows, true}, vh, beta, h_out,
                  kStreamHidden, r);
    layer_forward(BatchView{H, rows, true}, hv, beta, v_out, kStreamVisible, r);
  }
}

}  // namespace ebm::cpu
