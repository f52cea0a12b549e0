// One parallel pass that tells the Python layer what an input array holds (finite?
// binary? range), so validating a batch costs one read instead of several NumPy passes.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include "cpu/kernels.h"
#include "cpu/simd.h"

namespace ebm::cpu {

namespace {

struct Partial {
  int bad = 0, nonbinary = 0;
  float lo = INFINITY, hi = -INFINITY;
};

// One block, eight lanes at a time (the scalar form does not auto-vectorise: the min/max
// of finite values only is a select, not a reduction GCC recognises).
EBM_CLONES Partial summarize_block(const float* x, int64_t n) {
  Partial p;
  vi8 bad = {}, nonbinary = {};
  vf8 lo = splat8(INFINITY), hi = splat8(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const vf8 v = load8(x + i);
    const vi8 fin = (v - v) == 0.0f;  // -1 where finite
    bad |= ~fin;
    nonbinary |= (v != 0.0f) & (v != 1.0f);
    lo = (fin != 0) & (v < lo) ? v : lo;
    hi = (fin != 0) & (v > hi) ? v : hi;
  }
  for (int l = 0; l < 8; ++l) {
    p.bad |= bad[l];
    p.nonbinary |= nonbinary[l];
    p.lo = lo[l] < p.lo ? lo[l] : p.lo;
    p.hi = hi[l] > p.hi ? hi[l] : p.hi;
  }
  for (; i < n; ++i) {
    const float v = x[i];
    const bool fin = (v - v == 0.0f);
    p.bad |= !fin;
    p.nonbinary |= (v != 0.0f) & (v != 1.0f);
    p.lo = (fin && v < p.lo) ? v : p.lo;
    p.hi = (fin && v > p.hi) ? v : p.hi;
  }
  return p;
}

}  // namespace

ValueSummary summarize(const float* x, int64_t n) {
  ValueSummary out;
  if (n == 0) return out;
  constexpr int64_t kBlock = int64_t{1} << 16;
  const int64_t n_blocks = ceil_div(n, kBlock);
  int bad = 0, nonbinary = 0;
  float lo = INFINITY, hi = -INFINITY;
#pragma omp parallel for schedule(static) reduction(| : bad, nonbinary) \
    reduction(min : lo) reduction(max : hi) if (n_blocks > 1)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t i0 = blk * kBlock;
    const Partial p = summarize_block(x + i0, std::min(kBlock, n - i0));
    bad |= p.bad;
    nonbinary |= p.nonbinary;
    lo = std::min(lo, p.lo);
    hi = std::max(hi, p.hi);
  }
  out.finite = bad == 0;
  out.binary = nonbinary == 0;
  out.min = lo;
  out.max = hi;
  return out;
}

}  // namespace ebm::cpu
