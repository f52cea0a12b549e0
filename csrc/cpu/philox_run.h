// Fast runs of the shared Philox stream on the CPU (see philox_run.cpp).
#pragma once
#include <cstdint>

namespace ebm::cpu {

// out[4*i + w] = uniform(seed, stream, chain, step, unit = 4*(first_block + i) + w) for
// i < n_blocks: exactly the values of philox_uniform in common/philox.h.
void philox_uniforms(uint64_t seed, uint32_t stream, uint32_t chain, uint32_t step,
                     uint32_t first_block, int n_blocks, float* out);

// Sixteen independent counters (c0[l], c1[l], step, c3[l]) under the key `seed`: the four
// uniforms of lane l go to out[4 l + w] (lane-major) or out[16 w + l] (word_major, the
// layout of kernels whose SIMD lanes are chains). AVX-512, AVX2 or portable, chosen once
// (EBMFAST_PHILOX_LANES=portable|avx2 forces a narrower one, for tests).
void philox_lanes16(const uint32_t* c0, const uint32_t* c1, uint32_t step, const uint32_t* c3,
                    uint64_t seed, float* out, bool word_major);

// Sixteen consecutive chains side by side, the layout of the samplers whose SIMD lanes are
// chains: out[64 b + 16 w + l] = uniform(seed, stream, chain = first_chain + l, step,
// unit = 4 (first_block + b) + w) for b < n_blocks.
void philox_chain_lanes(uint64_t seed, uint32_t stream, uint32_t first_chain, uint32_t step,
                        uint32_t first_block, int n_blocks, float* out);

// One implementation by name (tests check each against the reference); false when this
// CPU or build lacks it.
enum class PhiloxImpl { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };
bool philox_uniforms_with(PhiloxImpl impl, uint64_t seed, uint32_t stream, uint32_t chain,
                          uint32_t step, uint32_t first_block, int n_blocks, float* out);

}  // namespace ebm::cpu
