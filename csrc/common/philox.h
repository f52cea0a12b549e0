// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11): the one counter-based random
// stream of ebmfast, shared by CPU kernels, CUDA kernels and the NumPy reference.
//
// A uniform is a pure function of (seed, stream, chain, step, unit):
//   key = seed (64 bit: low word, high word), counter = (unit/4, chain, step, stream),
//   word unit%4 of the output, u = (word >> 8) * 2^-24 in [0, 1).
// So results never depend on thread count, tile size or device.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define EBM_HD __host__ __device__ __forceinline__
#else
#define EBM_HD inline __attribute__((always_inline))
#endif

namespace ebm {

// One purpose per stream, so two consumers at the same (chain, step) never share numbers.
enum Stream : uint32_t {
  kStreamVisible = 0,   // RBM visible-layer samples
  kStreamHidden = 1,    // RBM hidden-layer samples
  kStreamInit = 2,      // fresh chain initialisation
  kStreamShuffle = 3,   // mini-batch order per epoch
  kStreamProposal = 4,  // Metropolis proposals
  kStreamAccept = 5,    // Metropolis acceptance
  kStreamSwap = 6,      // replica exchange
  kStreamLayer = 16,    // DBM layer l samples: kStreamLayer + l (visibles l = 0)
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // sqrt(3) - 1
constexpr float kTwoPowMinus24 = 1.0f / 16777216.0f;

struct PhiloxBlock {
  uint32_t x[4];
};

EBM_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
#endif
}

// The ten rounds of Philox4x32 on one counter block; key (k0, k1) bumped by Weyl constants.
EBM_HD PhiloxBlock philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                 uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kPhiloxM0, c0, hi0, lo0);
    philox_mulhilo(kPhiloxM1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// 24 high bits -> exactly representable float in [0, 1).
EBM_HD float philox_word_to_uniform(uint32_t w) {
  return static_cast<float>(w >> 8) * kTwoPowMinus24;
}

// The (seed, stream, chain, step, unit) -> u mapping of DESIGN.md §3, one unit at a time.
// Kernels that need many consecutive units use philox_uniform_run below instead.
EBM_HD float philox_uniform(uint64_t seed, uint32_t stream, uint32_t chain, uint32_t step,
                            uint32_t unit) {
  const PhiloxBlock b = philox4x32_10(unit >> 2, chain, step, stream,
                                      static_cast<uint32_t>(seed),
                                      static_cast<uint32_t>(seed >> 32));
  return philox_word_to_uniform(b.x[unit & 3u]);
}

#if !defined(__CUDA_ARCH__)
// Uniforms for units [4*first_block, 4*(first_block + n_blocks)) of one (chain, step,
// stream) into out[0 .. 4*n_blocks). Written as independent lanes so the compiler
// vectorises the ten rounds (vpmuludq) when inlined into a target_clones kernel.
inline void philox_uniform_run(uint64_t seed, uint32_t stream, uint32_t chain, uint32_t step,
                               uint32_t first_block, int n_blocks, float* out) {
  constexpr int kLanes = 16;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int base = 0; base < n_blocks; base += kLanes) {
    const int nl = (n_blocks - base) < kLanes ? (n_blocks - base) : kLanes;
    uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      c0[l] = first_block + static_cast<uint32_t>(base + l);
      c1[l] = chain; c2[l] = step; c3[l] = stream;
    }
    uint32_t ka = k0, kb = k1;
    for (int r = 0; r < 10; ++r) {
      for (int l = 0; l < kLanes; ++l) {
        const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0[l];
        const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2[l];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ ka;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ kb;
        c1[l] = static_cast<uint32_t>(p1);
        c3[l] = static_cast<uint32_t>(p0);
        c0[l] = n0;
        c2[l] = n2;
      }
      ka += kPhiloxW0;
      kb += kPhiloxW1;
    }
    for (int l = 0; l < nl; ++l) {
      float* o = out + 4 * (base + l);
      o[0] = philox_word_to_uniform(c0[l]);
      o[1] = philox_word_to_uniform(c1[l]);
      o[2] = philox_word_to_uniform(c2[l]);
      o[3] = philox_word_to_uniform(c3[l]);
    }
  }
}
#endif

}  // namespace ebm
