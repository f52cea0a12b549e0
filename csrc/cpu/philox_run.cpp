// Runs of consecutive Philox uniforms for the CPU epilogues. The 32x32 -> 64-bit products
// at the heart of Philox do not auto-vectorise, so the AVX-512 and AVX2 paths spell them
// out with mul_epu32 on even and odd lanes (16 or 8 counter blocks per pass); other CPUs
// take the portable loop of common/philox.h. All give identical bits.
#include <immintrin.h>
#include <cstdlib>
#include <string>
#include "common/philox.h"
#include "cpu/philox_run.h"

namespace ebm::cpu {

namespace {

#if defined(__x86_64__) && defined(__GNUC__)
#define EBM_HAVE_AVX2_PATH 1

__attribute__((target("avx2"))) inline void mulhilo8(__m256i a, __m256i m, __m256i& hi,
                                                      __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                         // lanes 0,2,4,6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lanes 1,3,5,7
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

__attribute__((target("avx2"))) inline __m256 to_uniform8(__m256i w) {
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w, 8)), _mm256_set1_ps(kTwoPowMinus24));
}

// Words (c0..c3) of 8 blocks -> out[4*l + w] for the first `valid` blocks (<= 8 stored).
__attribute__((target("avx2"))) inline void store_blocks8(__m256i c0, __m256i c1, __m256i c2,
                                                          __m256i c3, float* out, int valid) {
  const __m256 w0 = to_uniform8(c0), w1 = to_uniform8(c1), w2 = to_uniform8(c2),
               w3 = to_uniform8(c3);
  const __m256d a = _mm256_castps_pd(_mm256_unpacklo_ps(w0, w1));  // b0 b1 | b4 b5 (w0 w1)
  const __m256d b = _mm256_castps_pd(_mm256_unpacklo_ps(w2, w3));  // (w2 w3)
  const __m256d c = _mm256_castps_pd(_mm256_unpackhi_ps(w0, w1));  // b2 b3 | b6 b7
  const __m256d d = _mm256_castps_pd(_mm256_unpackhi_ps(w2, w3));
  const __m256 t0 = _mm256_castpd_ps(_mm256_unpacklo_pd(a, b));  // b0 | b4
  const __m256 t1 = _mm256_castpd_ps(_mm256_unpackhi_pd(a, b));  // b1 | b5
  const __m256 t2 = _mm256_castpd_ps(_mm256_unpacklo_pd(c, d));  // b2 | b6
  const __m256 t3 = _mm256_castpd_ps(_mm256_unpackhi_pd(c, d));  // b3 | b7
  alignas(32) float tmp[32];
  float* o = valid >= 8 ? out : tmp;
  _mm256_storeu_ps(o, _mm256_permute2f128_ps(t0, t1, 0x20));
  _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(t2, t3, 0x20));
  _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(t0, t1, 0x31));
  _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(t2, t3, 0x31));
  if (o == tmp)
    for (int i = 0; i < 4 * valid; ++i) out[i] = tmp[i];
}

// Ten Philox rounds on the counters (c0..c3) of 8 lanes (AVX2) or 16 lanes (AVX-512).
__attribute__((target("avx2"))) inline void rounds8(__m256i& c0, __m256i& c1, __m256i& c2,
                                                   __m256i& c3, uint32_t k0, uint32_t k1) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  for (int r = 0; r < 10; ++r) {
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(c0, m0, hi0, lo0);
    mulhilo8(c2, m1, hi1, lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

__attribute__((target("avx512f"))) inline void rounds16(__m512i& c0, __m512i& c1, __m512i& c2,
                                                       __m512i& c3, uint32_t k0, uint32_t k1) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  for (int r = 0; r < 10; ++r) {
    const __m512i e0 = _mm512_mul_epu32(c0, m0), o0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), m0);
    const __m512i e1 = _mm512_mul_epu32(c2, m1), o1 = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), m1);
    const __m512i lo0 = _mm512_mask_blend_epi32(0xAAAA, e0, _mm512_slli_epi64(o0, 32));
    const __m512i hi0 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(e0, 32), o0);
    const __m512i lo1 = _mm512_mask_blend_epi32(0xAAAA, e1, _mm512_slli_epi64(o1, 32));
    const __m512i hi1 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(e1, 32), o1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

__attribute__((target("avx2"))) void run_avx2(uint64_t seed, uint32_t stream, uint32_t chain,
                                              uint32_t step, uint32_t first_block, int n_blocks,
                                              float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int base = 0; base < n_blocks; base += 8) {
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first_block + base)), lane);
    __m256i c1 = _mm256_set1_epi32(static_cast<int>(chain));
    __m256i c2 = _mm256_set1_epi32(static_cast<int>(step));
    __m256i c3 = _mm256_set1_epi32(static_cast<int>(stream));
    rounds8(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    store_blocks8(c0, c1, c2, c3, out + 4 * base, n_blocks - base);
  }
}

