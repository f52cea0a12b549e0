// Dispatch of the hot CPU loops: each function marked EBM_CLONES is compiled three times
// (AVX-512, AVX2+FMA, baseline x86-64) and the loader picks the best for the machine, so
// one wheel is fast on new CPUs and still runs on old ones. Helpers they inline
// (Philox, exp/log polynomials) are vectorised inside each clone.
#pragma once
#include <algorithm>
#include <cstdint>
#include "common/math.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EBM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EBM_CLONES
#endif

namespace ebm::cpu {

// Width of an output tile: 128 floats = 16 AVX2 accumulators (measured best for the
// gather kernel: fewer, longer row segments per pick), a multiple of 4 so a Philox block
// (4 uniforms) never straddles two tiles.
constexpr int kTile = 128;

// Rows per BLAS call on the GEMM paths: fixed (not one block per thread) because BLAS
// rounds a row depending on its block and results must not depend on the thread count.
constexpr int64_t kGemmRows = 128;

// Below this many element operations a loop runs on the calling thread alone: waking a
// team costs microseconds, and far more when the cores are shared with other work.
constexpr int64_t kMinParallelWork = int64_t{1} << 17;
inline bool parallel_worth(int64_t work) { return work >= kMinParallelWork; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows per parallel task: small enough to balance two or more threads on a small batch,
// large enough that the tile of M each task walks stays hot in L2 across its rows.
inline int64_t rows_per_task(int64_t rows, int threads) {
  return std::clamp<int64_t>(rows / (4 * std::max(threads, 1)), 1, 16);
}

}  // namespace ebm::cpu

// ---------------------------------------------------------------- 8-wide float vectors
// GCC/Clang vector extensions: one source, lowered to AVX-512/AVX2/SSE by each clone.
// (The auto-vectoriser gives up on the clamp and floor of exp; these spell it out.)
namespace ebm::cpu {

typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

#define EBM_INLINE inline __attribute__((always_inline))

EBM_INLINE vf8 load8(const float* p) { vf8 v; __builtin_memcpy(&v, p, sizeof v); return v; }

// 16 floats: one zmm register where AVX-512 is on, two ymm (or four xmm) elsewhere.
typedef float vf16 __attribute__((vector_size(64)));
EBM_INLINE vf16 load16(const float* p) { vf16 v; __builtin_memcpy(&v, p, sizeof v); return v; }
EBM_INLINE void store16(float* p, vf16 v) { __builtin_memcpy(p, &v, sizeof v); }
EBM_INLINE void store8(float* p, vf8 v) { __builtin_memcpy(p, &v, sizeof v); }
EBM_INLINE vf8 splat8(float x) { return vf8{x, x, x, x, x, x, x, x}; }

// e^x, the same Cephes scheme as exp_f in common/math.h, a vector of lanes at a time
// (VF float lanes, VI the int32 lanes of the same count).
template <class VF, class VI>
EBM_INLINE VF exp_vec(VF x) {
  const VF zero = {};
  x = x < zero - 87.0f ? zero - 87.0f : x;
  x = x > zero + 88.0f ? zero + 88.0f : x;
  const VF fx = x * 1.44269504088896341f + 0.5f;
  VI n = __builtin_convertvector(fx, VI);            // truncation ...
  n += (__builtin_convertvector(n, VF) > fx);        // ... corrected to floor (true = -1)
  const VF nf = __builtin_convertvector(n, VF);
  VF r = x - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  const VF p = exp_reduced(r);
  const VI bits = (n + 127) << 23;
  VF scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

EBM_INLINE vf8 exp8(vf8 x) { return exp_vec<vf8, vi8>(x); }

typedef int32_t vi16 __attribute__((vector_size(64)));
EBM_INLINE vf16 exp16(vf16 x) { return exp_vec<vf16, vi16>(x); }
EBM_INLINE vf16 splat16(float x) { return vf16{} + x; }

// 16 int8 lanes: int8 -> int32 through int16 (GCC scalarises the direct conversion; this
// way it is vpmovsxbw + vpmovsxwd), int32 -> int8 directly (vpmovdb).
typedef int8_t vb16 __attribute__((vector_size(16)));
typedef int16_t vh16 __attribute__((vector_size(32)));
EBM_INLINE vi16 widen16(vb16 v) { return __builtin_convertvector(__builtin_convertvector(v, vh16), vi16); }
EBM_INLINE vb16 narrow16(vi16 v) { return __builtin_convertvector(v, vb16); }
EBM_INLINE vb16 load_b16(const int8_t* p) { vb16 v; __builtin_memcpy(&v, p, sizeof v); return v; }
EBM_INLINE void store_b16(int8_t* p, vb16 v) { __builtin_memcpy(p, &v, sizeof v); }

EBM_INLINE vf8 sigmoid8(vf8 z) { return 1.0f / (1.0f + exp8(-z)); }

// 1.0f where a < b, else 0.0f
EBM_INLINE vf8 less_as_float8(vf8 a, vf8 b) {
  const vi8 mask = a < b;
  const vi8 one = splat8(1.0f) == splat8(1.0f);  // all ones
  vi8 bits = mask & (one & 0x3f800000);
  vf8 out;
  __builtin_memcpy(&out, &bits, sizeof out);
  return out;
}

}  // namespace ebm::cpu

// ---------------------------------------------------------------- Philox across chains
// Sixteen chains side by side, the layout of the chain-parallel samplers whose SIMD lanes
// are chains: u[w][l] = uniform(seed, stream, chain = first_chain + l, step, unit =
// 4*block + w). The counter's chain word varies along the lanes and the block is fixed, so
// the four output words are already in lane order. Written with vector extensions so it
// inlines into each target_clones kernel: the 32x32 -> 64-bit products are the even/odd
// lane products of 64-bit lanes (vpmuludq).
#include "common/philox.h"

namespace ebm::cpu {

typedef uint32_t vu16 __attribute__((vector_size(64)));
typedef uint64_t vq8 __attribute__((vector_size(64)));

EBM_INLINE void mulhilo16(vu16 a, uint32_t m, vu16& hi, vu16& lo) {
  vq8 q;
  __builtin_memcpy(&q, &a, sizeof q);
  const vq8 lo32 = vq8{} + 0xFFFFFFFFull;
  const vq8 even = (q & lo32) * m;  // products of lanes 0, 2, 4, ...
  const vq8 odd = (q >> 32) * m;    // products of lanes 1, 3, 5, ...
  const vq8 l = (even & lo32) | (odd << 32);
  const vq8 h = (even >> 32) | (odd & ~lo32);
  __builtin_memcpy(&lo, &l, sizeof lo);
  __builtin_memcpy(&hi, &h, sizeof hi);
}

EBM_INLINE void philox_chain_lanes(uint64_t seed, uint32_t stream, uint32_t first_chain,
                                   uint32_t step, uint32_t block, vf16 u[4]) {
  const vu16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  vu16 c0 = vu16{} + block, c1 = lane + first_chain, c2 = vu16{} + step, c3 = vu16{} + stream;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    vu16 hi0, lo0, hi1, lo1;
    mulhilo16(c0, kPhiloxM0, hi0, lo0);
    mulhilo16(c2, kPhiloxM1, hi1, lo1);
    c0 = hi1 ^ c1 ^ k0;
    c2 = hi0 ^ c3 ^ k1;
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  u[0] = __builtin_convertvector(c0 >> 8, vf16) * kTwoPowMinus24;
  u[1] = __builtin_convertvector(c1 >> 8, vf16) * kTwoPowMinus24;
  u[2] = __builtin_convertvector(c2 >> 8, vf16) * kTwoPowMinus24;
  u[3] = __builtin_convertvector(c3 >> 8, vf16) * kTwoPowMinus24;
}

}  // namespace ebm::cpu
