// One parallel pass that tells the Python layer what an input array holds (finite?
// binary? range), so validating a batch costs one read instead of several NumPy passes.
#include <omp.h>
#include <cmath>
#include "cpu/kernels.h"
#include "cpu/simd.h"

namespace ebm::cpu {

ValueSummary summarize(const float* x, int64_t n) {
  ValueSummary out;
  if (n == 0) return out;
  int bad = 0, nonbinary = 0;
  float lo = INFINITY, hi = -INFINITY;
#pragma omp parallel for schedule(static) reduction(| : bad, nonbinary) \
    reduction(min : lo) reduction(max : hi) if (parallel_worth(n))
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const bool fin = (v - v == 0.0f);
    bad |= !fin;
    nonbinary |= (v != 0.0f) & (v != 1.0f);
    lo = (fin && v < lo) ? v : lo;
    hi = (fin && v > hi) ? v : hi;
  }
  out.finite = bad == 0;
  out.binary = nonbinary == 0;
  out.min = lo;
  out.max = hi;
  return out;
}

}  // namespace ebm::cpu