// Ten rounds on 16 counter blocks at once (AVX-512: one instruction does what two do in
// AVX2; 64 uniforms per pass), stored through the AVX2 transpose one half at a time.
__attribute__((target("avx512f,avx2"))) void run_avx512(uint64_t seed, uint32_t stream,
                                                        uint32_t chain, uint32_t step,
                                                        uint32_t first_block, int n_blocks,
                                                        float* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int base = 0; base < n_blocks; base += 16) {
    __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first_block + base)), lane);
    __m512i c1 = _mm512_set1_epi32(static_cast<int>(chain));
    __m512i c2 = _mm512_set1_epi32(static_cast<int>(step));
    __m512i c3 = _mm512_set1_epi32(static_cast<int>(stream));
    rounds16(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    store_blocks8(_mm512_castsi512_si256(c0), _mm512_castsi512_si256(c1),
                  _mm512_castsi512_si256(c2), _mm512_castsi512_si256(c3), out + 4 * base,
                  n_blocks - base);
    if (n_blocks - base > 8)
      store_blocks8(_mm512_extracti64x4_epi64(c0, 1), _mm512_extracti64x4_epi64(c1, 1),
                    _mm512_extracti64x4_epi64(c2, 1), _mm512_extracti64x4_epi64(c3, 1),
                    out + 4 * (base + 8), n_blocks - base - 8);
  }
}


// philox_lanes16: sixteen independent counters (c0[l], c1[l], step, c3[l]).
__attribute__((target("avx512f"))) void lanes_avx512(const uint32_t* c0_in, const uint32_t* c1_in,
                                                    uint32_t step, const uint32_t* c3_in,
                                                    uint32_t k0, uint32_t k1, float* out,
                                                    bool word_major) {
  __m512i c0 = _mm512_loadu_si512(c0_in), c1 = _mm512_loadu_si512(c1_in);
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(step)), c3 = _mm512_loadu_si512(c3_in);
  rounds16(c0, c1, c2, c3, k0, k1);
  const __m512 scale = _mm512_set1_ps(kTwoPowMinus24);
  alignas(64) float t[4][16];
  float* w = word_major ? out : &t[0][0];
  _mm512_storeu_ps(w, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c0, 8)), scale));
  _mm512_storeu_ps(w + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c1, 8)), scale));
  _mm512_storeu_ps(w + 32, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c2, 8)), scale));
  _mm512_storeu_ps(w + 48, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c3, 8)), scale));
  if (!word_major)
    for (int l = 0; l < 16; ++l)
      for (int q = 0; q < 4; ++q) out[4 * l + q] = t[q][l];
}

__attribute__((target("avx2"))) void lanes_avx2(const uint32_t* c0_in, const uint32_t* c1_in,
                                               uint32_t step, const uint32_t* c3_in, uint32_t k0,
                                               uint32_t k1, float* out, bool word_major) {
  for (int half = 0; half < 2; ++half) {
    const int o = 8 * half;
    __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c0_in + o));
    __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c1_in + o));
    __m256i c2 = _mm256_set1_epi32(static_cast<int>(step));
    __m256i c3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c3_in + o));
    rounds8(c0, c1, c2, c3, k0, k1);
    alignas(32) float t[4][8];
    _mm256_store_ps(t[0], to_uniform8(c0));
    _mm256_store_ps(t[1], to_uniform8(c1));
    _mm256_store_ps(t[2], to_uniform8(c2));
    _mm256_store_ps(t[3], to_uniform8(c3));
    for (int l = 0; l < 8; ++l)
      for (int q = 0; q < 4; ++q) {
        if (word_major) out[16 * q + o + l] = t[q][l];
        else out[4 * (o + l) + q] = t[q][l];
      }
  }
}

// philox_chain_lanes: lane l = chain first_chain + l, one counter block per call of rounds.
__attribute__((target("avx512f"))) void chain_lanes_avx512(uint64_t seed, uint32_t stream,
                                                          uint32_t first_chain, uint32_t step,
                                                          uint32_t first_block, int n_blocks,
                                                          float* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 scale = _mm512_set1_ps(kTwoPowMinus24);
  for (int b = 0; b < n_blocks; ++b) {
    __m512i c0 = _mm512_set1_epi32(static_cast<int>(first_block + b));
    __m512i c1 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first_chain)), lane);
    __m512i c2 = _mm512_set1_epi32(static_cast<int>(step));
    __m512i c3 = _mm512_set1_epi32(static_cast<int>(stream));
    rounds16(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    float* o = out + 64 * b;
    _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c0, 8)), scale));
    _mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c1, 8)), scale));
    _mm512_storeu_ps(o + 32, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c2, 8)), scale));
    _mm512_storeu_ps(o + 48, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c3, 8)), scale));
  }
}

__attribute__((target("avx2"))) void chain_lanes_avx2(uint64_t seed, uint32_t stream,
                                                     uint32_t first_chain, uint32_t step,
                                                     uint32_t first_block, int n_blocks, float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int b = 0; b < n_blocks; ++b)
    for (int half = 0; half < 2; ++half) {
      __m256i c0 = _mm256_set1_epi32(static_cast<int>(first_block + b));
      __m256i c1 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first_chain + 8 * half)), lane);
      __m256i c2 = _mm256_set1_epi32(static_cast<int>(step));
      __m256i c3 = _mm256_set1_epi32(static_cast<int>(stream));
      rounds8(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
      float* o = out + 64 * b + 8 * half;
      _mm256_storeu_ps(o, to_uniform8(c0));
      _mm256_storeu_ps(o + 16, to_uniform8(c1));
      _mm256_storeu_ps(o + 32, to_uniform8(c2));
      _mm256_storeu_ps(o + 48, to_uniform8(c3));
    }
}
#endif

