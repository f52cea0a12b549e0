// Blocks of sixteen +-1 spin chains: lane l of a SIMD register = chain c0 + l. The
// spin-chain sampler (ising_chains.cpp) and the Boltzmann-machine training step
// (bm_train.cpp) hold their blocks site-major ([n][16]) and use all of this: spin
// load/store through int32 lanes, the field refresh F = h + J S, the incremental field
// moves after flips (dense moves of a site block merged eight rows per pass, CSR moves per
// site, scalar moves of one lane), the block gather and the sequential sweep (incremental
// fields, or lazy ones computed per site block). Hopfield
// recall (hopfield_recall.cpp) shares the blocking (kLanes, any_lane) but keeps its blocks
// lane-major: see the note at the top of that file.
// Header-only: every helper is inlined into the target_clones of its caller.
#pragma once
#include <cstdint>
#include <cstring>
#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "common/philox.h"
#include "common/views.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"

namespace ebm::cpu::spin_block {

constexpr int kLanes = 16;

// Flips are merged over blocks of this many consecutive sites (a multiple of 4: one Philox
// block of uniforms per 4 sites).
constexpr int kSiteBlock = 32;

// int8 <-> float through int32 lanes (a direct float <-> int8 convertvector is scalarised
// by GCC).
EBM_INLINE vf16 load_spins(const int8_t* p) { return __builtin_convertvector(widen16(load_b16(p)), vf16); }
EBM_INLINE void store_spins(int8_t* p, vf16 s) { store_b16(p, narrow16(__builtin_convertvector(s, vi16))); }

// Bit l set where lane l of the sixteen int8 spins at p is +1.
EBM_INLINE uint32_t up_lanes(const int8_t* p) {
#if defined(__SSE2__)
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpgt_epi8(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), _mm_setzero_si128())));
#else
  uint32_t m = 0;
  for (int l = 0; l < kLanes; ++l) m |= static_cast<uint32_t>(p[l] > 0) << l;
  return m;
#endif
}

