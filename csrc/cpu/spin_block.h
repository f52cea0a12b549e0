// Blocks of sixteen +-1 spin chains: lane l of a SIMD register = chain c0 + l. The
// spin-chain sampler (ising_chains.cpp) holds its blocks site-major ([n][16]) and uses
// all of this: spin load/store through int32 lanes, the field refresh F = h + J S, the
// incremental field moves after flips (dense moves of a site block merged eight rows per
// pass, CSR moves per site, scalar moves of one lane) and the block gather. Hopfield
// recall (hopfield_recall.cpp) shares the blocking (kLanes, any_lane) but keeps its blocks
// lane-major: see the note at the top of that file.
// Header-only: every helper is inlined into the target_clones of its caller.
#pragma once
#include <cstdint>
#include <cstring>
#include "common/views.h"
#include "cpu/kernels.h"
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

// Dense couplings: the flips of a site block reach every field in passes of eight sites, F_j += sum_q J[site_q][j] d_q for all sixteen lanes at
// once (a J element feeds sixteen chains; work grows with lanes x sites, not flips).
template <int M>
EBM_INLINE void move_fields_dense(const IsingView& P, const int32_t* site, const vf16* D, float* F) {
  const float* rows[M];
  vf16 d[M];
  for (int q = 0; q < M; ++q) { rows[q] = P.J + P.n * site[q]; d[q] = D[q]; }
  for (int64_t j = 0; j < P.n; ++j) {
    vf16 acc = load16(F + kLanes * j);
    for (int q = 0; q < M; ++q) acc += rows[q][j] * d[q];
    store16(F + kLanes * j, acc);
  }
}

EBM_INLINE void move_fields_lanes(const IsingView& P, const int32_t* site, const vf16* D, int m, float* F) {
  int q0 = 0;
  for (; q0 + 8 <= m; q0 += 8) move_fields_dense<8>(P, site + q0, D + q0, F);
  switch (m - q0) {
    case 1: move_fields_dense<1>(P, site + q0, D + q0, F); break;
    case 2: move_fields_dense<2>(P, site + q0, D + q0, F); break;
    case 3: move_fields_dense<3>(P, site + q0, D + q0, F); break;
    case 4: move_fields_dense<4>(P, site + q0, D + q0, F); break;
    case 5: move_fields_dense<5>(P, site + q0, D + q0, F); break;
    case 6: move_fields_dense<6>(P, site + q0, D + q0, F); break;
    case 7: move_fields_dense<7>(P, site + q0, D + q0, F); break;
    default: break;
  }
}

// Chains [c0, c0 + lanes) of S [chains, n] into the block Sb [n][16]; padding lanes hold
// +1 spins (their decisions are masked off by the caller).
inline void gather_block(const int8_t* S, int64_t n, int64_t c0, int lanes, int8_t* Sb) {
  for (int64_t i = 0; i < n; ++i)
    for (int l = 0; l < kLanes; ++l)
      Sb[kLanes * i + l] = l < lanes ? S[(c0 + l) * n + i] : int8_t{1};
}

}  // namespace ebm::cpu::spin_block