void chain_lanes_portable(uint64_t seed, uint32_t stream, uint32_t first_chain, uint32_t step,
                          uint32_t first_block, int n_blocks, float* out) {
  for (int b = 0; b < n_blocks; ++b)
    for (int l = 0; l < 16; ++l) {
      const PhiloxBlock x = philox4x32_10(first_block + b, first_chain + l, step, stream,
                                          static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
      for (int q = 0; q < 4; ++q) out[64 * b + 16 * q + l] = philox_word_to_uniform(x.x[q]);
    }
}

using ChainLanesFn = void (*)(uint64_t, uint32_t, uint32_t, uint32_t, uint32_t, int, float*);

ChainLanesFn pick_chain_lanes() {
  const char* force = std::getenv("EBMFAST_PHILOX_LANES");
  const std::string want = force ? force : "";
  if (want == "portable") return &chain_lanes_portable;
#ifdef EBM_HAVE_AVX2_PATH
  if (want != "avx2" && __builtin_cpu_supports("avx512f")) return &chain_lanes_avx512;
  if (__builtin_cpu_supports("avx2")) return &chain_lanes_avx2;
#endif
  return &chain_lanes_portable;
}

void lanes_portable(const uint32_t* c0, const uint32_t* c1, uint32_t step, const uint32_t* c3,
                    uint32_t k0, uint32_t k1, float* out, bool word_major) {
  for (int l = 0; l < 16; ++l) {
    const PhiloxBlock b = philox4x32_10(c0[l], c1[l], step, c3[l], k0, k1);
    for (int q = 0; q < 4; ++q)
      out[word_major ? 16 * q + l : 4 * l + q] = philox_word_to_uniform(b.x[q]);
  }
}

using LanesFn = void (*)(const uint32_t*, const uint32_t*, uint32_t, const uint32_t*, uint32_t,
                         uint32_t, float*, bool);

// EBMFAST_PHILOX_LANES=portable|avx2 forces a narrower implementation (the tests check every
// one against the others on a machine that has them all).
LanesFn pick_lanes() {
  const char* force = std::getenv("EBMFAST_PHILOX_LANES");
  const std::string want = force ? force : "";
  if (want == "portable") return &lanes_portable;
#ifdef EBM_HAVE_AVX2_PATH
  if (want != "avx2" && __builtin_cpu_supports("avx512f")) return &lanes_avx512;
  if (__builtin_cpu_supports("avx2")) return &lanes_avx2;
#endif
  return &lanes_portable;
}

using RunFn = void (*)(uint64_t, uint32_t, uint32_t, uint32_t, uint32_t, int, float*);

RunFn pick() {
#ifdef EBM_HAVE_AVX2_PATH
  if (__builtin_cpu_supports("avx512f")) return &run_avx512;
  if (__builtin_cpu_supports("avx2")) return &run_avx2;
#endif
  return &philox_uniform_run;
}

}  // namespace

bool philox_uniforms_with(PhiloxImpl impl, uint64_t seed, uint32_t stream, uint32_t chain,
                          uint32_t step, uint32_t first_block, int n_blocks, float* out) {
  switch (impl) {
    case PhiloxImpl::kPortable:
      philox_uniform_run(seed, stream, chain, step, first_block, n_blocks, out);
      return true;
#ifdef EBM_HAVE_AVX2_PATH
    case PhiloxImpl::kAvx2:
      if (!__builtin_cpu_supports("avx2")) return false;
      run_avx2(seed, stream, chain, step, first_block, n_blocks, out);
      return true;
    case PhiloxImpl::kAvx512:
      if (!__builtin_cpu_supports("avx512f")) return false;
      run_avx512(seed, stream, chain, step, first_block, n_blocks, out);
      return true;
#endif
    default:
      return false;
  }
}

void philox_chain_lanes(uint64_t seed, uint32_t stream, uint32_t first_chain, uint32_t step,
                        uint32_t first_block, int n_blocks, float* out) {
  static const ChainLanesFn lanes = pick_chain_lanes();
  lanes(seed, stream, first_chain, step, first_block, n_blocks, out);
}

void philox_lanes16(const uint32_t* c0, const uint32_t* c1, uint32_t step, const uint32_t* c3,
                    uint64_t seed, float* out, bool word_major) {
  static const LanesFn lanes = pick_lanes();
  lanes(c0, c1, step, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), out,
        word_major);
}

void philox_uniforms(uint64_t seed, uint32_t stream, uint32_t chain, uint32_t step,
                     uint32_t first_block, int n_blocks, float* out) {
  static const RunFn run = pick();
  run(seed, stream, chain, step, first_block, n_blocks, out);
}

}  // namespace ebm::cpu
