// Fast runs of the shared Philox stream on the CPU (see philox_run.cpp).
#pragma once
#include <cstdint>

namespace ebm::cpu {

// out[4*i + w] = uniform(seed, stream, chain, step, unit = 4*(first_block + i) + w) for
// i < n_blocks: exactly the values of philox_uniform in common/philox.h.
void philox_uniforms(uint64_t seed, uint32_t stream, uint32_t chain, uint32_t step,
                     uint32_t first_block, int n_blocks, float* out);

// One implementation by name (tests check each against the reference); false when this
// CPU or build lacks it.
enum class PhiloxImpl { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };
bool philox_uniforms_with(PhiloxImpl impl, uint64_t seed, uint32_t stream, uint32_t chain,
                          uint32_t step, uint32_t first_block, int n_blocks, float* out);

}  // namespace ebm::cpu
