// Dispatch of the hot CPU loops: each function marked EBM_CLONES is compiled three times
// (AVX-512, AVX2+FMA, baseline x86-64) and the loader picks the best for the machine, so
// one wheel is fast on new CPUs and still runs on old ones. Helpers they inline
// (Philox, exp/log polynomials) are vectorised inside each clone.
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EBM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EBM_CLONES
#endif

namespace ebm::cpu {

// Width of an output tile: 64 floats = 8 AVX2 / 4 AVX-512 accumulators, a multiple of 4
// so a Philox block (4 uniforms) never straddles two tiles.
constexpr int kTile = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows per parallel task: small enough to balance two or more threads on a small batch,
// large enough that the tile of M each task walks stays hot in L2 across its rows.
inline int64_t rows_per_task(int64_t rows, int threads) {
  return std::clamp<int64_t>(rows / (4 * std::max(threads, 1)), 1, 16);
}

}  // namespace ebm::cpu
