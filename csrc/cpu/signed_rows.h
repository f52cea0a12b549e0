// The inner loop of the sign-symmetric tables (spin_table.cpp for +-1 spins, the layer
// kernel's signed table for dense binary inputs): sums of table rows picked with a sign.
#pragma once
#include <cstdint>
#include "cpu/simd.h"

namespace ebm::cpu {

// A pick: a table row index, with the sign in the top bit (set: the row is subtracted).
constexpr uint32_t kPickNegate = 0x80000000u;

// a[t] += sum over the picks idx[0..m) of +-T[row * ld + j0 + 16 t], t < NV (the sign bits
// of a negated row flipped with an xor). Rows are picked at random, so the row kPrefetch
// picks ahead is prefetched (L2 -> L1 latency is the bound, not the adds).
template <int NV>
EBM_INLINE void add_signed_rows(const float* T, int64_t ld, const int32_t* idx, int64_t m,
                                int64_t j0, vf16* a) {
  constexpr int64_t kPrefetch = 8;
  auto row = [&](int64_t k) {
    return T + static_cast<int64_t>(static_cast<uint32_t>(idx[k]) & ~kPickNegate) * ld + j0;
  };
  for (int64_t k = 0; k < m; ++k) {
    const float* r = row(k);
    if (k + kPrefetch < m) {
      const float* q = row(k + kPrefetch);
      for (int t = 0; t < NV; ++t) __builtin_prefetch(q + 16 * t);
    }
    const vi16 sign = vi16{} + static_cast<int32_t>(static_cast<uint32_t>(idx[k]) & kPickNegate);
    for (int t = 0; t < NV; ++t) {
      vf16 x = load16(r + 16 * t);
      vi16 v;
      __builtin_memcpy(&v, &x, sizeof v);
      v ^= sign;
      __builtin_memcpy(&x, &v, sizeof x);
      a[t] += x;
    }
  }
}

}  // namespace ebm::cpu
