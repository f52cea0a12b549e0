// Device side of the continuous MCMC chains: one thread per chain runs a chunk of RWMH /
// MALA / ULA steps (the algorithm of reference.mcmc_chains, the same Philox stream).
// Included by csrc/cuda/mcmc_chains.cu (built-in energies, compiled by nvcc) and read
// at run time by ebmfast.mcmc for user energies (ebmfast.energies.CudaSource), which
// CuPy's RawModule (NVRTC) compiles with EBM_NVRTC defined after the user's
// `energy(x, d)` and `grad(x, g, d)` device functions.
//
// Memory: each thread walks its own row of x [n_chains, d] and its own scratch row
// (y, grad x, grad y, energy scratch), so accesses are not coalesced across a warp; the
// chains are independent and the working set of small d stays in L1/L2.
#pragma once

#if defined(EBM_NVRTC)
// NVRTC has no csrc/common/philox.h: the same Philox4x32-10 (checked by the CUDA tests
// against reference.py through the samples they produce).
typedef unsigned int ebm_u32;
typedef unsigned long long ebm_u64;
typedef long long ebm_i64;
__device__ __forceinline__ void ebm_philox_block(ebm_u32 c0, ebm_u32 c1, ebm_u32 c2, ebm_u32 c3,
                                                 ebm_u32 k0, ebm_u32 k1, ebm_u32* o) {
  for (int r = 0; r < 10; ++r) {
    const ebm_u32 lo0 = 0xD2511F53u * c0, hi0 = __umulhi(0xD2511F53u, c0);
    const ebm_u32 lo1 = 0xCD9E8D57u * c2, hi1 = __umulhi(0xCD9E8D57u, c2);
    const ebm_u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  o[0] = c0; o[1] = c1; o[2] = c2; o[3] = c3;
}
#define EBM_STREAM_PROPOSAL 4u
#define EBM_STREAM_ACCEPT 5u
#else
#include <cstdint>
#include "common/philox.h"
typedef uint32_t ebm_u32;
typedef uint64_t ebm_u64;
typedef int64_t ebm_i64;
__device__ __forceinline__ void ebm_philox_block(ebm_u32 c0, ebm_u32 c1, ebm_u32 c2, ebm_u32 c3,
                                                 ebm_u32 k0, ebm_u32 k1, ebm_u32* o) {
  const ebm::PhiloxBlock b = ebm::philox4x32_10(c0, c1, c2, c3, k0, k1);
  o[0] = b.x[0]; o[1] = b.x[1]; o[2] = b.x[2]; o[3] = b.x[3];
}
#define EBM_STREAM_PROPOSAL 4u
#define EBM_STREAM_ACCEPT 5u
#endif

__device__ __forceinline__ float ebm_word_uniform(ebm_u32 w) {
  return (float)(w >> 8) * (1.0f / 16777216.0f);
}

// Plain parameters of one chunk (a flattened ebm::ChunkPlan + ChainsView, so that the
// NVRTC kernel needs no host header). Pointers are device pointers.
struct EbmChunk {
  float* x;            // [n_chains, d] (w)
  float* eps;          // [n_chains] (w when adapting)
  ebm_i64* n_accept;   // [n_chains] (w) or null
  float* samples;      // [n_steps / thin, n_chains, d] (w) or null
  double* energies;    // [n_steps / thin, n_chains] (w) or null
  float* scratch;      // [n_chains, per_chain] (w)
  ebm_i64 per_chain;
  ebm_i64 n_chains, d, n_steps, thin, adapt_index;
  ebm_u64 seed;
  ebm_u32 step, chain_offset;
  int adapt;
  float target_accept;
};

// kS: 0 RWMH, 1 MALA, 2 ULA. Energy: eval(x, g, scratch, d, with_grad) -> E(x).
template <class Energy, int kS>
__device__ void ebm_chain_loop(const Energy& E, const EbmChunk& P) {
  const ebm_i64 chain = (ebm_i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (chain >= P.n_chains) return;
  const ebm_i64 d = P.d;
  const bool grad = kS != 0;
  float* x = P.x + chain * d;
  float* y = P.scratch + chain * P.per_chain;
  float* gx = y + d;
  float* gy = gx + d;
  float* es = gy + d;
  const ebm_u32 k0 = (ebm_u32)P.seed, k1 = (ebm_u32)(P.seed >> 32);
  const ebm_u32 cid = P.chain_offset + (ebm_u32)chain;
  float ex = E.eval(x, gx, es, d, grad);
  for (ebm_i64 t = 0; t < P.n_steps; ++t) {
    const ebm_u32 step = P.step + (ebm_u32)t;
    const float h = P.eps[chain];
    const float half_h2 = 0.5f * h * h;
    float zz = 0.0f;
    // dims 2b, 2b+1 take units 4b..4b+3: one Philox block per pair of dims
    for (ebm_i64 b = 0; 2 * b < d; ++b) {
      ebm_u32 w[4];
      ebm_philox_block((ebm_u32)b, cid, step, EBM_STREAM_PROPOSAL, k0, k1, w);
      for (int q = 0; q < 2 && 2 * b + q < d; ++q) {
        const ebm_i64 i = 2 * b + q;
        const float u1 = ebm_word_uniform(w[2 * q]), u2 = ebm_word_uniform(w[2 * q + 1]);
        const float z = sqrtf(-2.0f * logf(1.0f - u1)) * cospif(2.0f * u2);
        zz += z * z;
        if (kS == 0) y[i] = x[i] + h * z;
        else if (kS == 1) y[i] = x[i] - half_h2 * gx[i] + h * z;
        else x[i] = x[i] - half_h2 * gx[i] + h * z;
      }
    }
    if (kS == 2) {
      ex = E.eval(x, gx, es, d, true);
      if (P.n_accept) P.n_accept[chain] += 1;
    } else {
      const float ey = E.eval(y, gy, es, d, grad);
      float log_alpha = ex - ey;
      if (kS == 1) {
        float bb = 0.0f;
        for (ebm_i64 i = 0; i < d; ++i) {
          const float back = x[i] - y[i] + half_h2 * gy[i];
          bb += back * back;
        }
        log_alpha += 0.5f * zz - bb / (2.0f * h * h);
      }
      ebm_u32 w[4];
      ebm_philox_block(0u, cid, step, EBM_STREAM_ACCEPT, k0, k1, w);
      if (ebm_word_uniform(w[0]) < expf(log_alpha)) {
        for (ebm_i64 i = 0; i < d; ++i) x[i] = y[i];
        if (grad)
          for (ebm_i64 i = 0; i < d; ++i) gx[i] = gy[i];
        ex = ey;
        if (P.n_accept) P.n_accept[chain] += 1;
      }
      if (P.adapt) {
        const float alpha = log_alpha >= 0.0f ? 1.0f : (log_alpha == log_alpha ? expf(log_alpha) : 0.0f);
        const float gain = (float)pow((double)(P.adapt_index + t + 1), -0.6);
        float le = logf(h) + gain * (alpha - P.target_accept);
        le = fminf(fmaxf(le, -20.0f), 10.0f);
        P.eps[chain] = expf(le);
      }
    }
    if (P.samples && (t + 1) % P.thin == 0) {
      const ebm_i64 k = t / P.thin;
      float* out = P.samples + (k * P.n_chains + chain) * d;
      for (ebm_i64 i = 0; i < d; ++i) out[i] = x[i];
      if (P.energies) P.energies[k * P.n_chains + chain] = (double)ex;
    }
  }
}

#if defined(EBM_NVRTC)
// User energy: `__device__ float energy(const float* x, int d)` and
// `__device__ void grad(const float* x, float* g, int d)` precede this header.
struct EbmUserEnergy {
  __device__ float eval(const float* x, float* g, float*, ebm_i64 d, bool with_grad) const {
    if (with_grad) grad(x, g, (int)d);
    return energy(x, (int)d);
  }
};
// Kernel arguments one by one (CuPy passes scalars and pointers, not structs).
#define EBM_CHAIN_ENTRY(NAME, KS)                                                          \
  extern "C" __global__ void NAME(float* x, float* eps, ebm_i64* n_accept, float* samples,  \
                                  double* energies, float* scratch, ebm_i64 per_chain,     \
                                  ebm_i64 n_chains, ebm_i64 d, ebm_i64 n_steps,            \
                                  ebm_i64 thin, ebm_i64 adapt_index, ebm_u64 seed,         \
                                  ebm_u32 step, ebm_u32 chain_offset, int adapt,           \
                                  float target_accept) {                                   \
    EbmChunk P;                                                                            \
    P.x = x; P.eps = eps; P.n_accept = n_accept; P.samples = samples;                      \
    P.energies = energies; P.scratch = scratch; P.per_chain = per_chain;                   \
    P.n_chains = n_chains; P.d = d; P.n_steps = n_steps; P.thin = thin;                    \
    P.adapt_index = adapt_index; P.seed = seed; P.step = step;                             \
    P.chain_offset = chain_offset; P.adapt = adapt; P.target_accept = target_accept;       \
    ebm_chain_loop<EbmUserEnergy, KS>(EbmUserEnergy(), P);                                 \
  }
EBM_CHAIN_ENTRY(ebm_chain_rwmh, 0)
EBM_CHAIN_ENTRY(ebm_chain_mala, 1)
EBM_CHAIN_ENTRY(ebm_chain_ula, 2)
#endif