EBM_INLINE bool any_lane(vi16 m) {
  uint64_t w[8];
  std::memcpy(w, &m, sizeof w);
  return (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0;
}

// F = h + J S for the whole block (dense: one sgemm; CSR: row by row). Not inlined: it
// runs once per kRefreshSweeps sweeps, and inlined into every clone of the sweep loops it
// changed their code (ising_chains.cpp compiled as it was before this header existed).
__attribute__((noinline)) inline void refresh_fields(const IsingView& P, const int8_t* S, float* F) {
  const int64_t n = P.n;
  if (P.J != nullptr) {
    float* Sf = scratch<float>(kSlotSpinFloat, static_cast<size_t>(kLanes * n));
    for (int64_t i = 0; i < kLanes * n; ++i) Sf[i] = S[i];
    gemm_block(false, n, kLanes, n, 1.0f, P.J, n, Sf, kLanes, F, kLanes);
    for (int64_t i = 0; i < n; ++i) store16(F + kLanes * i, load16(F + kLanes * i) + P.h[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    vf16 acc = splat16(P.h[i]);
    for (int64_t k = P.indptr[i]; k < P.indptr[i + 1]; ++k)
      acc += P.data[k] * load_spins(S + kLanes * P.indices[k]);
    store16(F + kLanes * i, acc);
  }
}

// Fields of every neighbour j of site i move by J_ij * d (d = s_new - s_old per lane), CSR.
// The CSR arrays as locals: the int8 spin stores may alias anything (char), so pointers
// read through the view would be reloaded after every store.
struct Csr {
  const int64_t* indptr;
  const int32_t* indices;
  const float* data;
};

EBM_INLINE void move_fields_csr(const Csr& G, int64_t i, vf16 d, float* F) {
  const int64_t end = G.indptr[i + 1];
  for (int64_t k = G.indptr[i]; k < end; ++k) {
    float* f = F + kLanes * G.indices[k];
    store16(f, load16(f) + G.data[k] * d);
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

// Dense couplings: the flips of a site block reach the fields of the sites [j0, j1) in
// passes of eight sites, F_j += sum_q J[site_q][j] d_q for all sixteen lanes at once (a J
// element feeds sixteen chains; work grows with lanes x sites, not flips). With d_q the
// spins themselves instead of their changes, the same passes compute fields (J symmetric:
// J[site_q][j] = J[j][site_q]).
template <int M>
EBM_INLINE void move_fields_dense(const IsingView& P, const int32_t* site, const vf16* D, float* F,
                                  int64_t j0, int64_t j1) {
  const float* rows[M];
  vf16 d[M];
  for (int q = 0; q < M; ++q) { rows[q] = P.J + P.n * site[q]; d[q] = D[q]; }
  for (int64_t j = j0; j < j1; ++j) {
    // Four partial sums: a quarter of the chain of dependent multiply-adds per field, so
    // fewer fields' chains must be in flight to keep the FMA units busy.
    vf16 p[4] = {load16(F + kLanes * j), vf16{}, vf16{}, vf16{}};
    for (int q = 0; q < M; ++q) p[q & 3] += rows[q][j] * d[q];
    store16(F + kLanes * j, (p[0] + p[1]) + (p[2] + p[3]));
  }
}

EBM_INLINE void move_fields_lanes(const IsingView& P, const int32_t* site, const vf16* D, int m,
                                  float* F, int64_t j0, int64_t j1) {
  // Fields in chunks of 256 sites (16 KB): the passes of eight rows each find the chunk in
  // L1, where whole-range passes took F (64 KB at n = 1000) through L2 once per pass.
  constexpr int64_t kChunk = 256;
  for (int64_t c0 = j0; c0 < j1; c0 += kChunk) {
    const int64_t c1 = std::min(j1, c0 + kChunk);
    int q0 = 0;
    for (; q0 + 8 <= m; q0 += 8) move_fields_dense<8>(P, site + q0, D + q0, F, c0, c1);
    switch (m - q0) {
      case 1: move_fields_dense<1>(P, site + q0, D + q0, F, c0, c1); break;
      case 2: move_fields_dense<2>(P, site + q0, D + q0, F, c0, c1); break;
      case 3: move_fields_dense<3>(P, site + q0, D + q0, F, c0, c1); break;
      case 4: move_fields_dense<4>(P, site + q0, D + q0, F, c0, c1); break;
      case 5: move_fields_dense<5>(P, site + q0, D + q0, F, c0, c1); break;
      case 6: move_fields_dense<6>(P, site + q0, D + q0, F, c0, c1); break;
      case 7: move_fields_dense<7>(P, site + q0, D + q0, F, c0, c1); break;
      default: break;
    }
  }
}

// F_j += sum_{k in [k0, k1)} J_jk s_k for the NJ sites j0..j0+NJ-1: their fields held in
// registers while the sources stream past, one spin vector feeding NJ multiply-adds (J
// symmetric: row k holds J_jk for consecutive j). NJ independent accumulators keep the
// FMA units busy; the merged passes below (fields loaded and stored per eight sources,
// eight dependent FMAs per field) ran at about half their rate here.
template <int NJ>
EBM_INLINE void add_fields_sites(const IsingView& P, const float* Sf, int64_t k0, int64_t k1,
                                 float* F, int64_t j0) {
  vf16 acc[NJ];
  for (int t = 0; t < NJ; ++t) acc[t] = load16(F + kLanes * (j0 + t));
  const float* row = P.J + P.n * k0 + j0;
  for (int64_t k = k0; k < k1; ++k, row += P.n) {
    const vf16 s = load16(Sf + kLanes * k);
    for (int t = 0; t < NJ; ++t) acc[t] += row[t] * s;
  }
  for (int t = 0; t < NJ; ++t) store16(F + kLanes * (j0 + t), acc[t]);
}

// F_j += sum_{k in [k0, k1)} J_jk s_k for j in [j0, j1), eight sites at a time (then 4, 2,
// 1); Sf [n][16] the spins as floats (converted once, not once per pass).
EBM_INLINE void add_fields_from(const IsingView& P, const float* Sf, int64_t k0, int64_t k1,
                                float* F, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 8 <= j1; j += 8) add_fields_sites<8>(P, Sf, k0, k1, F, j);
  if (j + 4 <= j1) { add_fields_sites<4>(P, Sf, k0, k1, F, j); j += 4; }
  if (j + 2 <= j1) { add_fields_sites<2>(P, Sf, k0, k1, F, j); j += 2; }
  if (j < j1) add_fields_sites<1>(P, Sf, k0, k1, F, j);
}

// dst[k * dst_stride + r] = src[r * src_stride + k] for a 16 x 16 tile of bytes: four
// rounds of unpacks (64 shuffles) instead of 256 single-byte moves.
inline void transpose16x16(const int8_t* src, int64_t src_stride, int8_t* dst, int64_t dst_stride) {
#if defined(__SSE2__)
  __m128i a[16], b[16];
  for (int r = 0; r < 16; ++r)
    a[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + r * src_stride));
  for (int r = 0; r < 8; ++r) {  // bytes of rows (2r, 2r + 1) interleaved
    b[2 * r] = _mm_unpacklo_epi8(a[2 * r], a[2 * r + 1]);
    b[2 * r + 1] = _mm_unpackhi_epi8(a[2 * r], a[2 * r + 1]);
  }
  for (int q = 0; q < 4; ++q)  // then pairs of rows 4q..4q+3 as 16-bit units
    for (int h = 0; h < 2; ++h) {
      a[4 * q + 2 * h] = _mm_unpacklo_epi16(b[4 * q + h], b[4 * q + 2 + h]);
      a[4 * q + 2 * h + 1] = _mm_unpackhi_epi16(b[4 * q + h], b[4 * q + 2 + h]);
    }
  for (int q = 0; q < 2; ++q)  // quads of rows as 32-bit units
    for (int h = 0; h < 4; ++h) {
      b[8 * q + 2 * h] = _mm_unpacklo_epi32(a[8 * q + h], a[8 * q + 4 + h]);
      b[8 * q + 2 * h + 1] = _mm_unpackhi_epi32(a[8 * q + h], a[8 * q + 4 + h]);
    }
  for (int h = 0; h < 8; ++h) {  // octets of rows as 64-bit units: column k complete
    a[2 * h] = _mm_unpacklo_epi64(b[h], b[8 + h]);
    a[2 * h + 1] = _mm_unpackhi_epi64(b[h], b[8 + h]);
  }
  for (int k = 0; k < 16; ++k)  // a[k] now holds column k
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k * dst_stride), a[k]);
#else
  for (int r = 0; r < 16; ++r)
    for (int k = 0; k < 16; ++k) dst[k * dst_stride + r] = src[r * src_stride + k];
#endif
}

// Chains [c0, c0 + lanes) of S [chains, n] into the block Sb [n][16]; padding lanes hold
// +1 spins (their decisions are masked off by the caller).
inline void gather_block(const int8_t* S, int64_t n, int64_t c0, int lanes, int8_t* Sb) {
  int64_t i = 0;
  if (lanes == kLanes)
    for (; i + 16 <= n; i += 16) transpose16x16(S + c0 * n + i, n, Sb + kLanes * i, kLanes);
  for (; i < n; ++i)
    for (int l = 0; l < kLanes; ++l)
      Sb[kLanes * i + l] = l < lanes ? S[(c0 + l) * n + i] : int8_t{1};
}

// The block's spins back into chains [c0, c0 + lanes) of S.
inline void scatter_block(const int8_t* Sb, int64_t n, int64_t c0, int lanes, int8_t* S) {
  int64_t i = 0;
  if (lanes == kLanes)
    for (; i + 16 <= n; i += 16) transpose16x16(Sb + kLanes * i, kLanes, S + c0 * n + i, n);
  for (int l = 0; l < lanes; ++l)
    for (int64_t j = i; j < n; ++j) S[(c0 + l) * n + j] = Sb[kLanes * j + l];
}

struct Block {
  const IsingView* P;
  const SweepPlan* plan;
  int8_t* S;       // [n][16] spins of the block's chains
  float* F;        // [n][16] local fields g = h + J s
  int64_t* flips;  // [16]
  double* energy;  // [16] per sweep, scratch
  int lanes;       // valid lanes (the last block may be partial)
  uint32_t chain0; // Philox chain of lane 0
  // Lazy fields only (sweep_sequential<true, kGibbs, true>): the sites below first_free
  // are clamped, and base [n][16] holds h + J s over them for the sites from first_free on;
  // Sf [n][16] the spins as floats, kept equal to S.
  const float* base = nullptr;
  int64_t first_free = 0;
  float* Sf = nullptr;
};

// True where the proposal flip of spin s with field g is taken (u uniform in [0, 1)).
// Metropolis: u < exp(-beta dE) with dE = -2 s g. Heat bath: s_new = +1 iff u < p(+1) =
// 1 / (1 + exp(2 beta g)), a flip where that differs from s.
// The sequential sweeps turn the uniforms of a site block into thresholds first (the same
// rule, rounded differently: DESIGN §3 allows it). Heat bath: L = ln((1 - u) / u) (u = 0:
// +inf), u < 1 / (1 + exp(2 beta g)) <=> 2 beta g < L. The logs of a site block are taken
// together at the throughput of the vector units, off each site's path from field to
// decision that an exp (and a division) would lengthen: 10-37% faster sweeps, measured.
EBM_INLINE void heat_bath_thresholds(float* u, int count) {  // count: a multiple of 16
  for (int k = 0; k < count; k += kLanes) {
    const vf16 v = load16(u + k);
    const vf16 L = log16((1.0f - v) / (v > 0.0f ? v : 1.0f));
    store16(u + k, v > 0.0f ? L : __builtin_inff());
  }
}

EBM_INLINE vi16 decide_threshold(vf16 s, vf16 g, vf16 L, float beta) {
  return ((2.0f * beta) * g < L) != (s > 0.0f);
}

// Metropolis: u < exp(2 beta g s) <=> ln u < 2 beta g s (u = 0: -inf, always taken).
EBM_INLINE void metropolis_thresholds(float* u, int count) {  // count: a multiple of 16
  for (int k = 0; k < count; k += kLanes) {
    const vf16 v = load16(u + k);
    const vf16 L = log16(v > 0.0f ? v : 1.0f);
    store16(u + k, v > 0.0f ? L : -__builtin_inff());
  }
}

EBM_INLINE vi16 decide_metropolis_threshold(vf16 s, vf16 g, vf16 L, float beta) {
  return L < (2.0f * beta) * (g * s);
}

// One sequential sweep (sites 0..n-1; site i draws unit i of kStreamAccept at (chain, step)).
// Incremental fields (kLazy false): F holds h + J s on entry and is kept up to date, the
// flips of each site block merged into every field after the block. Lazy fields (dense
// only): the fields of a site block are computed from the current spins just before it,
// F = base + J S over the free sites, and nothing is moved afterwards: one sweep costs n_free
// x n_free multiply-adds per lane whatever the flips, against a refresh plus moves into
// every field for the incremental form, and the fields of clamped sites are never touched.
// Either way flips earlier in the same site block are added on the fly, and the decisions
// compare fields with thresholds computed from the uniforms beforehand.
template <bool kDense, bool kGibbs, bool kLazy = false>
EBM_INLINE void sweep_sequential(const Block& B, float beta, uint64_t seed, uint32_t step) {
  static_assert(kDense || !kLazy, "lazy fields need dense couplings");
  const IsingView& P = *B.P;
  const uint8_t* clamped = B.plan->clamped;
  const Csr G{P.indptr, P.indices, P.data};
  const int64_t n = P.n;
  const int64_t first = kLazy ? B.first_free : 0;
  const float* J = P.J;
  float* const F = B.F;
  int8_t* const S = B.S;
  vi16 valid = {}, count = {};
  for (int l = 0; l < kLanes; ++l) valid[l] = l < B.lanes ? -1 : 0;
  alignas(64) float u[kSiteBlock * kLanes];  // u + 16 (i - i0): the 16 chains' uniforms of site i
  int32_t site[kSiteBlock];
  vf16 D[kSiteBlock];
  // Site blocks stay aligned to kSiteBlock (the Philox blocks of the units do not move).
  for (int64_t i0 = first / kSiteBlock * kSiteBlock; i0 < n; i0 += kSiteBlock) {
    const int64_t i_end = std::min<int64_t>(i0 + kSiteBlock, n);
    const int64_t i_begin = std::max(i0, first);
    if constexpr (kLazy) {
      std::memcpy(F + kLanes * i_begin, B.base + kLanes * i_begin,
                  sizeof(float) * kLanes * static_cast<size_t>(i_end - i_begin));
      add_fields_from(P, B.Sf, first, n, F, i_begin, i_end);
    }
    philox_chain_lanes(seed, kStreamAccept, B.chain0, step, static_cast<uint32_t>(i0 / 4),
                       static_cast<int>((i_end - i0 + 3) / 4), u);
    const int n_u = static_cast<int>(kLanes * ((i_end - i0 + 3) / 4 * 4));
    if constexpr (kGibbs) heat_bath_thresholds(u, n_u);
    else metropolis_thresholds(u, n_u);
    int m = 0;
    for (int64_t i = i_begin; i < i_end; ++i) {
      if (clamped != nullptr && clamped[i]) continue;
      vf16 g = load16(F + kLanes * i);
      if constexpr (kLazy) {
        // Flips earlier in this site block, not yet in F, in four partial sums: the chain of
        // dependent multiply-adds before the decision is a quarter as long.
        vf16 c[4] = {};
        int q = 0;
        for (; q + 4 <= m; q += 4)
          for (int k = 0; k < 4; ++k) c[k] += J[n * site[q + k] + i] * D[q + k];
        for (; q < m; ++q) c[0] += J[n * site[q] + i] * D[q];
        g += (c[0] + c[1]) + (c[2] + c[3]);
      } else if constexpr (kDense) {
        for (int q = 0; q < m; ++q)  // flips earlier in this site block, not yet in F
          g += J[n * site[q] + i] * D[q];
      }
      const vf16 s = load_spins(S + kLanes * i);
      const vf16 ui = load16(u + kLanes * (i - i0));  // thresholds from the uniforms
      const vi16 flip = (kGibbs ? decide_threshold(s, g, ui, beta)
                                : decide_metropolis_threshold(s, g, ui, beta)) & valid;
      // Dense: a site no lane flipped stays out of the merged pass. Sparse: the masked
      // update of a few neighbours is cheaper than the test.
      if (kDense && !any_lane(flip)) continue;
      const vf16 d = flip ? -2.0f * s : vf16{};
      store_spins(S + kLanes * i, s + d);
      if constexpr (kLazy) store16(B.Sf + kLanes * i, s + d);
      count -= flip;
      if constexpr (kDense) {
        site[m] = static_cast<int32_t>(i);
        D[m++] = d;
      } else {
        move_fields_csr(G, i, d, F);
      }
    }
    if constexpr (kDense && !kLazy) move_fields_lanes(P, site, D, m, F, 0, n);
  }
  for (int l = 0; l < B.lanes; ++l) B.flips[l] += count[l];
}

}  // namespace ebm::cpu::spin_block
