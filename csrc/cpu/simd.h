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

// ln x for finite x > 0, sixteen lanes: log_f of common/math.h (Cephes logf) spelled out
// in vector operations (the auto-vectoriser leaves the scalar one as it is).
EBM_INLINE vf16 log16(vf16 x) {
  vi16 u;
  __builtin_memcpy(&u, &x, sizeof u);
  vi16 e = ((u >> 23) & 0xff) - 126;  // x = m * 2^e, m in [0.5, 1)
  const vi16 mb = (u & 0x007fffff) | 0x3f000000;
  vf16 m;
  __builtin_memcpy(&m, &mb, sizeof m);
  const vi16 small = m < 0.707106781186547524f;  // -1 where true
  e += small;
  m = small ? (m + m - 1.0f) : (m - 1.0f);
  return log_reduced(m, __builtin_convertvector(e, vf16));
}
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
